"""What one read of an app found: its task list, trusted or not, or a window's call records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from exporter.api.paging import MAX_PAGES
from exporter.api.records import CallRecord, RecordPage
from exporter.api.wire import Page
from exporter.snapshot import Task


@dataclass(frozen=True)
class TaskRead:
    """An app's task list as one read found it.

    `consistent` is False when even the last re-read could not be trusted; `problem` says why.
    `truncated` is True when the app has more than `MAX_PAGES` pages and the rest was left out.
    """

    tasks: tuple[Task, ...]
    total: int
    consistent: bool = True
    problem: str = ""
    truncated: bool = False
    pages: int = 0  # Pages this read took.

    @property
    def missing(self) -> int:
        return abs(self.total - len(self.tasks))


@dataclass(frozen=True)
class CallRead:
    """An app's call records for one window, as one read of every page found them.

    `records` keeps every page's records in page order, duplicates included (pages shift as
    calls end); `rejected` has one `RecordError` kind per record that could not be read;
    `truncated` is True when the window has more than `MAX_PAGES` pages and the rest was left out.
    """

    records: tuple[CallRecord, ...]
    rejected: tuple[str, ...]
    truncated: bool = False
    total: int = 0  # The window's calls, as the last page answered counts them.
    pages: int = 0  # Requests this read took.


def task_read(pages: Sequence[Page]) -> TaskRead:
    """One read's tasks, each `jobId` once, and whether the read can be trusted: every page
    reports the same `total`, and the distinct `jobId`s number exactly that total."""
    unique: dict[str, Task] = {}
    for page in pages:
        for task in page.tasks:
            unique.setdefault(task.job_id, task)
    tasks = tuple(unique.values())
    totals = sorted({page.total for page in pages})
    total = pages[-1].total
    truncated = pages[0].pages > MAX_PAGES
    if len(totals) > 1:
        problem = f"the pages' totals differ ({totals[0]} to {totals[-1]}): tasks changed meanwhile"
        return TaskRead(tasks, total, False, problem, truncated=truncated, pages=len(pages))
    if len(tasks) != total and not truncated:
        problem = f"{len(tasks)} distinct tasks where the API counts {total}"
        return TaskRead(tasks, total, consistent=False, problem=problem, pages=len(pages))
    return TaskRead(tasks, total, truncated=truncated, pages=len(pages))


def call_read(pages: Sequence[RecordPage], *, whole: bool = True) -> CallRead:
    """Every page's records and rejections, in page order; `whole` False for a read of the
    first page only (a window's `total`), which is never truncated."""
    return CallRead(
        records=tuple(record for page in pages for record in page.records),
        rejected=tuple(kind for page in pages for kind in page.rejected),
        truncated=whole and max(page.pages for page in pages) > MAX_PAGES,
        total=pages[-1].total,
        pages=len(pages),
    )
