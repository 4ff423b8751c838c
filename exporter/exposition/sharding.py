"""The families of a process among several: which shard it serves, and the pushes it forwards.

The shard gauges are fixed for the process's life (they come from its flags); the forwards
move with every push, so they are rendered at each scrape, like the call counters.
"""

from __future__ import annotations

from collections.abc import Mapping

from exporter.config.shard import Shard
from exporter.exposition.families import (
    PUSH_FORWARDS,
    SHARD,
    TOTAL_SHARDS,
    Section,
    encode,
    result_counter,
    value_text,
)


def shard_sections(shard: Shard) -> list[Section]:
    """# TYPE aivoice_exporter_shard gauge
    aivoice_exporter_shard 1.0
    # TYPE aivoice_exporter_total_shards gauge
    aivoice_exporter_total_shards 3.0
    """
    return [
        (SHARD, encode([f"aivoice_exporter_shard {value_text(shard.index)}\n"])),
        (TOTAL_SHARDS, encode([f"aivoice_exporter_total_shards {value_text(shard.total)}\n"])),
    ]


def render_forwards(results: Mapping[str, int], openmetrics: bool) -> bytes:
    """# TYPE aivoice_push_forwards_total counter
    aivoice_push_forwards_total{result="dropped"} 0.0
    aivoice_push_forwards_total{result="failure"} 2.0
    aivoice_push_forwards_total{result="success"} 5120.0
    """
    return result_counter(PUSH_FORWARDS, results, openmetrics)
