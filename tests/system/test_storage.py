"""`--storage.path` end to end: the real exporter process, stopped and started again.

The simulator runs in the test's process on a clock that stands still until the test steps it
to the present (the exporter's own clock is the real one, so the step keeps the two within the
API's five minutes). The calls that end while the exporter is stopped are then exactly those the
simulator shows after a step and did not show before it, and the exporter's counters are checked
against them.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from exporter.calls.counts import call_digest
from exporter.calls.storage import FAILURE, SUCCESS, StateStore, decode, file_name
from exporter.simulator import Simulator
from tests.support.clock import SteppedClock
from tests.support.configs import API_KEY, API_SECRET, APP_IDS, config_for, write_config
from tests.support.exposition import call_results, scraped
from tests.support.processes import ExporterProcess, start_exporter_process
from tests.support.tools import require_tool, unavailable, wait_until

A, B = APP_IDS
DEADLINE = 120.0  # For what a loaded two-core machine may take: a poll, a start, a write.
STEP_SECONDS = 4  # Real seconds a step moves the simulator on at least: a dozen calls per app.

pytestmark = pytest.mark.slow


class Run:
    """The simulator, its clock, the exporter's config and state directory, and the exporter
    processes started on them, one at a time."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = SteppedClock(STEP_SECONDS, DEADLINE)
        # Two tasks an app at speed 1: about four calls a second; calls last at most 11 minutes,
        # so the default 900 s lookback brings every call back (docs/operations.md).
        self.simulator = Simulator(
            API_KEY, API_SECRET, APP_IDS, clock=self.clock, tasks_per_app=2
        ).start()
        self.state = tmp_path / "state"
        document = config_for(
            self.simulator,
            poll={"interval_seconds": 2, "timeout_seconds": 60},
            calls={"enabled": True},
        )
        self.config = write_config(tmp_path / "config.yaml", document)
        self.exporter: ExporterProcess | None = None

    def start(self, *flags: str, storage: bool = True) -> ExporterProcess:
        assert self.exporter is None or self.exporter.popen.poll() is not None
        more = ("--storage.path", str(self.state)) if storage else ()
        self.exporter = start_exporter_process(
            "--config.file", str(self.config), *more, *flags, wait=False
        )
        self.exporter.wait_until_listening(timeout=DEADLINE)
        wait_until(
            lambda: all(self.value("aivoice_calls_up", app_id=app) == 1 for app in APP_IDS),
            timeout=DEADLINE,
            ignoring=(requests.RequestException,),
            what="the first call-record read of every app",
        )
        return self.exporter

    def stop(self) -> None:
        self.simulator.stop()
        if self.exporter is not None:
            self.exporter.kill()

    def samples(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        assert self.exporter is not None
        return scraped(self.exporter.url, name)

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples(name).get(tuple(sorted(labels.items())))

    def results(self, app_id: str) -> dict[str, int]:
        assert self.exporter is not None
        return call_results(self.exporter.url, app_id)

    def ended(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every call that has ended, by app and callId, as the simulator shows them now."""
        return {app: {c["callId"]: c for c in self.simulator.calls(app)} for app in APP_IDS}

    def wait_for_results(self, expected: dict[str, collections.Counter[str]], what: str) -> None:
        """Wait until every app's counters are `expected`, then for two more reads of each
        app, and check that they still are: nothing comes late, nothing twice."""
        wanted = {app: dict(counts) for app, counts in expected.items()}
        wait_until(
            lambda: {app: self.results(app) for app in APP_IDS} == wanted,
            timeout=DEADLINE,
            what=what,
        )
        reads = self.reads()
        wait_until(
            lambda: all(self.reads()[app] >= reads[app] + 2 for app in APP_IDS),
            timeout=DEADLINE,
            what="two more call-record reads",
        )
        assert {app: self.results(app) for app in APP_IDS} == wanted

    def reads(self) -> dict[str, float]:
        return {
            app: self.value("aivoice_api_requests_total", app_id=app, endpoint="recordQuery") or 0
            for app in APP_IDS
        }

    def wait_stored(self, before: dict[str, Any], after: dict[str, Any], what: str) -> None:
        """Wait until each app's state file holds the calls in `after` but not in `before`
        (`ended()`s)."""
        wait_until(
            lambda: all(
                {call_digest(call_id) for call_id in set(after[app]) - set(before[app])}
                <= self.stored(app)
                for app in APP_IDS
            ),
            timeout=DEADLINE,
            what=what,
        )

    def stored(self, app_id: str) -> set[bytes]:
        """The digests the app's state file holds now (none while there is no file)."""
        path = self.state / file_name(app_id)
        if not path.exists():
            return set()
        return {call.digest for call in decode(path.read_bytes(), app_id).calls}


def outcomes(calls: dict[str, dict[str, Any]], ids: set[str]) -> collections.Counter[str]:
    return collections.Counter(calls[call_id]["resultStatus"] for call_id in ids)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    running = Run(tmp_path)
    yield running
    running.stop()


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_calls_that_end_while_the_exporter_is_stopped_count_once_after_it_starts_again(
    run: Run, stop: signal.Signals
) -> None:
    first = run.start()
    primed = run.ended()  # What the first reads remembered: never counted.
    run.clock.step()
    before = run.ended()
    run.wait_for_results(
        {app: outcomes(before[app], set(before[app]) - set(primed[app])) for app in APP_IDS},
        what="the calls that ended after the first read, counted",
    )
    if stop == signal.SIGKILL:  # Nothing is written at the end: wait for the write of the reads.
        run.wait_stored(primed, before, "the state files to hold every call counted")
    code = first.stop(stop, timeout=DEADLINE)
    assert code == (0 if stop == signal.SIGTERM else -signal.SIGKILL)

    run.clock.step()  # Calls end while no exporter runs.
    down = run.ended()
    assert all(set(down[app]) > set(before[app]) for app in APP_IDS)
    second = run.start()
    run.wait_for_results(
        {app: outcomes(down[app], set(down[app]) - set(before[app])) for app in APP_IDS},
        what="the calls that ended while the exporter was stopped, counted once",
    )
    second.wait_for_line(r"Resuming call-record reads where the previous run stopped")

    run.clock.step()  # And counting goes on from there.
    after = run.ended()
    run.wait_for_results(
        {app: outcomes(after[app], set(after[app]) - set(before[app])) for app in APP_IDS},
        what="the calls since the restart, counted once",
    )
    assert run.value("aivoice_storage_writes_total", result=FAILURE) == 0
    assert (run.value("aivoice_storage_writes_total", result=SUCCESS) or 0) > 0


def test_a_garbage_state_is_logged_and_the_exporter_starts_as_without_one(run: Run) -> None:
    run.state.mkdir()
    garbage = {app: run.state / file_name(app) for app in APP_IDS}
    garbage[A].write_bytes(b'{"format": "aivoice-exporter call state", "version": 1, "app_i')
    garbage[B].write_bytes(os.urandom(4096))
    exporter = run.start()
    primed = run.ended()
    for app, path in garbage.items():
        exporter.wait_for_line(rf"Ignoring the call state.* path={path} app_id={app}")
    assert {app: run.results(app) for app in APP_IDS} == {A: {}, B: {}}  # Only remembered.
    run.clock.step()
    now = run.ended()
    run.wait_for_results(
        {app: outcomes(now[app], set(now[app]) - set(primed[app])) for app in APP_IDS},
        what="the calls that ended after the first read, counted",
    )
    wait_until(
        lambda: all(run.stored(app) for app in APP_IDS),
        timeout=DEADLINE,
        what="good state files in place of the garbage",
    )


def test_the_state_holds_no_personal_data(run: Run) -> None:
    run.start()
    primed = run.ended()
    run.clock.step()
    ended = run.ended()
    run.wait_stored(primed, ended, "the state files to hold every call")
    assert run.exporter is not None
    run.exporter.stop(timeout=DEADLINE)
    data = b"".join(path.read_bytes() for path in run.state.iterdir())
    markers: set[str] = set()
    for calls in ended.values():
        for call in calls.values():
            markers |= {call["callId"], call["calledPhoneNumber"], call["customerPersonName"]}
            markers |= {v for v in (call["fullAudioUrl"], call["properties"]) if v}
    assert len(markers) > 1000  # The search had plenty to look for.
    found = sorted(marker for marker in markers if marker.encode() in data)
    assert found == []


def test_without_the_flag_nothing_is_written(run: Run, tmp_path: Path) -> None:
    before = sorted(tmp_path.rglob("*"))
    exporter = run.start(storage=False)
    primed = run.ended()
    run.clock.step()
    now = run.ended()
    run.wait_for_results(
        {app: outcomes(now[app], set(now[app]) - set(primed[app])) for app in APP_IDS},
        what="the calls that ended after the first read, counted",
    )
    assert run.samples("aivoice_storage_writes_total") == {}
    exporter.stop(timeout=DEADLINE)
    assert sorted(tmp_path.rglob("*")) == before
    assert not run.state.exists()


def test_a_reload_drops_the_state_of_a_removed_app(run: Run) -> None:
    run.start("--web.enable-lifecycle")
    wait_until(
        lambda: all(run.stored(app) for app in APP_IDS),
        timeout=DEADLINE,
        what="both apps' state files",
    )
    document = config_for(run.simulator, poll={"interval_seconds": 2}, calls={"enabled": True})
    document["accounts"][0]["app_ids"] = [A]
    write_config(run.config, document)
    assert run.exporter is not None
    assert requests.post(run.exporter.url + "/-/reload", timeout=DEADLINE).status_code == 200
    assert not (run.state / file_name(B)).exists()
    assert (run.state / file_name(A)).exists()


def run_to_its_end(
    tmp_path: Path, *flags: str, unprivileged: bool = False
) -> subprocess.CompletedProcess[str]:
    """The exporter run to its end with these flags and a config of one app (no simulator);
    `unprivileged`: as a process file permissions apply to, even when the test runs as root."""
    config = write_config(
        tmp_path / "config.yaml",
        {"accounts": [{"api_key": API_KEY, "api_secret": API_SECRET, "app_ids": [A]}]},
    )
    config.chmod(0o600)  # Else a warning that the secret in it is readable comes first.
    wrapper = without_root_privileges() if unprivileged else []
    return subprocess.run(
        [*wrapper, sys.executable, "-m", "exporter", "--config.file", str(config), *flags],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


def test_a_directory_that_cannot_be_written_exits_2_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    wanted = blocker / "state"
    finished = run_to_its_end(tmp_path, "--storage.path", str(wanted))
    assert finished.returncode == 2
    assert finished.stderr.splitlines() == [
        f"aivoice-exporter: config error: --storage.path: {wanted}: cannot write there: "
        "Not a directory"
    ]


def without_root_privileges() -> list[str]:
    """A command prefix under which permission bits hold: none for another user, and for root
    a user namespace of its own (`unshare --user`), in which root overrides no permission."""
    if os.geteuid() != 0:
        return []
    unshare = [require_tool("unshare"), "--user"]
    if subprocess.run([*unshare, "true"], capture_output=True, timeout=30).returncode != 0:
        unavailable("`unshare --user` cannot make a user namespace here")
    return unshare


def test_config_check_reports_the_state_directory_and_leaves_none_behind(tmp_path: Path) -> None:
    state = tmp_path / "new" / "state"
    finished = run_to_its_end(tmp_path, "--storage.path", str(state), "--config.check")
    assert finished.returncode == 0, finished.stderr
    assert f"call state kept in {state}" in finished.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def directory_as_it_is(directory: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every entry's mode, modification time and bytes, the directory's own under "."."""
    entries = {".": directory.stat()}
    entries.update({path.name: path.stat() for path in directory.iterdir()})
    return {
        name: (
            stat.st_mode,
            stat.st_mtime_ns,
            b"" if name == "." else (directory / name).read_bytes(),
        )
        for name, stat in entries.items()
    }


def test_config_check_leaves_an_existing_state_directory_as_it_was(tmp_path: Path) -> None:
    """Not even what a start-up removes: another app's state, a write a kill cut short."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    StateStore(state)  # The file names and formats are the store's own.
    (state / file_name(A)).write_bytes(b'{"format": "aivoice-exporter call state"}\n')
    (state / file_name("REMOVED_APP")).write_bytes(b"{}\n")
    (state / ".tmp-cut-short").write_bytes(b"{")
    os.utime(state, ns=(1_000_000_000, 1_000_000_000))  # A change would show on any clock.
    before = directory_as_it_is(state)
    finished = run_to_its_end(tmp_path, "--storage.path", str(state), "--config.check")
    assert finished.returncode == 0, finished.stderr
    assert directory_as_it_is(state) == before


def a_regular_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("")
    return path


def a_directory_it_may_not_write(tmp_path: Path) -> Path:
    path = tmp_path / "locked"
    path.mkdir(mode=0o500)
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda tmp: a_regular_file(tmp) / "state", "Not a directory"),
        (a_regular_file, "File exists"),
        (lambda tmp: a_directory_it_may_not_write(tmp) / "state", "Permission denied"),
        (a_directory_it_may_not_write, "Permission denied"),
    ],
    ids=["under-a-file", "a-file", "in-a-locked-directory", "a-locked-directory"],
)
def test_config_check_exits_2_naming_the_flag_when_the_directory_cannot_be_written(
    tmp_path: Path, make: Callable[[Path], Path], reason: str
) -> None:
    """Judged from what exists, with the permission bits holding (no root override)."""
    state = make(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    finished = run_to_its_end(
        tmp_path, "--storage.path", str(state), "--config.check", unprivileged=True
    )
    assert finished.returncode == 2
    assert finished.stderr.splitlines() == [
        f"aivoice-exporter: config error: --storage.path: {state}: cannot write there: {reason}"
    ]
    assert sorted(p for p in tmp_path.rglob("*") if p.name != "config.yaml") == before
