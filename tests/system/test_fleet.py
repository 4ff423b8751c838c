"""A fleet of 3 shards x 2 replicas, as six real exporter processes, against one exporter alone.

Two simulators with the same seed on the same stepped clock serve the same calls: one to the
fleet, whose pushes land on a random process each (as behind one Service), one to a single
exporter with the same accounts and no shards. Calls end only when the test steps the clock, so
every process can be waited on until it has counted them all. One replica is SIGKILLed, calls
end while it is down, and it is started again on its `--storage.path`.

Then two Prometheus servers, one scraping the single exporter, the other the fleet, both with
the project's recording rules (read from prometheus/rules.yml at test time), must agree on
every recorded series, and on the dashboard's panel of the vendor's pushes.
"""

from __future__ import annotations

import collections
import math
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter.config.shard import shard_of
from exporter.simulator import Simulator
from tests.support.clock import SteppedClock
from tests.support.configs import API_KEY, API_SECRET, write_config
from tests.support.exposition import scraped
from tests.support.mixin import RULES, load_dashboard, targets
from tests.support.processes import ExporterProcess, Process, start_exporter_process
from tests.support.prometheus import PrometheusAPI
from tests.support.tools import free_port, free_ports, require_tool, wait_until

pytestmark = pytest.mark.slow

SHARDS, REPLICAS = 3, 2
# One app per account; the names put one account on shard 0, two on 1 and three on 2.
ACCOUNTS = {f"acct-{i}": f"APP_{i}" for i in range(6)}
APPS = tuple(ACCOUNTS.values())
TOKEN = "fleet-push-token-0123456789"
DEADLINE = 240.0  # Seven exporters and two Prometheus servers on a busy two-core machine.
VICTIM = 1 + SHARDS  # The second replica of shard 1.
REPLICA_LABELS = ("instance", "pod")  # What tells replicas apart in Prometheus.
POLL_SECONDS = 5  # Long enough for every process to poll its apps each round, so all poll alike.
# Recorded values are compared within this share: the two Prometheus servers scrape, and the
# exporters poll, at their own moments, so a window holds a sample more or less of the same data.
RELATIVE_TOLERANCE = 0.25
# Ages (time() - a timestamp) differ by up to a poll interval and a scrape apart.
AGE_TOLERANCE_SECONDS = 2 * POLL_SECONDS + 2
# Records whose values are not the same data seen twice, so only their series are compared:
# - request latencies, which each process measures of its own requests;
# - increases of the per-task call counters, whose series are born when the task's first call
#   is counted: what a counter did before its first sample is invisible to increase(), and each
#   Prometheus takes that sample at its own moment;
# - the recordQuery records per call counted, which each process pays for its own reads (a
#   replica started again reads whole windows until the records show how they select).
SERIES_ONLY = re.compile(
    r"request_duration_seconds|^app_id_job_id:aivoice_task_call_results|records_poll_per_call"
)
# Records of the deployment itself (how many shards, which are up), not of the accounts' data:
# one process and a fleet differ there by design.
DEPLOYMENT = re.compile(r"aivoice_exporter_(total_)?shard")
# Requests each process sends rarely, at its own moments: channelList is read at a process's
# first call read and then every calls.lines_refresh_seconds, so in a 5-minute window one
# process has read it and its twin not. Its request rates are each process's own.
OWN_MOMENTS = (("endpoint", "channelList"),)


def push_path(base_url: str) -> str:
    return f"{base_url}/push/call-record/{TOKEN}"


def owner(app_id: str) -> int:
    account = next(name for name, app in ACCOUNTS.items() if app == app_id)
    return shard_of(account, SHARDS)


def document(simulator: Simulator, push_port: int, peers: list[str]) -> dict[str, Any]:
    push: dict[str, Any] = {"listen_address": f"127.0.0.1:{push_port}", "token": TOKEN}
    if peers:
        push["peers"] = peers
    return {
        "api": {
            "base_url": simulator.base_url,
            "timeout_seconds": 5,
            "max_requests_per_second": 100,  # Never what paces the polls.
        },
        "poll": {"interval_seconds": POLL_SECONDS, "stale_after_seconds": 600},
        "calls": {"enabled": True},
        "push": push,
        "balance": {"enabled": True, "interval_seconds": 2},
        "accounts": [
            {"name": name, "api_key": API_KEY, "api_secret": API_SECRET, "app_ids": [app]}
            for name, app in ACCOUNTS.items()
        ],
    }


