"""Releases: the image installs pinned, hashed dependencies, and the changelog keeps its shape."""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import exporter

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.txt"
CHANGELOG = ROOT / "CHANGELOG.md"


def _locked() -> dict[str, tuple[Version, list[str]]]:
    """Name -> (pinned version, hashes), from the lock's `name==version \\ --hash=...` entries."""
    text = re.sub(r"\\\n", " ", LOCK.read_text())
    entries: dict[str, tuple[Version, list[str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split()
        name, _, version = requirement.partition("==")
        assert version, f"not pinned: {line}"
        hashes = [o.removeprefix("--hash=") for o in options if o.startswith("--hash=sha256:")]
        entries[canonicalize_name(name)] = (Version(version), hashes)
    return entries


def _runtime_requirements() -> list[Requirement]:
    """pyproject's dependencies, as the installed project declares them (extras left out)."""
    declared = [Requirement(r) for r in importlib.metadata.requires("aivoice-exporter") or []]
    return [r for r in declared if not r.marker or r.marker.evaluate({"extra": ""})]


def _closure(requirements: list[Requirement]) -> set[str]:
    """The distributions these requirements install, transitively (extras left out)."""
    found: set[str] = set()
    todo = list(requirements)
    while todo:
        requirement = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        if name not in found:
            found.add(name)
            todo.extend(Requirement(r) for r in importlib.metadata.requires(name) or [])
    return found


def test_lock_pins_exactly_the_runtime_dependencies() -> None:
    assert set(_locked()) == _closure(_runtime_requirements())


def test_lock_versions_satisfy_pyproject() -> None:
    locked = _locked()
    for requirement in _runtime_requirements():
        version, _ = locked[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), f"{requirement} vs {version}"


def test_every_locked_package_carries_its_hashes() -> None:
    for name, (_, hashes) in _locked().items():
        assert hashes, f"{name} has no --hash"


def test_dockerfile_installs_the_lock_requiring_hashes() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = re.search(r"^COPY requirements\.txt (\S+)$", dockerfile, re.M)
    assert copied, "the Dockerfile does not copy requirements.txt"
    install = re.search(r"pip install --require-hashes [^\n]*\\\n\s*-r (\S+)", dockerfile)
    assert install and install.group(1) == copied.group(1)


def _headings() -> list[str]:
    return re.findall(r"^## (.+)$", CHANGELOG.read_text(), re.M)


def test_changelog_has_unreleased_first_then_dated_versions() -> None:
    first, *released = _headings()
    assert first == "[Unreleased]"
    for heading in released:
        assert re.fullmatch(r"\[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}", heading), heading


def test_no_release_in_the_changelog_is_newer_than_the_version() -> None:
    """A release heading added without bumping exporter/__init__.py fails here."""
    released = [Version(re.findall(r"\[(.+?)\]", h)[0]) for h in _headings()[1:]]
    assert all(version <= Version(exporter.__version__) for version in released)
