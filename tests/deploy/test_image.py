"""The image: built from the Dockerfile with podman and run the way its users run it.

No registry is reachable from CI, so the base image is made here: `debootstrap` of Debian
bookworm with python3 (the same Python 3.11 as the Dockerfile's default base), imported into
podman and passed as BASE_IMAGE. pip inside the build reaches the package index through the
host's CA bundle, mounted into the build with a pip.conf that names it; neither ends up in the
image. podman reads a containers.conf of the tests' own (CONTAINERS_CONF), never the machine's.

Kept between runs, deliberately: the debootstrap tarball in /var/cache/aivoice-exporter (about
a minute to make) and the base image imported from it, tagged with the tarball's hash. The
exporter image, built without a layer cache so that every run installs from requirements.txt as
a fresh `docker build` would, is removed at the end with every container the tests start.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.cli import DEFAULT_PORT
from exporter.demo import DEMO_APPS
from tests.support.tools import require_tool, unavailable, wait_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
CACHE = Path(os.environ.get("AIVOICE_TEST_CACHE", "/var/cache/aivoice-exporter"))
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BUILD_CA_BUNDLE = "/etc/aivoice-build/ca-certificates.crt"
BASE_REPOSITORY = "localhost/aivoice-exporter-test-base"
IMAGE_UID = 10188
CONTAINERS_CONF = """\
# podman's settings for the tests only, through CONTAINERS_CONF.
[containers]
# Raising limits above the host's is not permitted here; these fit under them.
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
# The default crun fails on this machine's cgroups; runc works.
runtime = "runc"
"""
PIP_CONF = f"[global]\ncert = {BUILD_CA_BUNDLE}\n"


@dataclass(frozen=True)
class Podman:
    binary: str
    env: dict[str, str]

    def __call__(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            pytest.fail(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    binary = require_tool("podman")
    require_tool("runc")
    if os.geteuid() != 0:
        unavailable("the image tests need root: rootful podman and debootstrap")
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    return Podman(binary, {**os.environ, "CONTAINERS_CONF": str(conf)})


# --- the base image -----------------------------------------------------------------------------


def _debootstrap(rootfs: Path) -> None:
    command = [
        require_tool("debootstrap"), "--variant=minbase", f"--include={','.join(PACKAGES)}",
        SUITE, str(rootfs),
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    finally:
        # debootstrap mounts these inside the tree; a run that fails midway can leave them.
        for mount in ("proc", "sys", "dev/pts"):
            if os.path.ismount(rootfs / mount):
                subprocess.run(["umount", "--lazy", str(rootfs / mount)], check=False)
    if result.returncode != 0:
        pytest.fail(f"debootstrap failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def base_tarball() -> Path:
    """The debootstrap tree as a tarball, made once and then reused from CACHE."""
    tarball = CACHE / f"debootstrap-{SUITE}-minbase-{'-'.join(PACKAGES)}.tar"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be making it right now
        if tarball.exists():
            return tarball
        with tempfile.TemporaryDirectory(dir=CACHE) as work:
            rootfs = Path(work) / "rootfs"
            _debootstrap(rootfs)
            partial = Path(work) / tarball.name
            subprocess.run(
                ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."],
                check=True, timeout=600,
            )  # fmt: skip
            os.replace(partial, tarball)
    return tarball


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def base_image(podman: Podman) -> str:
    tarball = base_tarball()
    tag = f"{BASE_REPOSITORY}:{_digest(tarball)[:12]}"
    if podman("image", "exists", tag, check=False).returncode != 0:
        podman("import", str(tarball), tag, timeout=600)
        listed = podman("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                        f"reference={BASE_REPOSITORY}").stdout.split()  # fmt: skip
        for old in set(listed) - {tag}:
            podman("rmi", old, check=False)  # made from an older tarball
    ran = podman("run", "--rm", tag, "python3", "-c", "print('ran')", check=False)
    if ran.stdout.strip() != "ran":
        pytest.fail(f"podman cannot run containers on this machine:\n{ran.stderr}")
    return tag


def test_base_image_has_the_python_of_the_dockerfiles_default_base(
    podman: Podman, base_image: str
) -> None:
    """The image is tested on another base than its default; they must carry the same Python."""
    default = re.search(r"^ARG BASE_IMAGE=python:(\d+\.\d+)-slim$", DOCKERFILE.read_text(), re.M)
    assert default, "the Dockerfile's default base is not a python:X.Y-slim image"
    version = "import sys; print('%d.%d' % sys.version_info[:2])"
    ran = podman("run", "--rm", base_image, "python3", "-c", version)
    assert ran.stdout.strip() == default.group(1)


LISTING = (
    "import os; print('\\n'.join(os.path.relpath(os.path.join(d, f), '/context') "
    "for d, _, fs in os.walk('/context') for f in fs))"
)


def test_dockerignore_keeps_junk_and_secrets_out_of_the_build_context(
    podman: Podman, base_image: str, tmp_path: Path
) -> None:
    """A context holding the repository's .dockerignore, built with `COPY . /context/`."""
    kept = {"pyproject.toml", "exporter/cli.py"}
    dropped = {
        ".git/HEAD",
        ".venv/bin/python",
        "exporter/__pycache__/cli.cpython-311.pyc",
        "tests/test_cli.py",
        "config.yaml",
        "tls.key",
        "secrets/api_secret",
    }
    context = tmp_path / "context"
    for name in kept | dropped:
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        (context / name).write_text(name)
    (context / ".dockerignore").write_text((ROOT / ".dockerignore").read_text())
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text(f"FROM {base_image}\nCOPY . /context/\n")
    tag = f"localhost/aivoice-exporter-test-context:{uuid.uuid4().hex[:12]}"
    podman("build", "--pull=never", "--layers=false", "--file", str(containerfile),
           "--tag", tag, str(context), timeout=300)  # fmt: skip
    try:
        listed = podman("run", "--rm", tag, "python3", "-c", LISTING).stdout.split()
    finally:
        podman("rmi", tag, check=False)
    assert set(listed) == kept


