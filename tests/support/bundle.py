"""The monitoring bundle as committed: every dashboard and every rule file, Kubernetes copies too.

The lint and the Grafana schema check read these files, not the source they are generated from,
so they check what users load. Each file is named by its path relative to the repository (a
ConfigMap's dashboard as `path:key`), which is how failures name it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.support.mixin import ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _kubernetes_documents(kind: str) -> dict[Path, dict[str, Any]]:
    """path -> the document of this kind, over the Kubernetes manifests."""
    found = {}
    for path in sorted(KUBERNETES.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(document, dict) and document.get("kind") == kind:
                found[path] = document
    return found


def dashboards() -> dict[str, dict[str, Any]]:
    """name -> dashboard, for grafana/*.json and every dashboard ConfigMap's JSON."""
    found = {
        _relative(path): json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((ROOT / "grafana").glob("*.json"))
    }
    for path, config_map in _kubernetes_documents("ConfigMap").items():
        for key, text in (config_map.get("data") or {}).items():
            if key.endswith(".json"):
                found[f"{_relative(path)}:{key}"] = json.loads(text)
    return found


def rule_groups() -> dict[str, list[dict[str, Any]]]:
    """name -> rule groups, for prometheus/*.yml that hold rules and every PrometheusRule."""
    found = {}
    for path in sorted((ROOT / "prometheus").glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(document, dict) and "groups" in document:
            found[_relative(path)] = document["groups"]
    for path, resource in _kubernetes_documents("PrometheusRule").items():
        found[_relative(path)] = resource["spec"]["groups"]
    return found
