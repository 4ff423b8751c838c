"""The wheel, the healthcheck script, docker-compose.yml and the systemd unit: they work, and
they agree with the code and with each other.

tests/deploy/test_image.py builds the real image with podman and runs it. The wheel tests here
do what its Dockerfile does outside a container (copy the same sources, build the same wheel,
install it into a fresh venv, run the same ENTRYPOINT + CMD and HEALTHCHECK). The rest checks
that docker-compose.yml, the Prometheus and Grafana files it mounts, and the systemd unit wire
the same names, paths and ports, with promtool and systemd-analyze where they can judge.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import re
import select
import shlex
import shutil
import site
import socket
import subprocess
import sys
import threading
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.version import Version

import exporter
from exporter.cli import DEFAULT_PORT
from exporter.config.load import parse_config
from tests.support.processes import ExporterProcess
from tests.support.serving import serving
from tests.support.tls import Certs, require_client_cert, tls_server_config, web_config
from tests.support.tools import require_tool

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
UNIT = ROOT / "deploy" / "aivoice-exporter.service"
HEALTHCHECK = ROOT / "deploy" / "docker" / "healthcheck.py"
# What the third-party images listen on unless told otherwise.
IMAGE_PORTS = {"prometheus": 9090, "alertmanager": 9093, "grafana": 3000}


# --- reading the Dockerfile ---------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        value = json.loads(self.args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), self
        return value


def dockerfile_instructions() -> list[Instruction]:
    """Every instruction in order; continuation lines joined, comments dropped."""
    instructions: list[Instruction] = []
    logical = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not logical and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        keyword, _, args = logical.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
        logical = ""
    return instructions


def dockerfile_stages() -> list[list[Instruction]]:
    """Instructions grouped by stage; the global ARGs before the first FROM left out."""
    stages: list[list[Instruction]] = []
    for instruction in dockerfile_instructions():
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def only(stage: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"want exactly one {keyword}, got {found}"
    return found[0]


def copy_args(instruction: Instruction) -> tuple[list[str], list[str], str]:
    """COPY [--flags] src... dest -> (flags, sources, dest)."""
    words = shlex.split(instruction.args)
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1], paths[-1]


def runtime_stage() -> list[Instruction]:
    return dockerfile_stages()[-1]


def builder_stage() -> list[Instruction]:
    return dockerfile_stages()[0]


# --- the image's labels --------------------------------------------------------------------------


def _image_labels() -> dict[str, str]:
    """The runtime stage's LABELs (the labels of the image)."""
    labels: dict[str, str] = {}
    for instruction in runtime_stage():
        if instruction.keyword == "LABEL":
            for word in shlex.split(instruction.args):
                key, eq, value = word.partition("=")
                assert eq, f"LABEL {word}: not key=value"
                labels[key] = value
    return labels


def test_image_carries_the_standard_labels_of_the_project() -> None:
    """What registries and scanners read: they name the same project pyproject.toml does."""
    project = importlib.metadata.metadata("aivoice-exporter")
    urls = dict(url.split(", ", 1) for url in project.get_all("Project-URL") or [])
    oci = "org.opencontainers.image"
    assert _image_labels() == {
        f"{oci}.title": project["Name"],
        f"{oci}.description": project["Summary"],
        f"{oci}.version": exporter.__version__,
        f"{oci}.licenses": project["License-Expression"],
        f"{oci}.source": urls["Source"],
    }


# --- the wheel the image installs, in a fresh venv ----------------------------------------------


@dataclass(frozen=True)
class Installed:
    venv: Path
    wheel: Path
    bin: Path

    def entrypoint(self) -> list[str]:
        """The image's ENTRYPOINT, resolved against the venv as PATH resolves it in the image."""
        first, *rest = only(runtime_stage(), "ENTRYPOINT").exec_form()
        return [str(self.bin / first), *rest]


def _build_context_like_the_builder(dest_root: Path) -> Path:
    """Copy what the builder stage COPYs to where it COPYs it; return its WORKDIR."""
    workdir = dest_root
    for instruction in builder_stage():
        if instruction.keyword == "WORKDIR":
            workdir = dest_root / instruction.args.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "COPY":
            flags, sources, dest = copy_args(instruction)
            assert not flags, "the builder copies from the build context only"
            target = workdir / dest if not dest.startswith("/") else dest_root / dest.lstrip("/")
            for source in sources:
                src = ROOT / source
                assert src.exists(), f"Dockerfile copies {source}, which is missing"
                if src.is_dir():
                    shutil.copytree(src, target, dirs_exist_ok=True, ignore=_pycache)
                elif dest.endswith("/"):
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, target / src.name)
                else:  # COPY file path: the file gets that name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, target)
    return workdir