@dataclass
class Member:
    """One exporter process: its flags, its ports, and the process once started."""

    name: str
    flags: list[str]
    metrics_port: int
    apps: tuple[str, ...]
    process: ExporterProcess | None = None
    down: bool = False
    # What it had counted before it was killed: its counters start again from 0.
    before: dict[str, Any] = field(default_factory=lambda: {"results": {}, "cost": {}})

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.metrics_port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> None:
        self.process = start_exporter_process(
            *self.flags, "--web.listen-address", f"127.0.0.1:{self.metrics_port}", wait=False
        )

    def samples(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return scraped(self.url, name)

    def per_app(self, name: str, label: str) -> dict[str, dict[str, float]]:
        """app_id -> label value -> value, the zeros left out."""
        found: dict[str, dict[str, float]] = collections.defaultdict(dict)
        for labels, value in self.samples(name).items():
            pairs = dict(labels)
            if value:
                found[pairs["app_id"]][pairs[label]] = value
        return dict(found)

    def last_poll_started(self) -> float:
        """When the latest poll of its least recently polled app started (0: one never was)."""
        ended = self.samples("aivoice_poll_last_success_timestamp_seconds")
        took = self.samples("aivoice_poll_duration_seconds")
        if len(ended) != len(self.apps):
            return 0.0
        return min(ended[labels] - took.get(labels, 0.0) for labels in ended)

    def counted(self) -> dict[str, Any]:
        """What this process counted, per app: results and cost (rounded to the millionths
        the exporter sums them in)."""
        return {
            "results": self.per_app("aivoice_call_results_total", "result"),
            "cost": _rounded(self.per_app("aivoice_call_cost_total", "currency")),
        }

    def counted_in_all(self) -> dict[str, Any]:
        """`counted`, plus what it had counted before it was killed."""
        return {kind: _added(values, self.before[kind]) for kind, values in self.counted().items()}


def _added(
    one: dict[str, dict[str, float]], other: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    total: dict[str, dict[str, float]] = {}
    for app in set(one) | set(other):
        a, b = one.get(app, {}), other.get(app, {})
        total[app] = {key: a.get(key, 0) + b.get(key, 0) for key in set(a) | set(b)}
    return _rounded(total)


def _rounded(values: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {app: {k: round(v, 6) for k, v in counts.items()} for app, counts in values.items()}


def only(counted: dict[str, Any], apps: tuple[str, ...]) -> dict[str, Any]:
    return {
        kind: {a: v for a, v in values.items() if a in apps} for kind, values in counted.items()
    }


@dataclass(frozen=True)
class Prometheus(PrometheusAPI):
    """One of the test's two Prometheus servers: its API, and its process to stop."""

    process: Process


def start_prometheus(work: Path, name: str, targets: list[str]) -> Prometheus:
    """Prometheus scraping `targets` as the job `aivoice`, with rules.yml."""
    binary = require_tool("prometheus")
    home = work / name
    home.mkdir()
    (home / "rules.yml").write_text(RULES.read_text(encoding="utf-8"), encoding="utf-8")
    scrape = {"job_name": "aivoice", "static_configs": [{"targets": targets}]}
    (home / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                # Every 2 s: eight targets scraped every second on a busy machine leave gaps,
                # and a rate's extrapolation over a gap is an estimate of its own.
                "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
                "rule_files": ["rules.yml"],
                "scrape_configs": [scrape],
            }
        ),
        encoding="utf-8",
    )
    port = free_port()
    process = Process.start(
        name,
        [
            binary,
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        cwd=home,
    )
    return Prometheus(f"http://127.0.0.1:{port}", process)


@dataclass
class Fleet:
    clock: SteppedClock
    simulators: dict[str, Simulator]
    single: Member
    members: list[Member]
    prometheus: dict[str, Prometheus] = field(default_factory=dict)
    primed: dict[str, set[str]] = field(default_factory=dict)

    @property
    def everyone(self) -> list[Member]:
        return [self.single, *self.members]

    def logs(self) -> str:
        return "\n".join(
            f"--- {m.name}\n{m.process.log(last=40)}" for m in self.everyone if m.process
        )

    def ended(self) -> dict[str, collections.Counter[str]]:
        """Results of the calls that ended since the exporters' first reads, per app."""
        simulator = self.simulators["fleet"]
        calls = {app: {c["callId"]: c for c in simulator.calls(app)} for app in APPS}
        return {
            app: collections.Counter(
                calls[app][i]["resultStatus"] for i in set(calls[app]) - self.primed[app]
            )
            for app in APPS
        }

    def pushed(self) -> bool:
        """Every push of both simulators answered `success`, none pending."""
        return all(
            sim.stats()["push_pending"] == 0 and sim.stats()["push_failed"] == 0
            for sim in self.simulators.values()
        )

    def settle(self, what: str) -> dict[str, Any]:
        """Wait until every process has counted every ended call of its apps, the pushes are
        all in, and every replica's cost equals the single exporter's; the single's counts."""
        expected = {app: dict(counts) for app, counts in self.ended().items()}
        assert all(expected.values()), f"an app with no call ended: {expected}"

        problems: list[str] = []

        def settled() -> bool:
            problems[:] = []
            pushes = {name: sim.stats() for name, sim in self.simulators.items()}
            for name, stats in pushes.items():
                if stats["push_pending"] or stats["push_failed"]:
                    problems.append(f"{name} pushes: {stats}")
            single = self.single.counted()
            if single["results"] != expected:
                problems.append(f"single: {single['results']} != ended {expected}")
            for member in self.members:
                if not member.down and member.counted_in_all() != only(single, member.apps):
                    problems.append(f"{member.name}: {member.counted_in_all()}")
            tasks = self.single.samples("aivoice_task_calls_completed")
            for member in self.everyone:  # Every process has polled its tasks since the step.
                if member.down:
                    continue
                if member.last_poll_started() <= self.clock.now:
                    problems.append(f"{member.name}: no poll started since the step")
                mine = {k: v for k, v in tasks.items() if dict(k)["app_id"] in member.apps}
                if member.samples("aivoice_task_calls_completed") != mine:
                    problems.append(f"{member.name}: task progress differs from the single's")
            if problems:
                problems.append(f"single: {single}")
            return not problems

        try:
            wait_until(settled, timeout=DEADLINE, ignoring=(requests.RequestException,), what=what)
        except AssertionError:
            shown = "\n".join(problems)
            raise AssertionError(f"{what}: not settled:\n{shown}\n{self.logs()}") from None
        settled_at = time.time()  # Both Prometheus servers see it before anything moves on.
        for server in self.prometheus.values():
            wait_until(
                lambda s=server: (
                    float(s.query('min(timestamp(up{job="aivoice"}))')[0]["value"][1]) > settled_at
                ),
                timeout=DEADLINE,
                ignoring=(requests.RequestException, IndexError),
                what="a scrape of every target after the step settled",
            )
        return self.single.counted()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    work = tmp_path_factory.mktemp("fleet")
    clock = SteppedClock(step_seconds=4, deadline=DEADLINE)
    *push_ports, single_push = free_ports(SHARDS * REPLICAS + 1)
    peers = [f"http://127.0.0.1:{port}" for port in push_ports]
    options: dict[str, Any] = {
        "clock": clock,
        "tasks_per_app": 2,
        "seed": 21,
        # As the vendor retries a failed push: long enough to outlast a replica's restart.
        "push_max_attempts": 10_000,
        "push_retry_delay": 0.25,
    }
    simulators = {
        "fleet": Simulator(
            API_KEY, API_SECRET, APPS, push_url=",".join(push_path(p) for p in peers), **options
        ),
        "single": Simulator(
            API_KEY,
            API_SECRET,
            APPS,
            push_url=push_path(f"http://127.0.0.1:{single_push}"),
            **options,
        ),
    }
    for simulator in simulators.values():
        simulator.start()
    single_config = write_config(
        work / "single.yaml", document(simulators["single"], single_push, [])
    )
    single = Member(
        "single",
        ["--config.file", str(single_config), "--storage.path", str(work / "single-state")],
        free_port(),
        APPS,
    )
    members = []
    for ordinal, port in enumerate(push_ports):
        config = write_config(
            work / f"fleet-{ordinal}.yaml", document(simulators["fleet"], port, peers)
        )
        flags = [
            "--config.file",
            str(config),
            "--storage.path",
            str(work / f"state-{ordinal}"),
            "--shard",
            str(ordinal),
            "--total-shards",
            str(SHARDS),
        ]
        apps = tuple(app for app in APPS if owner(app) == ordinal % SHARDS)
        members.append(Member(f"fleet-{ordinal}", flags, free_port(), apps))
    running = Fleet(clock, simulators, single, members)
    try:
        for member in running.everyone:
            member.start()
        running.prometheus = {
            "single": start_prometheus(work, "prometheus-single", [single.address]),
            "fleet": start_prometheus(work, "prometheus-fleet", [m.address for m in members]),
        }
        for member in running.everyone:
            assert member.process is not None
            member.process.wait_until_listening(timeout=DEADLINE)
        for server in running.prometheus.values():
            wait_until(
                lambda s=server: requests.get(f"{s.url}/-/ready", timeout=2).status_code == 200,
                timeout=DEADLINE,
                ignoring=(requests.RequestException,),
                what="Prometheus ready",
            )
        # Every first read done (it only remembers) before any call ends.
        for member in running.everyone:
            wait_until(
                lambda m=member: all(
                    m.samples("aivoice_calls_up").get((("app_id", app),)) == 1 for app in m.apps
                ),
                timeout=DEADLINE,
                ignoring=(requests.RequestException,),
                what=f"{member.name}'s first call-record reads",
            )
        # Both servers hold every target's series, after its first reads, before any call
        # ends: each window's increase() and changes() then start from the same values on
        # both sides, not from whatever had been counted before a server's first scrape.
        for name, targets in (("single", [single]), ("fleet", members)):
            wait_until(
                lambda s=running.prometheus[name], t=targets: (
                    {x["metric"]["instance"] for x in s.query("aivoice_calls_up == 1")}
                    >= {m.address for m in t}
                ),
                timeout=DEADLINE,
                ignoring=(requests.RequestException,),
                what=f"Prometheus {name} scraping every first read",
            )
        running.primed = {
            app: {c["callId"] for c in simulators["fleet"].calls(app)} for app in APPS
        }
        running.clock.step()
        running.settle("the calls of the first step")
        yield running
    finally:
        for server in running.prometheus.values():
            server.process.kill()
        for member in running.everyone:
            if member.process is not None:
                member.process.kill()
        for simulator in simulators.values():
            simulator.stop()


def test_each_shard_serves_only_its_own_accounts(fleet: Fleet) -> None:
    assert {owner(app) for app in APPS} == set(range(SHARDS))
    for ordinal, member in enumerate(fleet.members):
        served = {dict(labels)["app_id"] for labels in member.samples("aivoice_up")}
        assert served == set(member.apps)
        assert member.samples("aivoice_exporter_shard") == {(): ordinal % SHARDS}
        assert member.samples("aivoice_exporter_total_shards") == {(): SHARDS}
    assert fleet.single.samples("aivoice_exporter_shard") == {(): 0}
    assert fleet.single.samples("aivoice_exporter_total_shards") == {(): 1}


def test_the_union_of_the_shards_is_what_one_process_exports(fleet: Fleet) -> None:
    single = fleet.single.counted()
    assert single["results"] and single["cost"]
    for replica in range(REPLICAS):
        union: dict[str, Any] = {"results": {}, "cost": {}}
        for shard in range(SHARDS):
            counted = fleet.members[replica * SHARDS + shard].counted()
            for kind in union:
                assert not set(union[kind]) & set(counted[kind]), "an app on two shards"
                union[kind].update(counted[kind])
        assert union == single


def test_pushes_landed_on_every_process_and_were_forwarded(fleet: Fleet) -> None:
    for member in fleet.members:
        forwards = member.samples("aivoice_push_forwards_total")
        assert forwards[(("result", "success"),)] > 0, member.name
        answers = member.samples("aivoice_push_requests_total")
        assert answers[(("code", "200"), ("sender", "vendor"))] > 0, member.name
        assert answers[(("code", "200"), ("sender", "peer"))] > 0, member.name


def test_every_process_has_a_series_for_each_answer_of_forwarding(fleet: Fleet) -> None:
    for member in fleet.members:
        answers = member.samples("aivoice_push_requests_total")
        assert (("code", "503"), ("sender", "vendor")) in answers, member.name
        assert (("code", "421"), ("sender", "peer")) in answers, member.name


def test_a_replica_killed_and_started_again_catches_up_exactly_from_its_storage(
    fleet: Fleet,
) -> None:
    victim = fleet.members[VICTIM]
    assert victim.process is not None
    writes = victim.samples("aivoice_storage_writes_total")[(("result", "success"),)]
    wait_until(  # Two more writes: the state holds every call counted so far.
        lambda: (
            victim.samples("aivoice_storage_writes_total")[(("result", "success"),)] >= writes + 2
        ),
        timeout=DEADLINE,
        what="the victim's state written",
    )
    victim.before = victim.counted()
    victim.process.stop(signal.SIGKILL, timeout=DEADLINE)
    victim.down = True

    fleet.clock.step()  # Calls end, and are pushed, while it is down.
    wait_until(
        lambda: fleet.simulators["fleet"].stats()["push_retried"] > 0,
        timeout=DEADLINE,
        what="a push the victim missed, retried",
    )
    victim.start()
    assert victim.process is not None
    victim.process.wait_until_listening(timeout=DEADLINE)
    victim.down = False
    single = fleet.settle("the calls that ended while a replica was down")  # Checks everyone.
    victim.process.wait_for_line("Resuming call-record reads where the previous run stopped")
    survivor = fleet.members[VICTIM - SHARDS]
    assert survivor.counted() == only(single, survivor.apps)  # Complete alone throughout.
    assert victim.counted_in_all() == only(single, victim.apps)
    assert victim.counted() != only(single, victim.apps)  # Its counters did start again.


def test_the_deduplicated_view_counts_nothing_twice(fleet: Fleet) -> None:
    """Per app, the largest count over a shard's replicas (what `max without(instance)` keeps)
    is the single exporter's, and no app is on two shards."""
    single = fleet.single.counted()
    deduplicated: dict[str, Any] = {"results": {}, "cost": {}}
    for shard in range(SHARDS):
        replicas = [fleet.members[r * SHARDS + shard].counted() for r in range(REPLICAS)]
        for kind in deduplicated:
            for app in {a for counted in replicas for a in counted[kind]}:
                assert app not in deduplicated[kind]
                values = [counted[kind].get(app, {}) for counted in replicas]
                deduplicated[kind][app] = {
                    key: max(v.get(key, 0) for v in values) for key in set().union(*values)
                }
    assert deduplicated == single


# ---- the dashboard's push panel on a real Prometheus

PUSH_PANEL = "Push answers by code"
# Longer than the whole run: the panel's rate is then every push the vendor sent, per second of
# the window, on both sides alike.
WHOLE_RUN = "1h"
# What only the fleet may answer the vendor: 503 while a replica that owns a push is down (the
# killed one), which a process alone never says.
FLEET_ONLY_CODES = {"503"}


def push_panel(server: Prometheus) -> dict[str, float]:
    """The panel's query, its variables set to the job and a window over the whole run: the
    vendor's pushes per minute by the code they were answered."""
    (expr,) = [t["expr"] for p, t in targets(load_dashboard()) if p["title"] == PUSH_PANEL]
    expr = expr.replace("$job", "aivoice").replace("$__rate_interval", WHOLE_RUN)
    assert "$" not in expr, expr
    return {s["metric"]["code"]: float(s["value"][1]) for s in server.query(expr)}


def test_the_push_answers_panel_shows_what_one_exporter_shows(fleet: Fleet) -> None:
    """Each push reaches the fleet once, on a random process, which hands it on to its owners:
    the panel reads the vendor's pushes, not the owners' answers to the forwards."""
    seen: dict[str, dict[str, float]] = {}

    def agreed() -> bool:
        seen.update({name: push_panel(server) for name, server in fleet.prometheus.items()})
        single, fleet_ = seen["single"], seen["fleet"]
        shown = {code for code, value in single.items() if value > 0}
        extra = {code for code, value in fleet_.items() if value > 0} - shown - FLEET_ONLY_CODES
        return (
            "200" in shown
            and not extra
            and all(agree(PUSH_PANEL, single[code], fleet_.get(code, 0.0)) for code in shown)
        )

    try:
        wait_until(agreed, timeout=120, interval=1, ignoring=(requests.RequestException,))
    except AssertionError:
        raise AssertionError(f"{PUSH_PANEL}: {seen}") from None


# ---- the recording rules on a real Prometheus


def recorded_rules() -> list[str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [rule["record"] for group in groups for rule in group["rules"] if "record" in rule]


Series = dict[tuple[tuple[str, str], ...], list[float]]


def series(server: Prometheus, record: str) -> Series:
    """The record's values by their labels, the replica labels left out: a key with two
    values is a series the replicas did not merge."""
    found: Series = collections.defaultdict(list)
    for sample in server.query(record):
        if any(sample["metric"].get(name) == value for name, value in OWN_MOMENTS):
            continue
        labels = {k: v for k, v in sample["metric"].items() if k not in REPLICA_LABELS}
        found[tuple(sorted(labels.items()))].append(float(sample["value"][1]))
    return dict(found)


def agree(record: str, one: float, other: float) -> bool:
    if SERIES_ONLY.search(record):
        return True
    if math.isnan(one) or math.isnan(other):
        return math.isnan(one) and math.isnan(other)
    if record.endswith("_age_seconds:value"):
        return abs(one - other) <= AGE_TOLERANCE_SECONDS
    return abs(one - other) <= RELATIVE_TOLERANCE * max(abs(one), abs(other)) + 1e-9


def disagreements(servers: dict[str, Prometheus], merge: bool) -> list[str]:
    """Every recorded series that differs between the two. With `merge`, a series of the
    single exporter agrees when one of the fleet's replicas of it does (either replica alone is
    complete); without, the fleet must have one series, merged by the rules themselves."""
    problems = []
    for record in recorded_rules():
        if DEPLOYMENT.search(record):
            continue
        single, fleet = series(servers["single"], record), series(servers["fleet"], record)
        if set(single) != set(fleet):
            problems.append(f"{record}: only on one side: {sorted(set(single) ^ set(fleet))}")
            continue
        for key, values in single.items():
            replicas = fleet[key]
            if not merge and len(replicas) != 1:
                problems.append(f"{record}{dict(key)}: {len(replicas)} series, one per replica")
            elif not any(agree(record, values[0], replica) for replica in replicas):
                problems.append(f"{record}{dict(key)}: {values[0]} alone, {replicas} fleet")
    return problems


def rules_agree(fleet: Fleet, merge: bool) -> list[str]:
    """Step the clock once more, wait until both servers have recorded every app's calls and
    agree; the disagreements left when they never do."""
    fleet.clock.step()
    fleet.settle("the calls of the step the rules see")
    for server in fleet.prometheus.values():
        wait_until(
            lambda s=server: (
                {
                    sample["metric"].get("app_id")
                    for sample in s.query("app_id:aivoice_call_results:increase1h > 0")
                }
                >= set(APPS)
            ),
            timeout=DEADLINE,
            ignoring=(requests.RequestException,),
            what="the call rules recorded",
        )
    left: list[str] = []

    def agreed() -> bool:
        left[:] = disagreements(fleet.prometheus, merge)
        return not left

    try:
        wait_until(agreed, timeout=120, interval=1, what="the rules to agree")
    except AssertionError:
        return left
    return []


def test_every_recording_rule_agrees_once_the_test_merges_the_replicas(fleet: Fleet) -> None:
    problems = rules_agree(fleet, merge=True)
    assert not problems, "\n".join(problems)


def test_every_recording_rule_agrees_as_the_rules_merge_the_replicas(fleet: Fleet) -> None:
    problems = rules_agree(fleet, merge=False)
    assert not problems, "\n".join(problems)
