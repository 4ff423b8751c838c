"""Command line: flags in the Go exporters' style, signals, `--once` and `--demo`.

Exit codes: 0 on a clean stop (SIGTERM, SIGINT), a fully successful `--once` or a passing
`--config.check`; 1 when `--once` saw a failing app or the server cannot start; 2 for a bad
config or flag, with one line on stderr that names the field.
"""

from __future__ import annotations

import argparse
import logging
import queue
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from exporter import __version__
from exporter.api.paging import Stopped
from exporter.calls.storage import StateStore, check_directory, judge_directory
from exporter.config.load import load_config
from exporter.config.model import Config, ConfigError, mask, secret_readable_by_others
from exporter.config.shard import UNSHARDED, Shard, check_peers, parse_shard, select
from exporter.daemon import Daemon
from exporter.process import logs
from exporter.process.listen import parse_listen_address
from exporter.process.memory import limit_malloc_arenas
from exporter.web.server import WebSecurity
from exporter.web.webconfig import load_web_config

if TYPE_CHECKING:
    from exporter.simulator import Simulator

log = logging.getLogger("exporter")

DEFAULT_PORT = 10188
SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="aivoice-exporter",
        description="Prometheus exporter for the ITNIO AI-voice (outbound call robot) API.",
    )
    add = parser.add_argument
    add(
        "--config.file",
        dest="config_file",
        metavar="PATH",
        default="config.yaml",
        help="YAML config file (default config.yaml).",
    )
    add(
        "--web.listen-address",
        dest="listen_address",
        metavar="HOST:PORT",
        default=f":{DEFAULT_PORT}",
        help=f"Address to listen on, HOST:PORT (default :{DEFAULT_PORT}).",
    )
    add(
        "--web.telemetry-path",
        dest="telemetry_path",
        metavar="PATH",
        default="/metrics",
        help="Path of the metrics (default /metrics).",
    )
    add(
        "--web.config.file",
        dest="web_config_file",
        metavar="PATH",
        default=None,
        help="Exporter-toolkit web config file (TLS, basic auth), as the Go exporters take.",
    )
    add(
        "--web.enable-lifecycle",
        dest="enable_lifecycle",
        action="store_true",
        help="Enable POST /-/reload.",
    )
    add(
        "--storage.path",
        dest="storage_path",
        metavar="DIR",
        default="",
        help="Keep the call-record state here, so a restart counts the calls that ended while "
        "the exporter was down (default: keep nothing).",
    )
    add(
        "--shard",
        dest="shard",
        metavar="N",
        default="0",
        help="This process's shard: N mod --total-shards (a StatefulSet pod index will do; "
        "default 0).",
    )
    add(
        "--total-shards",
        dest="total_shards",
        metavar="M",
        default="1",
        help="How many shards the accounts are spread over, by a consistent hash of their "
        "names (default 1: no sharding).",
    )
    add("--log.level", dest="log_level", choices=logs.LEVELS, default="info")
    add("--log.format", dest="log_format", choices=logs.FORMATS, default="logfmt")
    add(
        "--config.check",
        dest="config_check",
        action="store_true",
        help="Check the config (and the web config), print what would be polled, exit 0 or 2.",
    )
    add("--once", action="store_true", help="Poll every app once, print the metrics and exit.")
    add("--demo", action="store_true", help="Run against the built-in simulator; no config.")
    add("--version", action="version", version=f"aivoice-exporter {__version__}")
    return parser.parse_args(argv)