def _can_build_wheels() -> bool:
    """This environment holds what pyproject.toml's build-system requires (`build` checks), and
    its setuptools builds wheels (itself from 70.1; before that with the `wheel` package)."""
    try:
        import build
        import setuptools
    except ImportError:
        return False
    requires = build.ProjectBuilder(ROOT).build_system_requires
    if any(tuple(build.check_dependency(r)) for r in requires):
        return False
    version = Version(setuptools.__version__)
    return version >= Version("70.1") or importlib.util.find_spec("wheel") is not None


def _pycache(_dir: str, names: list[str]) -> list[str]:
    return [n for n in names if n == "__pycache__" or n.endswith(".pyc")]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("image")
    src = _build_context_like_the_builder(tmp / "builder")
    wheels = tmp / "wheels"
    # The builder runs `pip wheel --no-deps` with build isolation. Here, skip the isolation (and
    # the download of setuptools it costs) when this environment can build wheels already.
    isolation = ["--no-build-isolation"] if _can_build_wheels() else []
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *isolation,
         "--wheel-dir", str(wheels), str(src)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = wheels.glob("aivoice_exporter-*.whl")
    venv = tmp / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    venv_python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv_python), "install", "--quiet",
         "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    # Dependencies from this test run's environment, behind the venv's own site-packages, so the
    # exporter itself can only come from the wheel.
    purelib = subprocess.run(
        [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "_test_dependencies.pth").write_text("\n".join(site.getsitepackages()))
    return Installed(venv=venv, wheel=wheel, bin=venv / "bin")


def _clean_env() -> dict[str, str]:
    """This process's environment minus what would let the repo's own copy leak in."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _run(
    args: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env=_clean_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_console_script_is_installed_from_the_wheel(installed: Installed, tmp_path: Path) -> None:
    assert (installed.bin / "aivoice-exporter").is_file()
    found = _run(
        [str(installed.bin / "python"), "-c", "import exporter; print(exporter.__file__)"],
        tmp_path,
    )
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).is_relative_to(installed.venv)


@pytest.mark.slow
def test_image_command_runs_from_the_wheel(installed: Installed, tmp_path: Path) -> None:
    command = [*installed.entrypoint(), *only(runtime_stage(), "CMD").exec_form(), "--help"]
    result = _run(command, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--web.listen-address" in result.stdout
    assert "--web.config.file" in result.stdout


@pytest.mark.slow
def test_image_entrypoint_serves_and_passes_the_healthcheck(
    installed: Installed, tmp_path: Path
) -> None:
    env = _clean_env()
    exporter = ExporterProcess.start(
        "exporter",
        [*installed.entrypoint(), "--demo", "--web.listen-address=127.0.0.1:0"],
        cwd=tmp_path,
        env=env,
    )
    try:
        address = exporter.wait_until_listening(timeout=30)
        check = _run(
            [str(installed.bin / "python"), str(HEALTHCHECK)],
            tmp_path,
            env={**env, "AIVOICE_HEALTHCHECK_URL": f"http://{address}/-/healthy"},
        )
        assert check.returncode == 0, check.stderr
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
            assert b"aivoice_exporter_build_info" in response.read()
        assert exporter.stop() == 0
    finally:
        exporter.kill()


@pytest.mark.slow
def test_wheel_ships_the_simulator_the_compose_file_runs(
    installed: Installed, tmp_path: Path
) -> None:
    result = _run([str(installed.bin / "python"), "-m", "exporter.simulator", "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    for flag in _compose_flags(_service("simulator")["command"]):
        assert flag in result.stdout, f"compose passes {flag}, the simulator does not take it"


@pytest.mark.slow
def test_wheel_declares_every_third_party_import(installed: Installed) -> None:
    """The image gets only what the wheel pulls in; an import it lacks fails in production."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        lines = wheel.read(metadata).decode().splitlines()
    declared = _with_dependencies(
        {
            line.removeprefix("Requires-Dist: ")
            for line in lines
            if line.startswith("Requires-Dist: ")
        }
    )
    distributions = importlib.metadata.packages_distributions()
    for module in sorted(_third_party_imports(ROOT / "exporter")):
        names = {_normalise(d) for d in distributions.get(module, [module])}
        assert names & declared, f"exporter imports {module}; the wheel does not require it"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _with_dependencies(requirements: set[str]) -> set[str]:
    """Distribution names the requirements install (not extras), transitive ones included."""
    found: set[str] = set()
    todo = [r for r in requirements if "extra ==" not in r]
    while todo:
        name = _normalise(re.split(r"[ ;<>=!~\[(]", todo.pop())[0])
        if name in found:
            continue
        found.add(name)
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            todo.extend(r for r in importlib.metadata.requires(name) or [] if "extra ==" not in r)
    return found


def _third_party_imports(package: Path) -> set[str]:
    found: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"exporter", "__future__"}


