"""The call ledger's state on disk (`--storage.path`), so a restart resumes its call-record reads.

One JSON file per app, `calls-<digest of the app id>.json`, holding what `CallLedger.export`
gives: the app id, the end of its latest recordQuery window, and the calls it remembers, each as
a digest of its id, when it was first seen and whether its cost was counted. Nothing else of a
record is ever here: no number, name, transcript or URL, not even the id itself.

Writes are atomic: a temporary file in the same directory, fsync, rename over the old one, fsync
of the directory; a kill at any moment leaves the old state or the new one. A write that fails
(disk full) is logged and counted (`aivoice_storage_writes_total{result="failure"}`), and the
exporter goes on. Reads trust nothing: a file too large for what it may hold is not read, and a
file that is not exactly this format and version is logged, once, and ignored: the app then
starts as without a state, its first read only remembering, so nothing is counted twice.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from exporter.calls.counts import CALL_DIGEST_BYTES, MAX_REMEMBERED_CALLS, AppResume, RememberedCall
from exporter.calls.ledger import CallLedger
from exporter.config.model import ConfigError

# A short name, not the module's path: every log line carries it (`logger`), and filters match it.
log = logging.getLogger("exporter.storage")

FORMAT = "aivoice-exporter call state"
VERSION = 1
PREFIX, SUFFIX = "calls-", ".json"
_TEMPORARY = ".tmp-"  # Prefix of a write under way; one left by a kill is removed at start-up.
# A remembered call takes 36 bytes as written ('["<16 chars>",1700000000.123,1],'); this leaves
# room, and bounds a file before it is read: a garbage one of gigabytes is never loaded.
MAX_CALL_BYTES = 64
MAX_FILE_BYTES = 4096 + MAX_CALL_BYTES * MAX_REMEMBERED_CALLS
_DIGEST_CHARS = len(base64.urlsafe_b64encode(bytes(CALL_DIGEST_BYTES)))  # No padding: 12 bytes.
_DIGEST = re.compile(f"[A-Za-z0-9_-]{{{_DIGEST_CHARS}}}")
# Times outside these (Unix seconds: 1970 to about 5138) are not a clock's: the file is garbage.
_EARLIEST, _LATEST = 0.0, 1e11
SUCCESS, FAILURE = "success", "failure"


class StateError(ValueError):
    """A state file that is not what this version writes; the text says what is wrong."""


@dataclass(frozen=True)
class StorageStats:
    """Writes of state files by result, both present from the start."""

    writes: Mapping[str, int]


def check_directory(path: str) -> Path:
    """The state directory, created if missing, once a probe file was written there and removed;
    else a ConfigError naming `--storage.path` and the path (the exporter exits 2)."""
    directory = Path(path)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(prefix=_TEMPORARY, dir=directory)
        try:
            os.write(descriptor, b"probe")
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
            os.unlink(probe)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ConfigError("--storage.path", f"{path}: cannot write there: {reason}") from None
    return directory


def judge_directory(path: str) -> Path:
    """The state directory, judged without a change on disk (`--config.check`): what
    `check_directory` would do must be allowed by what exists. An existing `path` must be a
    directory this process may write in; a missing one, the nearest ancestor that exists. Else
    a ConfigError as `check_directory` raises it. Permissions as `os.access` sees them (root's
    included) and a read-only mount say it; a full disk cannot be told without a write."""
    directory = Path(path)
    existing = directory
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    try:
        is_directory = existing.is_dir()
    except OSError as err:  # A link into a directory this process may not search.
        is_directory, denied = False, err.errno or errno.EACCES
    else:
        denied = errno.ENOTDIR if existing != directory else errno.EEXIST
    if not is_directory:
        reason = denied
    elif _read_only(existing):
        reason = errno.EROFS
    elif not os.access(
        existing, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids
    ):
        reason = errno.EACCES
    else:
        return directory
    raise ConfigError("--storage.path", f"{path}: cannot write there: {os.strerror(reason)}")


def _read_only(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False  # os.access, next, says what it can.


def file_name(app_id: str) -> str:
    """The app's file: named by a digest, since an app id may hold any character."""
    digest = hashlib.blake2b(app_id.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return f"{PREFIX}{digest}{SUFFIX}"


def encode(state: AppResume) -> bytes:
    """The app's state as the file holds it."""
    calls = ",".join(
        f'["{base64.urlsafe_b64encode(call.digest).decode()}",'
        f"{_seconds(call.seen_seconds)},{int(call.cost_counted)}]"
        for call in state.calls
    )
    head = json.dumps(
        {
            "format": FORMAT,
            "version": VERSION,
            "app_id": state.app_id,
            "covered_until": state.covered_until,
        }
    )
    return f'{head[:-1]}, "calls": [{calls}]}}\n'.encode()


def decode(data: bytes, app_id: str) -> AppResume:
    """The state in `data`, which must be the file of `app_id`; StateError says what is wrong."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise StateError("not JSON") from None
    if not isinstance(document, dict):
        raise StateError("not a JSON object")
    if document.get("format") != FORMAT:
        raise StateError("not an aivoice-exporter call state")
    version = document.get("version")
    if version != VERSION or isinstance(version, bool):
        raise StateError(f"version {_shown(version)}, this exporter reads version {VERSION}")
    if set(document) != {"format", "version", "app_id", "covered_until", "calls"}:
        raise StateError("unexpected or missing keys")
    if document["app_id"] != app_id:
        raise StateError("the state of another app")
    covered = document["covered_until"]
    calls = document["calls"]
    if covered is not None and not _is_time(covered):
        raise StateError("covered_until is not a time")
    if not isinstance(calls, list) or len(calls) > MAX_REMEMBERED_CALLS:
        raise StateError("calls is not a list of at most the calls remembered")
    return AppResume(
        app_id=app_id,
        covered_until=None if covered is None else float(covered),
        calls=tuple(_call(entry) for entry in calls),
    )


def _call(entry: Any) -> RememberedCall:
    if not isinstance(entry, list) or len(entry) != 3:
        raise StateError("a call is not [digest, seen, cost counted]")
    text, seen, cost = entry
    if not isinstance(text, str) or not _DIGEST.fullmatch(text):
        raise StateError("a call's digest is not one")
    digest = base64.urlsafe_b64decode(text)
    if not _is_time(seen):
        raise StateError("a call's time is not a time")
    if cost not in (0, 1) or isinstance(cost, bool | float):
        raise StateError("a call's cost flag is not 0 or 1")
    return RememberedCall(digest, float(seen), bool(cost))


def _is_time(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and _EARLIEST < value < _LATEST
    )


def _seconds(value: float) -> str:
    """Milliseconds are plenty for forgetting by age, and keep the file short."""
    return repr(round(value, 3))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 20 else text[:17] + "..."


class StateStore:
    """The state directory: loads the apps' states at start-up, writes them after each app's
    poll and at shutdown, drops those of apps no longer configured. Thread-safe."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()  # One write at a time, and the bookkeeping below.
        self._written: dict[str, int] = {}  # app id -> generation last written
        self._writes = {SUCCESS: 0, FAILURE: 0}
        self._failing = False

    def __repr__(self) -> str:
        return f"StateStore({str(self.directory)!r})"

    def path(self, app_id: str) -> Path:
        return self.directory / file_name(app_id)

    def load(self, app_ids: Collection[str]) -> list[AppResume]:
        """The states of these apps that can be read; each other file of ours is removed (a
        removed app's state, a write a kill cut short). Problems are logged, never raised."""
        self._remove_others(app_ids)
        states, missing = [], []
        for app_id in app_ids:
            path = self.path(app_id)
            try:
                states.append(self._read(path, app_id))
            except FileNotFoundError:
                missing.append(app_id)
            except OSError as err:
                _ignored(path, app_id, f"cannot read: {err.strerror or type(err).__name__}")
            except StateError as err:
                _ignored(path, app_id, str(err))
        if missing:
            log.info(
                "No call state for some apps; their first call-record read only remembers",
                extra={"path": str(self.directory), "apps": ",".join(missing)},
            )
        return states

    def _read(self, path: Path, app_id: str) -> AppResume:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise StateError(f"{size} bytes, more than the {MAX_FILE_BYTES} it may hold")
            data = file.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:  # It grew while read.
            raise StateError(f"more than the {MAX_FILE_BYTES} bytes it may hold")
        return decode(data, app_id)

    def save(self, ledger: CallLedger, app_ids: Iterable[str]) -> None:
        """Write the state of each app that changed since its last write."""
        with self._lock:
            for app_id in app_ids:
                state = ledger.export(app_id, unless=self._written.get(app_id))
                if state is not None:
                    self._write(state)

    def keep_only(self, app_ids: Collection[str]) -> None:
        """Drop the states of apps no longer in the config (after a reload)."""
        with self._lock:
            for app_id in [a for a in self._written if a not in app_ids]:
                del self._written[app_id]
            self._remove_others(app_ids)

    def stats(self) -> StorageStats:
        with self._lock:
            return StorageStats(MappingProxyType(dict(self._writes)))

    def _write(self, state: AppResume) -> None:
        path = self.path(state.app_id)
        try:
            _write_atomically(path, encode(state))
        except OSError as err:
            self._writes[FAILURE] += 1
            if not self._failing:
                self._failing = True
                log.error(
                    "Cannot write the call state; a restart now may lose or recount calls "
                    "(aivoice_storage_writes_total counts the failures)",
                    extra={"path": str(path), "error": err.strerror or type(err).__name__},
                )
            return
        self._writes[SUCCESS] += 1
        self._written[state.app_id] = state.generation
        if self._failing:
            self._failing = False
            log.info("Writing the call state works again", extra={"path": str(path)})

    def _remove_others(self, app_ids: Collection[str]) -> None:
        """Remove our files that belong to no app in `app_ids`, and writes cut short."""
        kept = {file_name(app_id) for app_id in app_ids}
        try:
            names = os.listdir(self.directory)
        except OSError:
            return  # Reads and writes say what is wrong.
        for name in names:
            ours = name.startswith(PREFIX) and name.endswith(SUFFIX)
            if (ours and name not in kept) or name.startswith(_TEMPORARY):
                with contextlib.suppress(OSError):
                    os.unlink(self.directory / name)
                    if ours:
                        log.info(
                            "Dropped the call state of an app no longer in the config",
                            extra={"path": str(self.directory / name)},
                        )


def _ignored(path: Path, app_id: str, problem: str) -> None:
    log.warning(
        "Ignoring the call state; the app's first call-record read only remembers",
        extra={"path": str(path), "app_id": app_id, "problem": problem},
    )


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves the old file or the new one, never a mix."""
    descriptor, temporary = tempfile.mkstemp(prefix=_TEMPORARY, dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
