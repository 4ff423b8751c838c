"""The call state on disk: its format, atomic writes, and reads that trust nothing."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from exporter.api.records import CallRecord
from exporter.calls import storage
from exporter.calls.counts import AppResume, RememberedCall, call_digest
from exporter.calls.ledger import CallLedger
from exporter.calls.storage import (
    FAILURE,
    SUCCESS,
    StateStore,
    check_directory,
    decode,
    encode,
    judge_directory,
)
from exporter.config.model import Account, CallsConfig, Config, ConfigError
from tests.support.clock import FakeClock

APP, OTHER_APP = "APP1", "APP2"
NOW = 1_800_000_000.0


def config(apps: tuple[str, ...] = (APP, OTHER_APP)) -> Config:
    return Config(accounts=(Account("key", "secret", apps),), calls=CallsConfig(enabled=True))


def record(call_id: str, app_id: str = APP) -> CallRecord:
    return CallRecord(call_id, app_id, "20", "ANSWERED", 42.0, 60.0, None, "REMOTE_HANGUP", "")


def state(app_id: str = APP, calls: int = 3) -> AppResume:
    return AppResume(
        app_id=app_id,
        covered_until=NOW,
        calls=tuple(
            RememberedCall(call_digest(str(i)), NOW - 100 + i + 0.5, i % 2 == 0)
            for i in range(calls)
        ),
    )


def ledger_with_calls(clock: FakeClock, *call_ids: str) -> CallLedger:
    ledger = CallLedger(config(), clock=clock)
    for app_id in (APP, OTHER_APP):
        ledger.read_succeeded(app_id, clock(), [])
        ledger.read_succeeded(app_id, clock(), [record(c, app_id) for c in call_ids])
    return ledger


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(check_directory(str(tmp_path / "state")))


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_state_round_trips() -> None:
    original = state()
    assert decode(encode(original), APP) == original


def test_an_app_with_no_read_yet_round_trips() -> None:
    original = AppResume(APP, None, ())
    assert decode(encode(original), APP) == original


def test_the_file_is_versioned_json_holding_only_digests_and_times() -> None:
    document = json.loads(encode(state(calls=1)))
    assert document["format"] == storage.FORMAT and document["version"] == storage.VERSION
    assert document["app_id"] == APP and document["covered_until"] == NOW
    [[digest, seen, cost]] = document["calls"]
    assert len(digest) == 16 and seen == NOW - 99.5 and cost == 1


def test_the_ledger_resumes_from_what_the_store_wrote(store: StateStore) -> None:
    clock = FakeClock(NOW)
    ledger = ledger_with_calls(clock, "1", "2")
    store.save(ledger, (APP, OTHER_APP))
    clock.now += 60
    resumed = CallLedger(config(), clock=clock)
    resumed.restore(StateStore(store.directory).load((APP, OTHER_APP)))
    resumed.read_succeeded(APP, clock(), [record("1"), record("2"), record("3")])
    [counted] = [calls for calls in resumed.snapshot().apps if calls.app_id == APP]
    assert counted.results["ANSWERED"] == 1


def test_an_unchanged_app_is_not_written_again(store: StateStore) -> None:
    ledger = ledger_with_calls(FakeClock(NOW), "1")
    store.save(ledger, (APP,))
    store.save(ledger, (APP,))
    assert store.stats().writes == {SUCCESS: 1, FAILURE: 0}
    ledger.read_succeeded(APP, NOW + 1, [])
    store.save(ledger, (APP,))
    assert store.stats().writes == {SUCCESS: 2, FAILURE: 0}


def test_a_write_replaces_the_file_whole_and_leaves_no_temporary(store: StateStore) -> None:
    clock = FakeClock(NOW)
    ledger = ledger_with_calls(clock, "1")
    store.save(ledger, (APP,))
    ledger.read_succeeded(APP, clock(), [record("2")])
    store.save(ledger, (APP,))
    assert os.listdir(store.directory) == [storage.file_name(APP)]
    [loaded] = store.load((APP,))
    assert {call.digest for call in loaded.calls} == {call_digest("1"), call_digest("2")}


def test_a_write_that_fails_midway_leaves_the_old_state(
    store: StateStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(NOW)
    ledger = ledger_with_calls(clock, "1")
    store.save(ledger, (APP,))
    before = store.path(APP).read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "fsync", disk_full)
    ledger.read_succeeded(APP, clock(), [record("2")])
    with caplog.at_level(logging.INFO, logger="exporter.storage"):
        store.save(ledger, (APP,))
        ledger.read_succeeded(APP, clock(), [record("3")])
        store.save(ledger, (APP,))
    assert store.path(APP).read_bytes() == before
    assert os.listdir(store.directory) == [storage.file_name(APP)]
    assert store.stats().writes == {SUCCESS: 1, FAILURE: 2}
    failed = warnings(caplog)
    assert len(failed) == 1 and "No space left" in caplog.records[0].__dict__["error"]
    monkeypatch.undo()
    with caplog.at_level(logging.INFO, logger="exporter.storage"):
        store.save(ledger, (APP,))  # The disk has room again: written, and said so.
    assert store.stats().writes == {SUCCESS: 2, FAILURE: 2}
    assert any("works again" in r.getMessage() for r in caplog.records)


def test_a_temporary_file_a_kill_left_is_removed_and_the_state_still_read(
    store: StateStore,
) -> None:
    store.path(APP).write_bytes(encode(state()))
    (store.directory / ".tmp-abc123").write_bytes(b'{"format": "aivoice')
    assert store.load((APP,)) == [state()]
    assert os.listdir(store.directory) == [storage.file_name(APP)]


def test_a_removed_apps_state_is_dropped_at_start_up_and_on_reload(store: StateStore) -> None:
    ledger = ledger_with_calls(FakeClock(NOW), "1")
    store.save(ledger, (APP, OTHER_APP))
    assert [s.app_id for s in store.load((APP,))] == [APP]
    assert os.listdir(store.directory) == [storage.file_name(APP)]
    store.keep_only(())
    assert os.listdir(store.directory) == []


def test_files_not_the_stores_are_left_alone(store: StateStore) -> None:
    (store.directory / "notes.txt").write_text("mine")
    store.load((APP,))
    store.keep_only(())
    assert os.listdir(store.directory) == ["notes.txt"]


def test_a_missing_state_is_logged_once_and_the_app_starts_fresh(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="exporter.storage"):
        assert store.load((APP, OTHER_APP)) == []
    [line] = caplog.records
    assert "state" in line.getMessage() and line.__dict__["path"] == str(store.directory)


def mangled(document: dict[str, Any], **changes: Any) -> bytes:
    return json.dumps({**document, **changes}).encode()


GOOD = json.loads(encode(state()))
BAD_STATES = {
    "garbage": b"\x00\xff garbage \x89PNG",
    "empty": b"",
    "truncated": encode(state())[:-40],
    "not an object": b"[1, 2, 3]",
    "deeply nested": b"[" * 100_000,
    "another format": mangled(GOOD, format="something else"),
    "a newer version": mangled(GOOD, version=2),
    "a version that is a string": mangled(GOOD, version="1"),
    "a version that is true": mangled(GOOD, version=True),
    "another app's": mangled(GOOD, app_id=OTHER_APP),
    "an extra key": mangled(GOOD, extra=1),
    "a missing key": json.dumps({k: v for k, v in GOOD.items() if k != "calls"}).encode(),
    "a time that is a string": mangled(GOOD, covered_until="1800000000"),
    "a time that is infinite": encode(state()).replace(b"1800000000.0", b"Infinity", 1),
    "a time that is negative": mangled(GOOD, covered_until=-5),
    "calls that are an object": mangled(GOOD, calls={}),
    "a call that is short": mangled(GOOD, calls=[["AAAAAAAAAAAAAAAA", NOW]]),
    "a digest that is short": mangled(GOOD, calls=[["AAAA", NOW, 0]]),
    "a digest with padding": mangled(GOOD, calls=[["AAAAAAAAAAAAAA==", NOW, 0]]),
    "a digest that is a number": mangled(GOOD, calls=[[12, NOW, 0]]),
    "a cost flag of 2": mangled(GOOD, calls=[["AAAAAAAAAAAAAAAA", NOW, 2]]),
    "a cost flag that is true": mangled(GOOD, calls=[["AAAAAAAAAAAAAAAA", NOW, True]]),
    "a seen time that is null": mangled(GOOD, calls=[["AAAAAAAAAAAAAAAA", None, 0]]),
}


@pytest.mark.parametrize("data", BAD_STATES.values(), ids=BAD_STATES.keys())
def test_a_bad_state_is_logged_once_naming_the_file_and_the_app_starts_fresh(
    store: StateStore, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    store.path(APP).write_bytes(data)
    store.path(OTHER_APP).write_bytes(encode(state(OTHER_APP)))
    with caplog.at_level(logging.WARNING, logger="exporter.storage"):
        assert store.load((APP, OTHER_APP)) == [state(OTHER_APP)]
    [line] = caplog.records
    assert "state" in line.getMessage() and line.__dict__["path"] == str(store.path(APP))


def test_an_oversized_state_is_refused_before_it_is_read(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    with store.path(APP).open("wb") as file:
        file.truncate(5 * 1024**3)  # 5 GB of zeros, sparse: reading it whole would take 5 GB.
    with caplog.at_level(logging.WARNING, logger="exporter.storage"):
        assert store.load((APP,)) == []
    assert "more than" in caplog.records[0].__dict__["problem"]


def test_the_size_bound_holds_for_a_file_that_is_otherwise_good(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = encode(state())
    store.path(APP).write_bytes(data)
    monkeypatch.setattr(storage, "MAX_FILE_BYTES", len(data) - 1)
    assert store.load((APP,)) == []
    monkeypatch.setattr(storage, "MAX_FILE_BYTES", len(data))
    assert store.load((APP,)) == [state()]


def test_an_unreadable_state_is_logged_and_the_app_starts_fresh(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.path(APP).mkdir()  # Opening it fails whoever runs the test, root included.
    with caplog.at_level(logging.WARNING, logger="exporter.storage"):
        assert store.load((APP,)) == []
    assert len(caplog.records) == 1 and "cannot read" in caplog.records[0].__dict__["problem"]


def test_a_directory_that_cannot_be_made_is_a_config_error_naming_the_path(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as raised:
        check_directory(str(blocker / "state"))
    assert str(raised.value).startswith(f"--storage.path: {blocker / 'state'}: cannot write")


def test_a_directory_is_made_private_and_left_empty(tmp_path: Path) -> None:
    directory = check_directory(str(tmp_path / "a" / "b"))
    assert directory.is_dir() and os.listdir(directory) == []
    assert directory.stat().st_mode & 0o077 == 0


def test_judging_a_directory_that_could_be_made_makes_nothing(tmp_path: Path) -> None:
    assert judge_directory(str(tmp_path / "a" / "b")) == tmp_path / "a" / "b"
    assert os.listdir(tmp_path) == []


def test_judging_a_directory_under_a_file_is_the_same_config_error_as_making_it(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    wanted = str(blocker / "state")
    with pytest.raises(ConfigError) as judged:
        judge_directory(wanted)
    with pytest.raises(ConfigError) as made:
        check_directory(wanted)
    assert str(judged.value) == str(made.value)


def test_a_file_of_ten_thousand_calls_stays_small() -> None:
    size = len(encode(state(calls=10_000)))
    assert 300_000 < size < 400_000  # docs/operations.md says about 350 KB.
