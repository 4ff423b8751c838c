"""The sdist and the wheel a user installs: built as a packager builds them (`python -m build`,
with build isolation, so the newest setuptools pyproject.toml allows comes from PyPI), they
build without a deprecation warning and hold the package, the license and the README, and
nothing else of the repository: no tests, no build debris. The build debris it leaves in the
clone, as `pip install .` does, keeps `ruff` passing there.

A new setuptools that deprecates something pyproject.toml says fails here first, long before
it stops building the project. The build runs on a copy of the repository in a temporary
directory: setuptools writes its egg-info next to the sources, and none of that may land in
the repository.
"""

from __future__ import annotations

import email.message
import email.parser
import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import exporter
from tests.support.tools import unavailable

ROOT = Path(__file__).resolve().parents[2]
NAME = "aivoice-exporter"
STEM = f"aivoice_exporter-{exporter.__version__}"
LICENSE = "Apache-2.0"
# What a clean clone does not hold: the developer's venv and caches, and earlier builds.
NOT_IN_A_CLONE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    "build",
    "dist",
    ".*_cache",
    ".hypothesis",
)
# What setuptools puts into every sdist besides the sources: the metadata, twice over.
SDIST_METADATA = {"PKG-INFO", "setup.cfg"}
SDIST_SOURCES = {"pyproject.toml", "README.md", "LICENSE"}


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path
    output: str
    source: Path  # The copy of the repository it was built from, build debris and all.


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    if importlib.util.find_spec("build") is None:
        unavailable("the `build` package is missing (`make test` installs the test extra)")
    tmp = tmp_path_factory.mktemp("distribution")
    source = tmp / "clone"
    shutil.copytree(ROOT, source, ignore=NOT_IN_A_CLONE)
    result = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(tmp / "dist"),
         str(source)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    (sdist,) = (tmp / "dist").glob("*.tar.gz")
    (wheel,) = (tmp / "dist").glob("*.whl")
    return Built(sdist=sdist, wheel=wheel, output=output, source=source)


def _package_files() -> set[str]:
    """The package's modules as the repository holds them, relative to its root."""
    return {str(p.relative_to(ROOT)) for p in (ROOT / "exporter").rglob("*.py")}


def _wheel_files(built: Built) -> list[str]:
    with zipfile.ZipFile(built.wheel) as wheel:
        return wheel.namelist()


def _sdist_files(built: Built) -> list[str]:
    """Member files, relative to the sdist's top directory."""
    with tarfile.open(built.sdist) as sdist:
        names = [m.name for m in sdist.getmembers() if m.isfile()]
    assert all(n.startswith(f"{STEM}/") for n in names), names
    return [n.removeprefix(f"{STEM}/") for n in names]


def _wheel_metadata(built: Built) -> email.message.Message:
    with zipfile.ZipFile(built.wheel) as wheel:
        text = wheel.read(f"{STEM}.dist-info/METADATA").decode()
    return email.parser.Parser().parsestr(text)


def _debris(names: list[str]) -> list[str]:
    """Tests, caches and build output, wherever they are."""
    unwanted = {"tests", "test", "__pycache__", "build", "dist", ".pytest_cache"}
    return [n for n in names if unwanted & set(n.split("/")) or n.endswith((".pyc", ".pyo"))]


@pytest.mark.slow
def test_lint_passes_in_a_clone_a_build_has_left_its_debris_in(built: Built) -> None:
    """`pip install .` builds the same way, in the clone: setuptools' `build/` stays beside
    pyproject.toml, and ruff must not take it for a package of the project."""
    assert (built.source / "build").is_dir()
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--no-cache", "."],
            cwd=built.source, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.slow
def test_build_gives_no_deprecation_warning(built: Built) -> None:
    """setuptools warns for years before it stops building a form it deprecated."""
    warned = [line for line in built.output.splitlines() if re.search("deprecat", line, re.I)]
    assert not warned, "\n".join(warned)


@pytest.mark.slow
def test_wheel_holds_the_package_the_license_and_its_metadata_only(built: Built) -> None:
    names = _wheel_files(built)
    assert not _debris(names), _debris(names)
    package = {n for n in names if not n.startswith(f"{STEM}.dist-info/")}
    assert package == _package_files()
    metadata = {n.removeprefix(f"{STEM}.dist-info/") for n in names} - package
    assert metadata == {
        "METADATA", "WHEEL", "RECORD", "entry_points.txt", "top_level.txt", "licenses/LICENSE"
    }  # fmt: skip


@pytest.mark.slow
def test_wheel_carries_the_license_text_and_expression(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        shipped = wheel.read(f"{STEM}.dist-info/licenses/LICENSE")
    assert shipped == (ROOT / "LICENSE").read_bytes()
    metadata = _wheel_metadata(built)
    assert metadata["License-Expression"] == LICENSE
    assert metadata.get_all("License-File") == ["LICENSE"]


@pytest.mark.slow
def test_wheel_long_description_is_the_readme(built: Built) -> None:
    metadata = _wheel_metadata(built)
    assert metadata["Description-Content-Type"] == "text/markdown"
    assert metadata.get_payload() == (ROOT / "README.md").read_text()


@pytest.mark.slow
def test_sdist_holds_the_package_the_license_the_readme_and_its_metadata_only(
    built: Built,
) -> None:
    names = _sdist_files(built)
    assert not _debris(names), _debris(names)
    egg_info = {n for n in names if n.startswith("aivoice_exporter.egg-info/")}
    package = {n for n in names if n.startswith("exporter/")}
    assert package == _package_files()
    assert set(names) - egg_info - package == SDIST_SOURCES | SDIST_METADATA


@pytest.mark.slow
def test_sdist_ships_the_repositorys_license_and_readme(built: Built) -> None:
    with tarfile.open(built.sdist) as sdist:
        for name in ("LICENSE", "README.md"):
            member = sdist.extractfile(f"{STEM}/{name}")
            assert member is not None
            assert member.read() == (ROOT / name).read_bytes(), name


def test_license_file_is_the_license_the_project_declares() -> None:
    """Apache-2.0 in full: the terms, then the appendix on how to apply them."""
    declared = importlib.metadata.metadata(NAME)
    assert declared["License-Expression"] == LICENSE
    assert declared.get_all("License-File") == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    heading = [line.strip() for line in text.strip().splitlines()[:3]]
    assert heading == [
        "Apache License", "Version 2.0, January 2004", "http://www.apache.org/licenses/"
    ]  # fmt: skip
    for part in ("END OF TERMS AND CONDITIONS", "APPENDIX: How to apply the Apache License"):
        assert part in text, part