# --- the exporter image -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image(
    podman: Podman, base_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if not HOST_CA_BUNDLE.is_file():
        pytest.fail(f"{HOST_CA_BUNDLE} is missing: pip inside the build needs the host's CA bundle")
    pip_conf = tmp_path_factory.mktemp("build") / "pip.conf"
    pip_conf.write_text(PIP_CONF)
    tag = f"localhost/aivoice-exporter-test:{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    podman(
        "build", "--format", "docker", "--layers=false", "--pull=never",
        "--build-arg", f"BASE_IMAGE={base_image}",
        "--volume", f"{HOST_CA_BUNDLE}:{BUILD_CA_BUNDLE}:ro",
        "--volume", f"{pip_conf}:/etc/pip.conf:ro",
        "--tag", tag, str(ROOT),
        timeout=900,
    )  # fmt: skip
    print(f"image built in {time.monotonic() - started:.1f} s")
    try:
        yield tag
    finally:
        removed = podman("rmi", tag, check=False)
        if removed.returncode != 0:
            warnings.warn(f"podman rmi {tag}: {removed.stderr}", stacklevel=1)


@pytest.fixture(scope="module")
def image_root(podman: Podman, image: str) -> Iterator[Path]:
    """The image's file system, mounted read-only on the host."""
    root = Path(podman("image", "mount", image).stdout.strip())
    try:
        yield root
    finally:
        podman("image", "unmount", image, check=False)


def _files(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(folder, d))]
        for name in files:
            yield Path(folder, name)


# --- containers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Container:
    name: str
    url: str  # the published metrics port, on loopback


@pytest.fixture(scope="module")
def containers(podman: Podman, image: str) -> Iterator[Callable[..., Container]]:
    """Start containers of the image (`podman run -d OPTIONS IMAGE COMMAND`), the metrics port
    published on loopback; all are removed, newest first (a container may share another's
    network), before the image is."""
    started: list[str] = []

    def start(options: Sequence[str], command: Sequence[str], publish: bool = True) -> Container:
        name = f"aivoice-exporter-test-{uuid.uuid4().hex[:12]}"
        ports = ["--publish", f"127.0.0.1::{DEFAULT_PORT}"] if publish else []
        podman("run", "--detach", "--name", name, *ports, *options, image, *command)
        started.append(name)
        if not publish:
            return Container(name, "")
        address = podman("port", name, f"{DEFAULT_PORT}/tcp").stdout.strip()
        assert address.startswith("127.0.0.1:"), address
        return Container(name, f"http://{address}")

    yield start
    for name in reversed(started):
        podman("rm", "--force", "--time", "0", name, check=False)