# --- the healthcheck script ---------------------------------------------------------------------


def _load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("aivoice_healthcheck", HEALTHCHECK)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def answering() -> Iterator[str]:
    """A loopback server answering GET /<status> with that status."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(int(self.path.strip("/")))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize(
    ("status", "healthy"), [(200, True), (401, True), (404, False), (503, False)]
)
def test_healthcheck_judges_the_answer(answering: str, status: int, healthy: bool) -> None:
    assert _load_healthcheck().probe(f"{answering}/{status}", timeout=5) is healthy


def test_healthcheck_defaults_to_the_exporters_default_address() -> None:
    url = urlsplit(_load_healthcheck().DEFAULT_URL)
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", DEFAULT_PORT, "/-/healthy")


@pytest.fixture
def tls_exporter(certs: Certs, tmp_path: Path) -> Iterator[str]:
    """The exporter's server with TLS on; yields its /-/healthy URL."""
    with serving(security=web_config(tmp_path, tls_server_config(certs))) as (host, port):
        yield f"https://{host}:{port}/-/healthy"


@pytest.fixture
def mtls_exporter(certs: Certs, tmp_path: Path) -> Iterator[str]:
    """The exporter's server requiring client certificates; yields its /-/healthy URL."""
    text = tls_server_config(certs, require_client_cert(certs))
    with serving(security=web_config(tmp_path, text)) as (host, port):
        yield f"https://{host}:{port}/-/healthy"


def test_healthcheck_probes_a_tls_listener(tls_exporter: str) -> None:
    assert _load_healthcheck().probe(tls_exporter, timeout=5)


def test_healthcheck_presents_the_client_cert_it_is_given(certs: Certs, mtls_exporter: str) -> None:
    healthcheck = _load_healthcheck()
    assert not healthcheck.probe(mtls_exporter, timeout=5)
    cert, key = str(certs.client_pem), str(certs.client_key)
    assert healthcheck.probe(mtls_exporter, timeout=5, cert_file=cert, key_file=key)


def test_healthcheck_plain_http_to_a_tls_port_is_unhealthy(tls_exporter: str) -> None:
    assert not _load_healthcheck().probe(tls_exporter.replace("https:", "http:"), timeout=5)


