"""Exporter config documents aimed at a simulator, and the credentials they share with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import yaml

API_KEY = "testKey1"
API_SECRET = "test-secret-value"
APP_IDS = ("APP_A", "APP_B")


class HasBaseUrl(Protocol):
    @property
    def base_url(self) -> str: ...


def config_for(sim: HasBaseUrl, **sections: Any) -> dict[str, Any]:
    """A valid config document aimed at the simulator; `sections` override parts of it."""
    config: dict[str, Any] = {
        "api": {"base_url": sim.base_url, "timeout_seconds": 2, "max_requests_per_second": 200},
        "poll": {"interval_seconds": 1, "concurrency": 4, "stale_after_seconds": 30},
        "accounts": [{"api_key": API_KEY, "api_secret": API_SECRET, "app_ids": list(APP_IDS)}],
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values} if isinstance(values, dict) else values
    return config


def write_config(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path