HARDENED = ("--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges")


@pytest.fixture(scope="module")
def demo(containers: Callable[..., Container]) -> Container:
    return containers(HARDENED, ["--demo"])


def _by_app(url: str, name: str, **labels: str) -> dict[str, float]:
    """app_id -> the value of the sample `name` with these labels, from one scrape; empty while
    nothing answers yet."""
    try:
        text = requests.get(f"{url}/metrics", timeout=5).text
    except requests.ConnectionError:
        return {}
    return {
        sample.labels["app_id"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
        and "app_id" in sample.labels
        and labels.items() <= sample.labels.items()
    }


def _up(url: str) -> dict[str, float]:
    return _by_app(url, "aivoice_up")


def _inspect(podman: Podman, name: str, field: str) -> str:
    return podman("inspect", "--format", f"{{{{{field}}}}}", name).stdout.strip()


# --- the tests ----------------------------------------------------------------------------------


def test_demo_serves_every_demo_app_up(demo: Container) -> None:
    everyone = dict.fromkeys(DEMO_APPS, 1.0)
    assert wait_until(lambda: _up(demo.url) == everyone and everyone, timeout=60)


def test_exporter_runs_as_the_unprivileged_image_user(podman: Podman, demo: Container) -> None:
    pid = _inspect(podman, demo.name, ".State.Pid")
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    assert status["Uid"].split() == [str(IMAGE_UID)] * 4
    assert status["Gid"].split() == [str(IMAGE_UID)] * 4
    assert int(status["CapEff"], 16) == 0
    assert "aivoice-exporter" in Path(f"/proc/{pid}/cmdline").read_bytes().decode()


def test_image_healthcheck_passes(podman: Podman, demo: Container) -> None:
    assert wait_until(lambda: _up(demo.url), timeout=60)
    check = podman("healthcheck", "run", demo.name, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    assert _inspect(podman, demo.name, ".State.Health.Status") == "healthy"


def test_stop_ends_it_with_exit_0_before_the_kill(
    podman: Podman, containers: Callable[..., Container]
) -> None:
    """`podman stop --time 5` kills after 5 s; exit code 0 means it ended on SIGTERM before."""
    container = containers(HARDENED, ["--demo"])
    assert wait_until(lambda: _up(container.url), timeout=60)
    started = time.monotonic()
    podman("stop", "--time", "5", container.name, timeout=60)
    print(f"stopped in {time.monotonic() - started:.2f} s")
    assert _inspect(podman, container.name, ".State.ExitCode") == "0"
    logs = podman("logs", container.name)
    assert "Shutting down" in logs.stdout + logs.stderr


def _compose_service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][
        name
    ]
    return service


def _compose_run_args(service: dict[str, Any]) -> list[str]:
    """podman run flags for what a compose service sets (only the keys our file uses)."""
    args: list[str] = []
    if service.get("read_only"):
        args.append("--read-only")
    for path in service.get("tmpfs", []):
        args += ["--tmpfs", path]
    for cap in service.get("cap_drop", []):
        args += ["--cap-drop", cap]
    for option in service.get("security_opt", []):
        args += ["--security-opt", option]
    for volume in service.get("volumes", []):
        source, target, *mode = volume.split(":")
        if not source.startswith((".", "/")):  # A named volume: an anonymous one, gone with --rm.
            args += ["--volume", target]
            continue
        args += ["--volume", ":".join([str((ROOT / source).resolve()), target, *mode])]
    secrets = yaml.safe_load((ROOT / "docker-compose.yml").read_text()).get("secrets", {})
    for name in service.get("secrets", []):
        args += ["--volume", f"{(ROOT / secrets[name]['file']).resolve()}:/run/secrets/{name}:ro"]
    if "entrypoint" in service:
        args += ["--entrypoint", json.dumps(service["entrypoint"])]
    return args


def test_compose_exporter_polls_the_compose_simulator_in_containers(
    containers: Callable[..., Container],
) -> None:
    """Both compose services from this image, with the compose config, secrets and flags: the
    exporter polls the simulator's taskList and recordQuery, and the simulator pushes each call
    it ends to the exporter's push listener.

    They share one network namespace (the simulator's, as in a pod), with `simulator` and
    `exporter` resolving to it; the exporter's metrics port is published from there, on loopback.
    """
    simulator, exporter = _compose_service("simulator"), _compose_service("exporter")
    hosts = ["--add-host", "simulator:127.0.0.1", "--add-host", "exporter:127.0.0.1"]
    sim = containers([*hosts, *_compose_run_args(simulator)], simulator["command"])
    containers(
        ["--network", f"container:{sim.name}", *_compose_run_args(exporter)],
        exporter["command"],
        publish=False,
    )
    config = yaml.safe_load((ROOT / "deploy" / "compose" / "config.yaml").read_text())
    apps = config["accounts"][0]["app_ids"]
    everyone = dict.fromkeys(apps, 1.0)
    assert wait_until(
        lambda: _up(sim.url) == everyone and everyone, timeout=180, what="aivoice_up 1 everywhere"
    )
    assert wait_until(
        lambda: _by_app(sim.url, "aivoice_calls_up") == everyone,
        timeout=180,
        what="aivoice_calls_up 1 everywhere",
    )
    pushed = {"source": "push", "outcome": "counted"}

    def pushes_counted() -> bool:
        counted = _by_app(sim.url, "aivoice_call_records_total", **pushed)
        return set(counted) == set(apps) and all(n > 0 for n in counted.values())

    # At speed 5, each app's calls end many times a second: the first pushes come at once.
    assert wait_until(pushes_counted, timeout=180, what="pushed calls counted for every app")


# --- what the image holds -----------------------------------------------------------------------

COMPILER = re.compile(
    r"^(?:.+-)?(?:gcc|g\+\+|cc|c\+\+|clang(?:\+\+)?|tcc|cpp|ld|as|cc1)(?:-[\d.]+)?$"
)
TEST_FILE = re.compile(r"^(?:test_.*\.py|.*_test\.py|conftest\.py|tests\.py)$")
# Where the Dockerfile puts things; the base image's own files are the base's business.
OURS = ("opt/aivoice-exporter", "usr/local/bin", "etc/aivoice-exporter")


def _is_compiler(path: Path) -> bool:
    in_bin = path.parent.name in ("bin", "sbin") and COMPILER.match(path.name) is not None
    return in_bin or ("gcc" in path.parts[-5:-1] and path.name.startswith("cc1"))


def test_image_exposes_the_default_listen_port(podman: Podman, image: str) -> None:
    exposed = podman("image", "inspect", "--format", "{{json .Config.ExposedPorts}}", image)
    assert set(json.loads(exposed.stdout)) == {f"{DEFAULT_PORT}/tcp"}


def test_image_holds_no_compiler(image_root: Path) -> None:
    found = [str(p.relative_to(image_root)) for p in _files(image_root) if _is_compiler(p)]
    assert found == []


def test_image_holds_no_pip_cache_and_no_leftovers(image_root: Path) -> None:
    caches = [p for p in _files(image_root) if ".cache" in p.relative_to(image_root).parts]
    # (The Debian base keeps ensurepip's wheels in /usr/share/python-wheels: not ours.)
    wheels = [p for top in (*OURS, "root") for p in _files(image_root / top) if p.suffix == ".whl"]
    assert (caches, wheels) == ([], [])
    assert list((image_root / "tmp").iterdir()) == []
    assert not (image_root / "src").exists()
    # The venv runs the exporter; installing things is the builder's job.
    assert not list((image_root / "opt" / "aivoice-exporter").glob("lib/python*/site-packages/pip"))


def test_image_holds_no_test_files(image_root: Path) -> None:
    ours = [p for top in OURS for p in _files(image_root / top)]
    named = [
        str(p.relative_to(image_root))
        for p in ours
        if TEST_FILE.match(p.name) or {"test", "tests"} & set(p.relative_to(image_root).parts)
    ]
    assert named == []
    # Nor, anywhere, a copy of one of this repository's test files.
    repo_tests = {_digest(p): p for p in (ROOT / "tests").rglob("*.py") if p.stat().st_size > 0}
    sizes = {p.stat().st_size for p in repo_tests.values()}
    copies = [
        str(p.relative_to(image_root))
        for p in _files(image_root)
        if not p.is_symlink() and p.stat().st_size in sizes and _digest(p) in repo_tests
    ]
    assert copies == []
