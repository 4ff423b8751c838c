"""Reading YAML and typed fields out of it, each problem a `ConfigError` naming the field.

Shared by the config file and the web config file, so both answer a mistake the same way: one
line, the field's path, what was wrong.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import yaml

from exporter.config.model import ConfigError

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

T = TypeVar("T")


def read_text(path: str | os.PathLike[str], field: str, what: str) -> str:
    """A UTF-8 file's text; every way of failing becomes a `ConfigError` on `field`."""
    shown = os.fspath(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(field, f"cannot read {what} {shown}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(field, f"{what} {shown} is not UTF-8 text") from None
    except ValueError:  # A NUL byte or a lone surrogate in the path.
        raise ConfigError(field, f"{what} path {shown!r} is not usable") from None


def read_yaml(path: str | os.PathLike[str], field: str, what: str) -> Any:
    """A YAML file's document; unreadable files and bad syntax become a `ConfigError`."""
    shown = os.fspath(path)
    text = read_text(path, field, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(field, f"{shown}: {problem}{at}") from None
    except RecursionError:
        raise ConfigError(field, f"{shown}: nested too deeply") from None
    except ValueError as err:  # A scalar YAML types but Python refuses: 2024-13-45, 10**5000.
        raise ConfigError(field, f"{shown}: invalid value: {err}") from None


def expand(value: str, where: str, environ: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ConfigError(where, f"environment variable {name} is not set")
        return environ[name]

    return ENV_REFERENCE.sub(replace, value)


def mapping(
    data: Any,
    where: str,
    allowed: AbstractSet[str],
    *,
    root: str = "",
    unsupported: Mapping[str, str] = MappingProxyType({}),
) -> Mapping[str, Any]:
    """A section of a YAML document, checked for unknown keys; None is an empty section.

    `where` is the section's dotted path ("" for the document itself, whose errors name `root`
    if given); `unsupported` names keys the format knows but this exporter does not implement,
    with what to do instead.
    """
    if data is None:
        return {}
    if not isinstance(data, dict):
        if where or root:
            raise ConfigError(where or root, "must be a mapping")
        raise ConfigError("", "the config file must be a YAML mapping")
    for key in data:
        if key not in allowed:
            name = f"{where}.{key}" if where else str(key)
            if name in unsupported:
                raise ConfigError(name, f"not supported by this exporter; {unsupported[name]}")
            raise ConfigError(name, f"unknown key (expected one of: {', '.join(sorted(allowed))})")
    return data


def get(section: Mapping[str, Any], where: str, key: str, kind: type[T], default: T) -> T:
    value = section.get(key, default)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigError(f"{where}.{key}", f"must be a {_KIND_NAMES[kind]}, got {value!r}")
    return value


def integer(
    section: Mapping[str, Any], where: str, key: str, default: int, low: int, high: int
) -> int:
    return _in_range(get(section, where, key, int, default), f"{where}.{key}", low, high)


def number(
    section: Mapping[str, Any], where: str, key: str, default: float, low: float, high: float
) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}.{key}", f"must be a number, got {value!r}")
    return float(_in_range(value, f"{where}.{key}", low, high))


N = TypeVar("N", int, float)


def _in_range(value: N, where: str, low: float, high: float) -> N:
    if not low <= value <= high:
        raise ConfigError(where, f"must be between {low:g} and {high:g}, got {value!r}")
    return value


_KIND_NAMES: dict[type, str] = {str: "string", int: "whole number", bool: "boolean (true/false)"}
