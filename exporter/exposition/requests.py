"""The API request families of one app (or one account, for getBalance): counts, errors by
code, latency, and how the app's task-list reads went.
"""

from __future__ import annotations

from exporter.api.stats import DURATION_BOUNDS
from exporter.exposition.families import Fragments, encode, escape, value_text
from exporter.snapshot import (
    EndpointStats,
    RequestStats,
)

_BUCKET_BOUNDS = (*(repr(float(bound)) for bound in DURATION_BOUNDS), "+Inf")


def render_requests(app_id: str, stats: RequestStats, label: str = "app_id") -> Fragments:
    """One app's lines for each of REQUEST_FAMILIES, each endpoint's after the other.

    # TYPE aivoice_api_requests_total counter
    aivoice_api_requests_total{app_id="LILIN888",endpoint="taskList"} 42.0
    # TYPE aivoice_api_errors_total counter
    aivoice_api_errors_total{app_id="LILIN888",code="-4",endpoint="taskList"} 0.0
    # TYPE aivoice_api_request_duration_seconds histogram
    aivoice_api_request_duration_seconds_count{app_id="LILIN888",endpoint="taskList"} 42.0
    # TYPE aivoice_poll_reads_total counter
    aivoice_poll_reads_total{app_id="LILIN888",result="consistent"} 5.0

    `label` is `account` for getBalance, which is counted per account: `app_id` is then the
    account's label value (the names sort alike before `code` and `endpoint`).
    """
    app_label = f'{label}="{escape(app_id)}"'
    requests, errors, duration = [], [], []
    for endpoint, counts in sorted(stats.endpoints.items()):
        endpoint_label = f'endpoint="{escape(endpoint)}"'
        labels = f"{app_label},{endpoint_label}"
        requests.append(f"aivoice_api_requests_total{{{labels}}} {value_text(counts.requests)}\n")
        errors += [  # Label names in order, as client_python writes them.
            f'aivoice_api_errors_total{{{app_label},code="{escape(code)}",{endpoint_label}}} '
            f"{value_text(count)}\n"
            for code, count in sorted(counts.errors.items())
        ]
        duration += _duration_lines(labels, counts)
    reads = [
        f'aivoice_poll_reads_total{{{app_label},result="{escape(result)}"}} {value_text(count)}\n'
        for result, count in sorted(stats.reads.items())
    ]
    return encode(requests), encode(errors), encode(duration), encode(reads)


def _duration_lines(labels: str, counts: EndpointStats) -> list[str]:
    """The latency histogram of one app's endpoint; none when nothing was recorded."""
    if len(counts.duration_buckets) != len(_BUCKET_BOUNDS):
        return []
    name = "aivoice_api_request_duration_seconds"
    lines = [
        f'{name}_bucket{{{labels},le="{bound}"}} {value_text(count)}\n'
        for bound, count in zip(_BUCKET_BOUNDS, counts.duration_buckets, strict=True)
    ]
    lines.append(f"{name}_count{{{labels}}} {value_text(counts.duration_buckets[-1])}\n")
    lines.append(f"{name}_sum{{{labels}}} {value_text(counts.duration_sum)}\n")
    return lines