def listen_address(value: str) -> tuple[str, int]:
    """`--web.listen-address`, or a config error naming the flag."""
    try:
        return parse_listen_address(value)
    except ValueError as err:
        raise ConfigError("--web.listen-address", str(err)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    limit_malloc_arenas()
    logs.configure(args.log_level, args.log_format)
    simulator = None
    try:
        host, port = listen_address(args.listen_address)
        shard = parse_shard(args.shard, args.total_shards)
        if not args.telemetry_path.startswith("/"):
            raise ConfigError("--web.telemetry-path", "must start with /")
        if args.demo:
            from exporter.demo import start_demo  # The simulator loads for --demo only.

            simulator, config = start_demo()
        else:
            config = _load(args.config_file, shard)
            if secret_readable_by_others(args.config_file, config):
                log.warning(
                    "The config file holds an API secret and other users can read it: "
                    "chmod o-r it, or use api_secret_file or ${VAR}",
                    extra={"file": args.config_file},
                )
        security = _web_security(args.web_config_file)
        storage = None
        if args.storage_path:  # The check changes nothing on disk: it judges what exists.
            prepare = judge_directory if args.config_check else check_directory
            storage = StateStore(prepare(args.storage_path))
    except ConfigError as err:
        print(f"aivoice-exporter: config error: {err}", file=sys.stderr)
        return 2
    if args.config_check:
        print(describe(select(config, shard)), end="")
        if shard.sharded:
            print(describe_shard(config, shard), end="")
        if storage is not None:
            print(f"  call state kept in {storage.directory}")
        return 0
    try:
        if args.once:
            return _run_once(config, storage, shard)
        return _serve(args, config, host, port, security, simulator, storage, shard)
    finally:
        if simulator is not None:
            simulator.stop()


def describe(config: Config) -> str:
    """What a checked config would poll, one line per app; secrets shown masked only."""
    lines = [f"Config OK: {len(config.app_ids)} app(s) at {config.api.base_url}"]
    for account in config.accounts:
        for app_id in account.app_ids:
            name = f", task name {account.task_name!r}" if account.task_name else ""
            lines.append(f"  app {app_id} (api key {mask(account.api_key)}{name})")
    poll = config.poll
    lines.append(
        f"  every {poll.interval_seconds:g} s, {poll.concurrency} requests at once, "
        f"{config.api.max_requests_per_second:g} requests/s per account"
    )
    if config.calls.enabled:
        lines.append(
            f"  call records (recordQuery) each poll, {config.calls.lookback_seconds:g} s back"
        )
    if config.push.enabled:
        lines.append(
            f"  push listener on {config.push.listen_address}: "
            f"POST /push/call-record/{mask(config.push.token)}, costs in {config.push.currency}"
        )
    if config.push.peers:
        lines.append(f"  pushes forwarded to their owners among {len(config.push.peers)} peers")
    return "\n".join(lines) + "\n"


def _load(path: str, shard: Shard) -> Config:
    """The config file, checked against the shard flags too (at start and on each reload)."""
    config = load_config(path)
    check_peers(config.push.peers, shard)
    if config.push.peer_tls.insecure_skip_verify:
        log.warning(
            "push.peer_tls.insecure_skip_verify is true: forwarded pushes, and the push token "
            "they carry, go to whoever answers at a peer's address, unverified"
        )
    return config


def describe_shard(config: Config, shard: Shard) -> str:
    """Which shard this is and how many of the config's accounts it owns."""
    owned = sum(shard.owns(account.label) for account in config.accounts)
    return (
        f"  shard {shard.index} of {shard.total} (--shard {shard.ordinal}): "
        f"{owned} of {len(config.accounts)} account(s)\n"
    )


def _web_security(path: str | None) -> WebSecurity | None:
    if path is None:
        return None
    web = load_web_config(path)
    for note in web.notes:
        log.warning(note, extra={"file": path})
    log.info("Web security", extra={"web": web.describe()})
    return web


def _signals() -> queue.SimpleQueue[int]:
    """Signals become queue items, so the handler does nothing but hand them over."""
    received: queue.SimpleQueue[int] = queue.SimpleQueue()
    for signum in (*SHUTDOWN_SIGNALS, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: received.put(signum))
    return received


def _run_once(config: Config, storage: StateStore | None, shard: Shard) -> int:
    daemon = Daemon(config, storage=storage, shard=shard)
    received = _signals()
    finished = threading.Event()
    result: list[int] = []

    def poll() -> None:
        try:
            snapshot = daemon.poll_once()
            sys.stdout.buffer.write(daemon.published.exposition.text)
            sys.stdout.flush()
            result.append(0 if all(app.up for app in snapshot.apps) else 1)
        except Stopped:
            pass
        except Exception:
            log.exception("Poll crashed")
            result.append(1)
        finally:
            finished.set()

    threading.Thread(target=poll, daemon=True).start()
    _wait_for_shutdown(received, until=finished, on_hangup=lambda: None)
    daemon.stop()
    return result[0] if result else 0


def _wait_for_shutdown(
    received: queue.SimpleQueue[int], until: threading.Event, on_hangup: Callable[[], object]
) -> None:
    """Return on SIGTERM or SIGINT, or once `until` is set; SIGHUP calls `on_hangup`."""
    while not until.is_set():
        try:
            signum = received.get(timeout=0.2)
        except queue.Empty:
            continue
        if signum == signal.SIGHUP:
            on_hangup()
        else:
            log.info("Shutting down", extra={"signal": signal.Signals(signum).name})
            return


def _serve(
    args: argparse.Namespace,
    config: Config,
    host: str,
    port: int,
    security: WebSecurity | None,
    simulator: Simulator | None = None,
    storage: StateStore | None = None,
    shard: Shard = UNSHARDED,
) -> int:
    reloadable = None if args.demo else (lambda: _load(args.config_file, shard))
    daemon = Daemon(config, load_config=reloadable, storage=storage, shard=shard)
    received = _signals()
    try:
        bound_host, bound_port = daemon.serve(
            host,
            port,
            args.telemetry_path,
            security=security,
            enable_lifecycle=args.enable_lifecycle,
        )
    except OSError as err:
        print(f"aivoice-exporter: cannot listen: {err}", file=sys.stderr)
        return 1
    scheme = "https" if daemon.tls else "http"
    log.info(
        "Listening",
        extra={
            "address": f"{bound_host}:{bound_port}",
            "apps": len(select(config, shard).app_ids),
            "shard": f"{shard.index}/{shard.total}",
        },
    )
    if args.demo:
        shown = "127.0.0.1" if bound_host in ("0.0.0.0", "::") else bound_host
        print(f"Demo: metrics at {scheme}://{shown}:{bound_port}{args.telemetry_path}", flush=True)
        if simulator is not None and daemon.push_address is not None and not daemon.tls:
            from exporter.demo import connect_push

            connect_push(simulator, config, daemon.push_address)
    _wait_for_shutdown(received, until=daemon.stop_event, on_hangup=daemon.reload)
    daemon.stop()
    return 1 if daemon.crashed else 0