def test_healthcheck_exits_1_when_nothing_listens(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{s.getsockname()[1]}/-/healthy"
        result = _run(
            [sys.executable, str(HEALTHCHECK)],
            tmp_path,
            env={**os.environ, "AIVOICE_HEALTHCHECK_URL": url},
        )
    assert result.returncode == 1
    assert "unhealthy" in result.stderr


# --- docker-compose.yml -------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _service(name: str) -> dict[str, Any]:
    return _compose()["services"][name]


def _compose_flags(command: list[str]) -> dict[str, str]:
    """`--a=b` and `--a b` -> {"--a": "b"}; bare flags map to ""."""
    flags: dict[str, str] = {}
    i = 0
    while i < len(command):
        word = command[i]
        name, eq, value = word.partition("=")
        if not eq and i + 1 < len(command) and not command[i + 1].startswith("--"):
            value, i = command[i + 1], i + 1
        flags[name] = value
        i += 1
    return flags


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repo path for the service's bind mounts."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith((".", "/")):
            mounts[target] = (ROOT / source).resolve()
    return mounts


def _published(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port."""
    ports: dict[int, int] = {}
    for spec in service.get("ports", []):
        host, container = str(spec).split(":")[-2:]
        ports[int(container)] = int(host)
    return ports


def _port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def _secret_files() -> dict[str, Path]:
    """In-container secret path -> repo file."""
    return {
        f"/run/secrets/{name}": ROOT / spec["file"] for name, spec in _compose()["secrets"].items()
    }


def test_every_mounted_file_exists() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        for target, source in _bind_mounts(service).items():
            assert source.exists(), f"{name} mounts {source} at {target}: missing"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose.get("volumes", {}), f"{name}: undeclared volume {source}"
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], f"{name}: undeclared secret {secret}"
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file()
    for path in _secret_files().values():
        assert path.is_file(), path


@pytest.mark.slow
def test_compose_exporter_polls_the_compose_simulator(installed: Installed, tmp_path: Path) -> None:
    """The two services' commands and config, run from the wheel on loopback, work together."""
    simulator = _service("simulator")
    program, *module = simulator["entrypoint"]
    assert program == "python"
    flags = _compose_flags(simulator["command"])
    flags["--listen-address"] = "127.0.0.1:0"
    del flags["--push-url"]  # `--once` opens no push listener; test_image.py runs the push
    command = [f"{k}={v}" if v else k for k, v in flags.items()]
    process = subprocess.Popen(
        [str(installed.bin / "python"), *module, *command],
        cwd=tmp_path, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        announced = process.stdout.readline().strip() if ready else "(nothing in 30 s)"
        url = urlsplit(announced.removeprefix("listening on "))
        assert url.port, f"simulator said {announced!r}"
        data = _exporter_config_on_the_host()
        compose_url = urlsplit(data["api"]["base_url"])
        data["api"]["base_url"] = compose_url._replace(netloc=url.netloc).geturl()
        account = data["accounts"][0]
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(data))
        once = _run([*installed.entrypoint(), f"--config.file={config}", "--once"], tmp_path)
        assert once.returncode == 0, once.stderr
        for app_id in account["app_ids"]:
            assert f'aivoice_up{{app_id="{app_id}"}} 1.0' in once.stdout
    finally:
        process.terminate()
        process.wait(10)


def test_compose_keeps_the_call_state_on_a_named_volume() -> None:
    exporter = _service("exporter")
    path = _compose_flags(exporter["command"])["--storage.path"]
    (source,) = [v.split(":")[0] for v in exporter["volumes"] if v.split(":")[1] == path]
    assert source in _compose()["volumes"]
    assert f'VOLUME ["{path}"]' in (ROOT / "Dockerfile").read_text().splitlines()


def test_published_ports_are_the_ones_the_services_listen_on() -> None:
    exporter_flags = _compose_flags(_service("exporter")["command"])
    exporter_port = _port_of(exporter_flags.get("--web.listen-address", f":{DEFAULT_PORT}"))
    assert exporter_port == DEFAULT_PORT
    assert _published(_service("exporter")) == {exporter_port: exporter_port}
    for name, port in IMAGE_PORTS.items():
        assert _published(_service(name)) == {port: port}, name


def test_simulator_listens_where_the_exporter_config_points() -> None:
    simulator = _compose_flags(_service("simulator")["command"])
    port = _port_of(simulator["--listen-address"])
    assert simulator["--listen-address"].startswith("0.0.0.0:")
    assert [int(p) for p in _service("simulator")["expose"]] == [port]
    url = urlsplit(_exporter_config()["api"]["base_url"])
    assert (url.hostname, url.port) == ("simulator", port)


def _exporter_config() -> dict[str, Any]:
    exporter = _service("exporter")
    config_path = _compose_flags(exporter["command"])["--config.file"]
    return yaml.safe_load(_bind_mounts(exporter)[config_path].read_text())


def _exporter_config_on_the_host() -> dict[str, Any]:
    """The exporter's config with each secret file it names replaced by the repository's file
    that compose mounts there (the exporter service must be given that secret)."""
    data = _exporter_config()
    given = {f"/run/secrets/{name}" for name in _service("exporter")["secrets"]}
    sections = [*data["accounts"], data.get("push", {})]
    for section in sections:
        for key in ("api_secret_file", "token_file"):
            if key in section:
                assert section[key] in given, f"{section[key]}: not a secret of the exporter"
                section[key] = str(_secret_files()[section[key]])
    return data


def test_exporter_config_is_valid_and_holds_the_simulator_credentials() -> None:
    data = _exporter_config_on_the_host()
    config = parse_config(data, {})
    simulator = _compose_flags(_service("simulator")["command"])
    assert config.accounts[0].api_key == simulator["--api-key"]
    assert config.accounts[0].api_secret == simulator["--api-secret"]
    assert ",".join(config.app_ids) == simulator["--app-ids"]


def test_simulator_pushes_each_call_to_the_exporters_push_listener() -> None:
    config = parse_config(_exporter_config_on_the_host(), {})
    assert config.calls.enabled
    port = _port_of(config.push.listen_address)
    simulator = _compose_flags(_service("simulator")["command"])
    assert simulator["--push-url"] == f"http://exporter:{port}/push/call-record/{config.push.token}"


def test_push_listener_is_on_the_compose_network_only() -> None:
    port = _port_of(parse_config(_exporter_config_on_the_host(), {}).push.listen_address)
    exporter = _service("exporter")
    assert [int(p) for p in exporter["expose"]] == [port]
    assert port not in _published(exporter)


def test_exporter_config_path_is_the_image_default() -> None:
    exporter = _service("exporter")
    config_path = _compose_flags(exporter["command"])["--config.file"]
    image_cmd = _compose_flags(only(runtime_stage(), "CMD").exec_form())
    assert config_path == image_cmd["--config.file"]
    assert config_path in _bind_mounts(exporter)


def _prometheus_config() -> tuple[dict[str, Any], dict[str, Path]]:
    prometheus = _service("prometheus")
    mounts = _bind_mounts(prometheus)
    path = _compose_flags(prometheus["command"])["--config.file"]
    assert path in mounts, "prometheus.yml is not mounted where --config.file points"
    return yaml.safe_load(mounts[path].read_text()), mounts


def test_prometheus_scrapes_the_exporter_service_on_its_port() -> None:
    config, _ = _prometheus_config()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for sc in jobs["aivoice"]["static_configs"] for t in sc["targets"]]
    assert targets == [f"exporter:{DEFAULT_PORT}"]


def test_prometheus_loads_the_repo_rules_it_mounts() -> None:
    config, mounts = _prometheus_config()
    loaded = {mounts[path] for path in config["rule_files"]}
    assert loaded == {ROOT / "prometheus" / "rules.yml", ROOT / "prometheus" / "alerts.yml"}


def test_prometheus_sends_alerts_to_the_alertmanager_service() -> None:
    config, _ = _prometheus_config()
    (manager,) = config["alerting"]["alertmanagers"]
    targets = [t for sc in manager["static_configs"] for t in sc["targets"]]
    assert targets == [f"alertmanager:{IMAGE_PORTS['alertmanager']}"]
    alertmanager = _service("alertmanager")
    path = _compose_flags(alertmanager["command"])["--config.file"]
    assert _bind_mounts(alertmanager)[path] == ROOT / "prometheus" / "alertmanager.yml"


def test_promtool_accepts_the_compose_prometheus_config(tmp_path: Path) -> None:
    require_tool("promtool")
    config, mounts = _prometheus_config()
    config["rule_files"] = [str(mounts[path]) for path in config["rule_files"]]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = _run(["promtool", "check", "config", str(path)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def _grafana_provisioning(kind: str) -> list[dict[str, Any]]:
    grafana = _service("grafana")
    folder = _bind_mounts(grafana)["/etc/grafana/provisioning"] / kind
    docs = [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.y*ml"))]
    assert docs, f"nothing in grafana/provisioning/{kind}"
    return docs


def test_grafana_provisions_the_dashboard_compose_mounts() -> None:
    mounts = _bind_mounts(_service("grafana"))
    dashboard_targets = [
        t for t, s in mounts.items() if s == ROOT / "grafana" / "aivoice-dashboard.json"
    ]
    assert len(dashboard_targets) == 1, "the dashboard is not mounted"
    folders = [
        provider["options"]["path"]
        for doc in _grafana_provisioning("dashboards")
        for provider in doc.get("providers", [])
    ]
    assert any(Path(dashboard_targets[0]).is_relative_to(folder) for folder in folders), folders
    json.loads((ROOT / "grafana" / "aivoice-dashboard.json").read_text())


def test_grafana_datasource_is_the_prometheus_service() -> None:
    urls = [
        source["url"]
        for doc in _grafana_provisioning("datasources")
        for source in doc.get("datasources", [])
        if source.get("type") == "prometheus"
    ]
    assert urls == [f"http://prometheus:{IMAGE_PORTS['prometheus']}"]


def test_grafana_knows_the_compose_scrape_interval() -> None:
    """$__rate_interval is built on the data source's timeInterval: it must be the real one."""
    config, _ = _prometheus_config()
    intervals = {
        source.get("jsonData", {}).get("timeInterval")
        for doc in _grafana_provisioning("datasources")
        for source in doc.get("datasources", [])
        if source.get("type") == "prometheus"
    }
    assert intervals == {config["global"]["scrape_interval"]}


# --- the systemd unit ---------------------------------------------------------------------------


def _unit() -> dict[str, list[str]]:
    """Key -> every value it is given (systemd allows repeats), continuations joined."""
    entries: dict[str, list[str]] = {}
    text = re.sub(r"\\\n\s*", " ", UNIT.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        entries.setdefault(key, []).append(value)
    return entries


def test_unit_reloads_the_exporter_with_sighup() -> None:
    assert _unit()["ExecReload"] == ["/bin/kill -HUP $MAINPID"]


def test_unit_hands_over_the_api_secret_as_a_credential() -> None:
    assert "api_secret:/etc/aivoice-exporter/api_secret" in _unit()["LoadCredential"]


def test_unit_command_line_is_one_the_exporter_accepts() -> None:
    from exporter.cli import listen_address, parse_args

    (exec_start,) = _unit()["ExecStart"]
    binary, *argv = shlex.split(exec_start)
    assert Path(binary).name == "aivoice-exporter"
    args = parse_args(argv)
    assert listen_address(args.listen_address)[1] == DEFAULT_PORT
    assert args.config_file == "/etc/aivoice-exporter/config.yaml"


def test_unit_keeps_the_call_state_in_its_state_directory() -> None:
    from exporter.cli import parse_args

    (exec_start,) = _unit()["ExecStart"]
    args = parse_args(shlex.split(exec_start)[1:])
    (directory,) = _unit()["StateDirectory"]
    assert args.storage_path == f"/var/lib/{directory}"


def _analyzable_unit(tmp_path: Path) -> Path:
    """The unit, its binary pointed at one that exists (`verify` insists on that)."""
    unit = tmp_path / UNIT.name
    unit.write_text(
        UNIT.read_text().replace("/opt/aivoice-exporter/bin/aivoice-exporter", "/bin/true")
    )
    return unit


def _security(unit: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return _run(
        [require_tool("systemd-analyze"), "security", "--offline=yes", *options, str(unit)],
        unit.parent,
    )


# What `systemd-analyze security` counts against the unit, and why the exporter needs it.
UNIT_EXPOSURES = frozenset(
    {
        "RestrictAddressFamilies_AF_INET_INET6",  # The API, and Prometheus scraping.
        "RestrictAddressFamilies_AF_UNIX",  # journald, and DNS through nscd.
        "PrivateNetwork",  # It needs the host's network, for the same reasons.
        "IPAddressDeny",  # The API's address is the user's to choose.
        "DeviceAllow",  # No list of devices: PrivateDevices= and DevicePolicy=closed confine them.
        "PrivateMounts",  # It mounts nothing.
        "RootDirectoryOrRootImage",  # It runs from a venv on the host's file system.
    }
)


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    verify = _run(
        [require_tool("systemd-analyze"), "verify", str(_analyzable_unit(tmp_path))], tmp_path
    )
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr


def test_systemd_rates_the_unit_safe(tmp_path: Path) -> None:
    security = _security(_analyzable_unit(tmp_path), "--threshold=20")
    assert security.returncode == 0, security.stdout[-2000:]
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert exposure and float(exposure.group(1)) <= 2.0, security.stdout[-500:]


def test_systemd_finds_every_protection_on_but_what_the_exporter_needs(tmp_path: Path) -> None:
    security = _security(_analyzable_unit(tmp_path), "--json=short")
    assert security.returncode == 0, security.stderr
    missing = {check["json_field"] for check in json.loads(security.stdout) if not check["set"]}
    assert missing <= UNIT_EXPOSURES, sorted(missing - UNIT_EXPOSURES)
