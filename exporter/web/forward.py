"""Pushes routed to the replicas that own them, as Thanos Receive forwards along its hashring.

The vendor posts every call of an app to one address; behind one Service a push lands on any
replica of any shard. `push.peers` lists the push listeners' base URLs in ordinal order, the
same list for every process, so peer `i` serves shard `i mod M`. The process that receives a
push from the vendor counts it if it owns the app's account, and hands the raw body on to every
other owner, marked with `FORWARDED_HEADER` so that it is never handed on again. It answers the
vendor 200 only once every owner has it; otherwise 503, so the vendor tries again later, and
the owners that have it already count the retry as a duplicate (by `callId`). A forwarded push
is counted only by an owner: another process answers 421, as the peer lists then disagree.

A push for an app in no account of the config is the ledger's to reject, as without shards;
one for an account of another shard, with no peers to hand it to, is dropped and counted.

Every forward is bounded: its time (`FORWARD_TIMEOUT_SECONDS`), the answer read, the threads
(`FORWARD_WORKERS`) and the forwards waiting for one (`MAX_PENDING_FORWARDS`, beyond which a
forward fails at once); redirects are never followed, and the token never reaches a log. An
`https` peer is verified with the config's `push.peer_tls` context (its CA, its server name);
one that fails verification is a failed forward, like one that does not answer.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from types import MappingProxyType
from urllib.parse import urlsplit

from exporter.api.records import RecordError, parse_push
from exporter.config.model import PeerTLS
from exporter.config.shard import UNSHARDED, Shard
from exporter.web.push import FORWARDED_HEADER, PUSH_PATH

log = logging.getLogger(__name__)

FORWARD_TIMEOUT_SECONDS = 5.0  # Connect, send and answer, per peer.
FORWARD_WORKERS = 8
MAX_PENDING_FORWARDS = 256  # Forwards queued or in flight; beyond this one fails at once.
MAX_ANSWER_BYTES = 1024
SUCCESS, FAILURE, DROPPED = "success", "failure", "dropped"
FORWARD_RESULTS = (SUCCESS, FAILURE, DROPPED)


@dataclass(frozen=True)
class Routes:
    """What routing needs from one config: each app's account, this process's shard and the
    peers' base URLs (empty: no forwarding)."""

    apps: Mapping[str, str]  # app_id -> account label, over the whole config
    shard: Shard = UNSHARDED
    peers: tuple[str, ...] = ()
    token: str = field(default="", repr=False)
    tls: PeerTLS = field(default_factory=PeerTLS)


