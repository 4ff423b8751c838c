"""Wires the pieces together: config -> poller -> snapshot -> render -> published bytes -> HTTP,
and, for call outcomes, recordQuery reads and the push listener -> call ledger -> scrape.

The daemon also owns what outlives one config: the request counters and the call ledger (so
they survive a reload), and the outcome of the latest reload. With a `StateStore`
(`--storage.path`) it also outlives the process: the ledger starts from the stored state, and
each app's state is written after each of its polls and at shutdown.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from exporter import __version__
from exporter.api.stats import RequestRecorder
from exporter.balance.poller import BalancePoller
from exporter.balance.read import BalanceSnapshot
from exporter.calls.ledger import CallLedger
from exporter.calls.storage import StateStore
from exporter.config.model import Config, ConfigError, PushConfig
from exporter.config.shard import UNSHARDED, Shard, app_accounts, select
from exporter.exposition.exposition import Exposition, ReloadStatus, Renderer
from exporter.process.listen import parse_listen_address
from exporter.snapshot import Snapshot
from exporter.tasks.history import AppHistory
from exporter.tasks.poller import Poller
from exporter.web.forward import PushRouter, Routes
from exporter.web.push import PushServer
from exporter.web.server import MetricsServer, Published, WebSecurity
from exporter.web.server import Routes as WebRoutes
from exporter.web.status import ConfiguredApp, StatusInputs, render_status

log = logging.getLogger(__name__)


class Daemon:
    """One exporter: a poller publishing expositions that an HTTP server hands out.

    `load_config` re-reads the config for a reload; without it, reloads are refused. `clock`
    (Unix seconds) signs requests and places the call-record windows. `storage` keeps the call
    state across restarts. `shard` keeps the config's accounts of this shard only (all of
    them by default); the push router still knows every app, to forward what it does not own.
    """

    def __init__(
        self,
        config: Config,
        *,
        load_config: Callable[[], Config] | None = None,
        clock: Callable[[], float] = time.time,
        storage: StateStore | None = None,
        shard: Shard = UNSHARDED,
    ) -> None:
        self.stop_event = threading.Event()
        self.shard = shard
        self.router = PushRouter(self._routes(config), lambda body: self.calls.receive_push(body))
        config = select(config, shard)
        self._load_config = load_config
        self._lock = threading.Lock()
        self.calls = CallLedger(config, clock=clock)
        self._storage = storage
        self._app_ids = config.app_ids
        if storage is not None:
            self.calls.restore(storage.load(config.app_ids))
        self._renderer = self._new_renderer(config)
        self._reload_status = ReloadStatus(successful=True, success_seconds=time.time())
        self._last: Snapshot | None = None
        self._balance = BalanceSnapshot()
        self._status = _status_inputs(config, StatusInputs(__version__), shard)
        self.published = Published(self._render(Snapshot(apps=(), requests=MappingProxyType({}))))
        self.recorder = RequestRecorder()
        self.poller = Poller(
            config,
            recorder=self.recorder,
            publish=self._publish,
            stop=self.stop_event,
            calls=self.calls,
            after_poll=None if storage is None else self._save,
            clock=clock,
            publish_history=self._publish_history,
        )
        self.balance = BalancePoller(
            config,
            borrow=self.poller.borrow,
            publish=self._publish_balance,
            stop=self.stop_event,
            clock=clock,
        )
        self._balance = self.balance.snapshot()
        self._balance_thread = threading.Thread(
            target=self._run_balance, name="balance", daemon=True
        )
        self._push_config = config.push
        self._security: WebSecurity | None = None
        self._push: PushServer | None = None
        self._server: MetricsServer | None = None
        self.crashed = False
        self._thread = threading.Thread(target=self._run_poller, name="poller", daemon=True)

    def serve(
        self,
        host: str,
        port: int,
        telemetry_path: str,
        *,
        security: WebSecurity | None = None,
        enable_lifecycle: bool = False,
    ) -> tuple[str, int]:
        """Start the HTTP servers and the poller; returns the metrics address really bound."""
        self._security = security
        self._push = self._start_push(self._push_config)  # OSError names push.listen_address
        routes = WebRoutes(
            telemetry_path=telemetry_path,
            published=self.published,
            security=security,
            reload=self.reload if enable_lifecycle else None,
            status_page=self.status_page,
        )
        self._update_status(telemetry_path=telemetry_path, lifecycle=enable_lifecycle)
        try:
            self._server = MetricsServer(host, port, routes)
        except OSError as err:
            if self._push is not None:
                self._push.stop()
            raise OSError(f"--web.listen-address {host}:{port}: {err.strerror or err}") from err
        self._server.start()
        self._thread.start()
        self._balance_thread.start()
        return self._server.address

    @property
    def tls(self) -> bool:
        return self._server is not None and self._server.tls

    @property
    def push_address(self) -> tuple[str, int] | None:
        """Where the push listener really listens, once serving; None when it is off."""
        return None if self._push is None else self._push.address

    def _start_push(self, push: PushConfig) -> PushServer | None:
        """The push listener, with the web config's TLS (its basic auth cannot apply)."""
        if not push.enabled:
            return None
        host, port = parse_listen_address(push.listen_address)
        context = self._security.ssl_context() if self._security is not None else None
        try:
            server = PushServer(
                host,
                port,
                push.token,
                receive=self.router.receive,
                answered=self.calls.push_answered,
                ssl_context=context,
                forwarded=self.router.forwarded,
            )
        except OSError as err:
            raise OSError(
                f"push.listen_address {push.listen_address}: {err.strerror or err}"
            ) from err
        server.start()
        log.info("Push listener started", extra={"address": "{}:{}".format(*server.address)})
        return server

    def _restart_push(self, push: PushConfig) -> None:
        """Apply a reloaded push config; raises OSError when the new address cannot be bound."""
        if push == self._push_config or self._server is None:
            self._push_config = push
            return
        if self._push is not None:
            self._push.stop()
            self._push = None
        self._push_config = push
        self._push = self._start_push(push)

    def poll_once(self) -> Snapshot:
        snapshot = self.poller.poll_once()
        self.balance.read_all()  # Publishes, after the apps: their snapshot is out first.
        return snapshot

    def reload(self) -> bool:
        """Re-read the config; on any error keep the running one and say why in the log."""
        if self._load_config is None:
            return False
        with self._lock:
            try:
                config = self._load_config()
            except ConfigError as err:
                log.error("Reload failed; keeping the running config", extra={"error": str(err)})
                self._reload_status = ReloadStatus(False, self._reload_status.success_seconds)
                self._republish()
                return False
            self.router.reconfigure(self._routes(config))
            config = select(config, self.shard)
            try:
                self._restart_push(config.push)
            except OSError as err:
                log.error(
                    "Reload: the push listener cannot listen; it stays off until a reload that can",
                    extra={"address": config.push.listen_address, "error": str(err)},
                )
            self.calls.configure(config)
            self._app_ids = config.app_ids
            if self._storage is not None:
                self._storage.keep_only(config.app_ids)
            self._renderer = self._new_renderer(config)
            self._reload_status = ReloadStatus(True, time.time())
            self.poller.reconfigure(config)
            self.balance.reconfigure(config)
            self._balance = self.balance.snapshot()
            self._status = _status_inputs(config, self._status, self.shard)
            log.info("Config reloaded", extra={"apps": len(config.app_ids)})
            self._republish()
            return True

    def status_page(self) -> bytes:
        """The page at `/`, from the latest snapshots and the call counters: never waits on
        the API, whatever a poll is doing."""
        return render_status(
            replace(
                self._status,
                snapshot=self._last,
                balance=self._balance,
                reload=self._reload_status,
                calls=self.calls.snapshot(),
            )
        )

    def stop(self) -> None:
        """Stop serving and polling; a request stuck in the API is abandoned, not awaited."""
        self.stop_event.set()
        self.poller.wake()
        self.balance.wake()
        if self._server is not None:
            self._server.stop()
        if self._push is not None:
            self._push.stop()
        self.poller.close()
        self.router.close()
        self._save(*self._app_ids)

    def _routes(self, config: Config) -> Routes:
        """Where pushes go, from the whole config (before the shard's own are selected)."""
        push = config.push
        return Routes(app_accounts(config), self.shard, push.peers, push.token, push.peer_tls)

    def _new_renderer(self, config: Config) -> Renderer:
        storage = None if self._storage is None else self._storage.stats
        forwarding = config.push.enabled and (bool(config.push.peers) or self.shard.sharded)
        return Renderer(
            config.metrics,
            self.calls.snapshot,
            storage,
            shard=self.shard,
            forwards=self.router.results if forwarding else None,
        )

    def _save(self, *app_ids: str) -> None:
        """Write the apps' call state (after a poll, and at shutdown); never raises."""
        if self._storage is None:
            return
        try:
            self._storage.save(self.calls, app_ids)
        except Exception:  # A bug must cost this write, never the poll or the shutdown.
            log.exception("Writing the call state crashed")

    def _run_poller(self) -> None:
        try:
            self.poller.run()
        except Exception:
            if not self.stop_event.is_set():
                log.exception("Poller crashed; stopping")
                self.crashed = True
                self.stop_event.set()

    def _run_balance(self) -> None:
        try:
            self.balance.run()
        except Exception:  # Balance reads are a side show: never take the exporter down.
            if not self.stop_event.is_set():
                log.exception("Balance reads crashed; the balance metrics stop moving")

    def _update_status(self, **changes: Any) -> None:
        """Swap in new page inputs whole; the page reads them without a lock."""
        with self._lock:
            self._status = replace(self._status, **changes)

    def _publish_history(self, history: Mapping[str, AppHistory]) -> None:
        self._update_status(history=history)

    def _publish_balance(self, balance: BalanceSnapshot) -> None:
        """A new balance: re-render with the latest app snapshot (none yet: nothing to serve)."""
        with self._lock:
            self._balance = balance
            if self._last is not None:
                self.published.publish(self._render(self._last), ready=self._last.ready)

    def _publish(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._last = snapshot
            self.published.publish(self._render(snapshot), ready=snapshot.ready)

    def _republish(self) -> None:
        if self._last is not None:
            self.published.publish(self._render(self._last), ready=self._last.ready)

    def _render(self, snapshot: Snapshot) -> Exposition:
        return self._renderer.render(snapshot, self._reload_status, self._balance)


def _status_inputs(config: Config, previous: StatusInputs, shard: Shard) -> StatusInputs:
    """The page's inputs under `config` (this shard's): its apps, in config order, with the
    shard where there are several, and what is switched on."""
    shown = f"{shard.index} of {shard.total}" if shard.sharded else None
    apps = tuple(
        ConfiguredApp(account.label, app_id, shown)
        for account in config.accounts
        for app_id in account.app_ids
    )
    return replace(
        previous, apps=apps, calls_enabled=config.calls.enabled, push_enabled=config.push.enabled
    )
