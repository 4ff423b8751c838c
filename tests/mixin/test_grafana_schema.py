"""Every committed dashboard, decoded by Grafana's own schema and encoded again, keeps every key.

Grafana cannot run here, but Grafana Labs publishes its schema as grafana-foundation-sdk, one
build per Grafana release (the pin in pyproject.toml says which). Its models, with the panel
plugins and query types registered, type everything down to a panel's `options`, its
`fieldConfig.defaults.custom` and each Prometheus query, and decoding drops every key they do not
know. A key Grafana would silently ignore (a typo, a setting from another version or panel type)
is therefore a key the round trip loses or changes; the test names the panel and the key.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.bundle import dashboards

if sys.version_info < (3, 11):
    pytest.skip("grafana-foundation-sdk needs Python 3.11", allow_module_level=True)

from grafana_foundation_sdk.cog import runtime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import prometheus
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel, RowPanel

# Keys the round trip may lose, as paths with [*] for any index; keep this list short.
LOST_ON_PURPOSE = frozenset(
    {
        # A query variable's `definition` is the label Grafana's variable editor shows for the
        # query, kept beside the `query` it was made from; the schema has only `query`, from
        # which Grafana rebuilds it when the variable is edited.
        "templating.list[*].definition",
    }
)

DASHBOARDS = dashboards()

register_default_plugins()


def round_trip(dashboard: dict[str, Any]) -> dict[str, Any]:
    """The dashboard as Grafana's schema sees it: decoded by the SDK's models, encoded again."""
    encoded: dict[str, Any] = json.loads(
        json.dumps(Dashboard.from_json(dashboard), cls=JSONEncoder)
    )
    return encoded


def changes(before: Any, after: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, what happened) for every key of `before` that `after` lost or changed.

    Keys only `after` has are the schema's defaults filled in, which Grafana assumes anyway.
    """
    if isinstance(before, dict) and isinstance(after, dict):
        for key, value in before.items():
            where = f"{path}.{key}" if path else key
            if key in after:
                yield from changes(value, after[key], where)
            else:
                yield where, "lost"
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            yield from changes(old, new, f"{path}[{index}]")
    elif type(before) is not type(after) or before != after:
        yield path, f"was {before!r}, is {after!r}"


def _where(dashboard: dict[str, Any], path: str) -> str:
    """The path, with the panel it is in named by title and id."""
    match = re.match(r"panels\[(\d+)\](?:\.panels\[(\d+)\])?\.?", path)
    if not match:
        return path
    panel = dashboard["panels"][int(match.group(1))]
    if match.group(2) is not None:
        panel = panel["panels"][int(match.group(2))]
    return f"panel {panel.get('title')!r} (id {panel.get('id')}): {path[match.end() :]}"


def schema_findings(name: str, dashboard: dict[str, Any]) -> list[str]:
    return [
        f"{name}: {_where(dashboard, path)} {what}"
        for path, what in changes(dashboard, round_trip(dashboard))
        if re.sub(r"\[\d+\]", "[*]", path) not in LOST_ON_PURPOSE
    ]


def _decoded_panels(dashboard: dict[str, Any]) -> Iterator[Panel]:
    """The decoded panels that are not rows, those nested in rows included."""
    for panel in Dashboard.from_json(dashboard).panels or []:
        if isinstance(panel, RowPanel):
            yield from (p for p in panel.panels or [] if isinstance(p, Panel))
        else:
            yield panel


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_keeps_every_key_through_grafanas_schema(name: str) -> None:
    findings = schema_findings(name, DASHBOARDS[name])
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_panel_and_query_is_decoded_by_a_typed_model(name: str) -> None:
    """A panel type or query the SDK has no model for would pass through untouched, unchecked."""
    for panel in _decoded_panels(DASHBOARDS[name]):
        where = f"{name}: panel {panel.title!r} (id {panel.id_val})"
        plugin = runtime.panelcfg_config(panel.type_val)
        assert plugin is not None, f"{where}: the schema has no panel type {panel.type_val!r}"
        assert not isinstance(panel.options, dict), f"{where}: options not typed"
        custom = panel.field_config.defaults.custom if panel.field_config else None
        if plugin.field_config_from_json_hook is not None:
            assert not isinstance(custom, dict), f"{where}: fieldConfig.defaults.custom not typed"
        for target in panel.targets or []:
            assert isinstance(target, prometheus.Dataquery), f"{where}: {target!r} not typed"


def test_every_key_lost_on_purpose_is_still_lost() -> None:
    """Each exception is still needed: without it, the dashboard fails."""
    name, dashboard = next(iter(DASHBOARDS.items()))
    lost = {
        re.sub(r"\[\d+\]", "[*]", path) for path, _ in changes(dashboard, round_trip(dashboard))
    }
    assert lost >= LOST_ON_PURPOSE, name


# --- a typo anywhere in a panel is found ----------------------------------------------------


def _timeseries() -> tuple[dict[str, Any], dict[str, Any]]:
    """A copy of the first dashboard, and its first time series panel."""
    dashboard = copy.deepcopy(next(iter(DASHBOARDS.values())))
    panel = next(p for p in dashboard["panels"] if p["type"] == "timeseries")
    return dashboard, panel


def _typo_found(dashboard: dict[str, Any], panel: dict[str, Any], key: str) -> None:
    assert schema_findings("d", dashboard) == [
        f"d: panel {panel['title']!r} (id {panel['id']}): {key} lost"
    ]


def test_a_typo_in_a_panels_options_is_found() -> None:
    dashboard, panel = _timeseries()
    panel["options"]["legend"]["dispalyMode"] = "list"
    _typo_found(dashboard, panel, "options.legend.dispalyMode")


def test_a_typo_in_a_panels_field_config_defaults_is_found() -> None:
    dashboard, panel = _timeseries()
    panel["fieldConfig"]["defaults"]["unitt"] = "s"
    _typo_found(dashboard, panel, "fieldConfig.defaults.unitt")


def test_a_typo_in_a_panels_custom_field_config_is_found() -> None:
    dashboard, panel = _timeseries()
    panel["fieldConfig"]["defaults"]["custom"]["lineWidht"] = 2
    _typo_found(dashboard, panel, "fieldConfig.defaults.custom.lineWidht")


def test_a_typo_in_a_target_is_found() -> None:
    dashboard, panel = _timeseries()
    panel["targets"][0]["legendFromat"] = "{{app_id}}"
    _typo_found(dashboard, panel, "targets[0].legendFromat")


def test_a_typo_in_a_panel_nested_in_a_collapsed_row_is_found() -> None:
    dashboard, panel = _timeseries()
    dashboard["panels"].remove(panel)
    row = next(p for p in dashboard["panels"] if p["type"] == "row")
    row |= {"collapsed": True, "panels": [panel]}
    panel["options"]["tooltip"]["mdoe"] = "multi"
    _typo_found(dashboard, panel, "options.tooltip.mdoe")


def test_changes_names_lost_keys_and_changed_values_but_not_added_defaults() -> None:
    before = {"a": {"b": 1, "c": [1, {"d": True}]}, "e": [1, 2], "f": 1}
    after = {"a": {"c": [1, {"d": 1}], "x": 0}, "e": [1], "f": 1.0}
    assert list(changes(before, after)) == [
        ("a.b", "lost"),
        ("a.c[1].d", "was True, is 1"),
        ("e", "was [1, 2], is [1]"),
        ("f", "was 1, is 1.0"),
    ]