class PushRouter:
    """`receive` for the push listener: counts (through `count`, the ledger's `receive_push`)
    what this process owns, forwards to the other owners, and says what to answer.

    `forwarded(body)` is the listener's entry for a push a peer forwarded.
    """

    def __init__(
        self,
        routes: Routes,
        count: Callable[[bytes], int],
        *,
        timeout: float = FORWARD_TIMEOUT_SECONDS,
    ) -> None:
        self._routes = routes
        self._count = count
        self._default_context: ssl.SSLContext | None = None
        self._timeout = timeout
        self._lock = threading.Lock()
        self._results = dict.fromkeys(FORWARD_RESULTS, 0)
        self._logged: set[str] = set()
        self._pending = threading.BoundedSemaphore(MAX_PENDING_FORWARDS)
        self._pool = ThreadPoolExecutor(FORWARD_WORKERS, thread_name_prefix="push-forward")

    def reconfigure(self, routes: Routes) -> None:
        self._routes = routes  # One reference, read once per push.

    def results(self) -> Mapping[str, int]:
        """Forwards by result, and pushes dropped, since start-up."""
        with self._lock:
            return MappingProxyType(dict(self._results))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def receive(self, body: bytes) -> int:
        """A push from the vendor: the status to answer it with."""
        routes = self._routes
        account = _account(body, routes)
        if account is None:  # Unreadable, or no configured app's: the ledger says what it is.
            return self._count(body)
        shard = routes.shard
        if routes.peers:
            owners = shard.owners(account, len(routes.peers))
            others = [routes.peers[i] for i in owners if i != shard.ordinal]
        else:
            others = []
        status: int = HTTPStatus.OK
        if shard.owns(account):
            status = self._count(body)
        elif not others:
            self._add(DROPPED)
            self._explain(
                DROPPED,
                "A push for another shard's account was dropped: set push.peers so that it is "
                "forwarded to its owners (its call still comes through recordQuery, without "
                "its cost)",
            )
            return int(HTTPStatus.OK)
        if not others:
            return status
        delivered = self._forward_all(body, others, routes)
        return status if delivered else int(HTTPStatus.SERVICE_UNAVAILABLE)

    def forwarded(self, body: bytes) -> int:
        """A push a peer forwarded: counted if this process owns it, never forwarded again."""
        routes = self._routes
        account = _account(body, routes)
        if account is not None and not routes.shard.owns(account):
            self._explain(
                "misdirected",
                "A peer forwarded a push for an account this process does not own: the "
                "processes' push.peers, --shard or --total-shards disagree",
            )
            return int(HTTPStatus.MISDIRECTED_REQUEST)
        return self._count(body)

    def _forward_all(self, body: bytes, peers: Sequence[str], routes: Routes) -> bool:
        futures: list[Future[str]] = []
        failures: list[str] = []  # Why each failed forward failed.
        for peer in peers:
            if not self._pending.acquire(blocking=False):
                failures.append("too many forwards pending")
                continue
            try:
                future = self._pool.submit(self._forward, peer, routes, body)
            except RuntimeError:  # Shut down: the process is stopping.
                self._pending.release()
                failures.append("stopping")
                continue
            future.add_done_callback(lambda _: self._pending.release())
            futures.append(future)
        for future in futures:
            try:
                failure = future.result(timeout=self._timeout * 2 + 1)
            except Exception as err:
                failure = type(err).__name__
            if failure:
                failures.append(failure)
        self._add(SUCCESS, len(peers) - len(failures))
        self._add(FAILURE, len(failures))
        if failures:
            self._explain(
                FAILURE,
                "A push could not be forwarded to every replica that owns it; the vendor is "
                "answered 503 and retries (aivoice_push_forwards_total counts the failures)",
                failures[0],
            )
        return not failures

    def _forward(self, peer: str, routes: Routes, body: bytes) -> str:
        """One POST to a peer; why it failed, or "" if it answered 200."""
        parts = urlsplit(peer)
        if parts.scheme == "https":
            connection: http.client.HTTPConnection = _PeerConnection(
                parts.hostname or "",
                parts.port,
                timeout=self._timeout,
                context=routes.tls.context or self._default(),
                server_name=routes.tls.server_name,
            )
        else:
            connection = http.client.HTTPConnection(
                parts.hostname or "", parts.port, timeout=self._timeout
            )
        path = parts.path.rstrip("/") + PUSH_PATH + routes.token
        headers = {"Content-Type": "application/json", FORWARDED_HEADER: "1"}
        try:
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            response.read(MAX_ANSWER_BYTES)
            return "" if response.status == HTTPStatus.OK else f"answered {response.status}"
        except (OSError, http.client.HTTPException) as err:
            return _reason(err)
        finally:
            connection.close()

    def _default(self) -> ssl.SSLContext:
        """The system's CAs, for routes made without a config's context; made once: making
        one reads the whole CA bundle."""
        if self._default_context is None:
            self._default_context = ssl.create_default_context()
        return self._default_context

    def _add(self, result: str, count: int = 1) -> None:
        with self._lock:
            self._results[result] += count

    def _explain(self, kind: str, message: str, error: str = "") -> None:
        with self._lock:
            first = kind not in self._logged
            self._logged.add(kind)
        if first:
            extra = {"error": error} if error else {}
            log.warning(message + "; later ones are counted, not logged", extra=extra)


class _PeerConnection(http.client.HTTPSConnection):
    """HTTPS to a peer, its certificate checked for `server_name` (else its URL's host)."""

    def __init__(
        self,
        host: str,
        port: int | None,
        *,
        timeout: float,
        context: ssl.SSLContext,
        server_name: str,
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._peer_context = context
        self._server_name = server_name or host

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # The TCP connection, then TLS over it.
        self.sock = self._peer_context.wrap_socket(self.sock, server_hostname=self._server_name)


def _reason(err: Exception) -> str:
    """Why a forward failed, in a few words: never the request (its path holds the token)."""
    if isinstance(err, ssl.SSLCertVerificationError):  # Which check failed: issuer, name...
        return f"{type(err).__name__}: {err.verify_message}"
    if isinstance(err, OSError) and err.strerror:
        return f"{type(err).__name__}: {err.strerror}"
    return type(err).__name__


def _account(body: bytes, routes: Routes) -> str | None:
    """The account label of the pushed record's app; None when unreadable or unknown."""
    try:
        record = parse_push(body)
    except RecordError:
        return None
    return routes.apps.get(record.app_id)
