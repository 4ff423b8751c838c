"""One app's task families, from its `AppSnapshot`: health, tasks by status, per-task series."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from exporter.config.model import MetricsConfig
from exporter.exposition.families import APP_FAMILIES, Fragments, encode, escape, value_text
from exporter.snapshot import (
    KNOWN_STATUSES,
    AppSnapshot,
    Task,
)

# Statuses beyond the known ones that get their own series in the per-status families, per app;
# the API's `status` is a free string, so the rest are summed under OTHER_STATUS.
MAX_OTHER_STATUSES = 20
OTHER_STATUS = "other"
PIECE_TASKS = 2_000  # Tasks whose lines are encoded together: pieces of about 100-200 kB.


def render_app(app: AppSnapshot, settings: MetricsConfig) -> Fragments:
    """One app's lines for each of APP_FAMILIES.

    # TYPE aivoice_up gauge
    aivoice_up{app_id="LILIN888"} 1.0
    # TYPE aivoice_tasks gauge
    aivoice_tasks{app_id="LILIN888",status="IN_PROCESS"} 3.0
    # TYPE aivoice_task_calls gauge
    aivoice_task_calls{app_id="LILIN888",job_id="20"} 500.0
    # TYPE aivoice_task_info gauge
    aivoice_task_info{app_id="LILIN888",dialog_flow="name8.12",dialog_flow_unbound="false",
      hangup_sms="false",job_id="20",line="line63",mode="AUTO",name="name8",status="IN_PROCESS"} 1.0
    """
    app_label = f'app_id="{escape(app.app_id)}"'
    health = _health_lines(app_label, app)
    if app.tasks is None:  # Nothing known is not the same as zero tasks.
        return health + ((),) * (len(APP_FAMILIES) - len(health))
    return (
        health + _status_lines(app_label, app.tasks) + _task_lines(app_label, app.tasks, settings)
    )


def _health_lines(app_label: str, app: AppSnapshot) -> Fragments:
    labels = f"{{{app_label}}} "
    up = f"aivoice_up{labels}{1.0 if app.up else 0.0}\n"
    duration = f"aivoice_poll_duration_seconds{labels}{value_text(app.poll_duration_seconds)}\n"
    success = []
    if app.last_success_seconds is not None:
        seconds = value_text(app.last_success_seconds)
        success.append(f"aivoice_poll_last_success_timestamp_seconds{labels}{seconds}\n")
    return encode([up]), encode([duration]), encode(success)


def status_sums(tasks: Iterable[Task]) -> dict[str, tuple[int, int, int]]:
    """Tasks, calls and completed calls per status, every known status present.

    At most MAX_OTHER_STATUSES unknown statuses keep their own entry (those with the most tasks,
    then by name); the rest, and a status that is literally OTHER_STATUS, go under OTHER_STATUS.
    """
    sums = {status: [0, 0, 0] for status in KNOWN_STATUSES}
    for task in tasks:
        counts = sums.setdefault(task.status, [0, 0, 0])
        counts[0] += 1
        counts[1] += task.calls
        counts[2] += task.calls_completed
    unknown = [status for status in sums if status not in KNOWN_STATUSES]
    if len(unknown) > MAX_OTHER_STATUSES or OTHER_STATUS in unknown:
        ranked = sorted(
            (status for status in unknown if status != OTHER_STATUS),
            key=lambda status: (-sums[status][0], status),
        )
        other = [0, 0, 0]
        for status in [OTHER_STATUS, *ranked[MAX_OTHER_STATUSES:]]:
            for index, count in enumerate(sums.pop(status, (0, 0, 0))):
                other[index] += count
        sums[OTHER_STATUS] = other
    return {status: (count, calls, done) for status, (count, calls, done) in sums.items()}


def _status_lines(app_label: str, tasks: Iterable[Task]) -> Fragments:
    tasks_lines, calls_lines, completed_lines = [], [], []
    for status, (count, calls, done) in status_sums(tasks).items():
        labels = f'{{{app_label},status="{escape(status)}"}} '
        tasks_lines.append(f"aivoice_tasks{labels}{value_text(count)}\n")
        calls_lines.append(f"aivoice_calls{labels}{value_text(calls)}\n")
        completed_lines.append(f"aivoice_calls_completed{labels}{value_text(done)}\n")
    return encode(tasks_lines), encode(calls_lines), encode(completed_lines)


def _task_lines(app_label: str, tasks: Sequence[Task], settings: MetricsConfig) -> Fragments:
    """The per-task families, encoded every PIECE_TASKS tasks.

    Joining 50,000 tasks' lines in one go would hold them twice over, as a str per line and as
    the joined text, about 130 MB at the peak; in pieces the peak is the result and one piece.
    """
    if not settings.per_task:
        return ((),) * 5
    wanted = frozenset(settings.per_task_statuses)
    seen: set[str] = set()  # The poller never publishes a jobId twice; if it did, once here.
    pending: list[list[str]] = [[], [], [], [], []]
    pieces: list[list[bytes]] = [[], [], [], [], []]
    calls, completed, robots, created, info = pending
    for task in tasks:
        if (wanted and task.status not in wanted) or task.job_id in seen:
            continue
        seen.add(task.job_id)
        if len(seen) % PIECE_TASKS == 0:
            _move_encoded(pending, pieces)
        job_id = escape(task.job_id)
        key = f'{{{app_label},job_id="{job_id}"}} '
        calls.append(f"aivoice_task_calls{key}{value_text(task.calls)}\n")
        completed.append(f"aivoice_task_calls_completed{key}{value_text(task.calls_completed)}\n")
        robots.append(f"aivoice_task_robots{key}{value_text(task.robots)}\n")
        if task.created_seconds is not None:
            created.append(
                f"aivoice_task_created_timestamp_seconds{key}{value_text(task.created_seconds)}\n"
            )
        info.append(
            f'aivoice_task_info{{{app_label},dialog_flow="{escape(task.dialog_flow)}",'
            f'dialog_flow_unbound="{_flag(task.dialog_flow_unbound)}",'
            f'hangup_sms="{_flag(task.hangup_sms)}",job_id="{job_id}",line="{escape(task.line)}",'
            f'mode="{escape(task.mode)}",name="{escape(task.name)}",'
            f'status="{escape(task.status)}"}} 1.0\n'
        )
    _move_encoded(pending, pieces)
    return tuple(tuple(family) for family in pieces)


def _move_encoded(pending: list[list[str]], pieces: list[list[bytes]]) -> None:
    for lines, encoded in zip(pending, pieces, strict=True):
        encoded.extend(encode(lines))
        lines.clear()


def _flag(value: bool) -> str:
    return "true" if value else "false"
