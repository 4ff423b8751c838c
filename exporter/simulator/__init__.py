"""A built-in simulator of the ITNIO AI-voice API's ``POST /aivoice/taskList`` and
``POST /aivoice/recordQuery``, and of its call-record push.

Why it exists: the exporter polls a paid vendor API that has no sandbox. The tests, the
benchmarks and ``aivoice-exporter --demo`` need something that behaves as the API is documented
(docs/api.md) and that fails on demand with every injected fault counted, so a soak test can
prove that the exporter neither loses nor double counts errors.

As documented, it checks the signed headers, answers the documented codes, pages like the real
API (it may ignore the asked ``size``; records are newest first, so a task created while a
client pages pushes every later record down a place) and holds campaigns whose progress moves
with the clock, deterministic from a seed. Beyond that, for tests: tasks created or deleted
between two page reads, pages built in the order a test chooses, the documented faults, and
hostile answers a broken or malicious server might send. See ``Faults``. Each generated task's
calls are drawn from the seed as its progress moves, served by recordQuery and, with
``push_url``, pushed as they end (retried, and now and then twice).

Where things are:

* ``account``: ``Account``, the model: the state and its lock, and how a request is answered;
* ``simulator``: ``Simulator``, the account served over HTTP, started and stopped;
* ``api``: the request and answer formats as the vendor documents them;
* ``campaigns``: the generated tasks and their progress; ``tasks``: each app's task list and
  the changes tests make to it between page reads;
* ``calls``: the calls of those tasks, as recordQuery and the push show them;
  ``ended``: each call drawn once as it ends, for the index, the push and the balance;
  ``call_index``: each app's ended calls, that recordQuery pages are cut from;
  ``reporting``: which time a window selects by, and the calls that show late;
  ``record_query``: recordQuery's pages, cut from the index as ``reporting`` selects;
  ``lines``: each app's calling lines (channelList), one of which can degrade;
* ``push``: the thread that pushes each call as it ends;
* ``faults``: ``Faults``, the fault kinds, how a fault is chosen and what it counts as;
* ``hostile``: the bodies faults answer with (gzip bomb, oversize, poison, odd statuses...),
  and ``answers``: which one a fault answers with;
* ``server``: HTTP, the control endpoints (``/-/faults``, ``/-/fail-next``, ...), the redirect
  capture listener; it hands requests to the ``Account`` and never the other way;
* ``cli``: ``python -m exporter.simulator --listen-address 127.0.0.1:8080 --api-key K
  --api-secret S --app-ids A,B [--push-url URL]``.

Standard library only (and the neutral ``exporter.listen``), so ``--demo`` needs nothing more and
the simulator shares no code with the exporter it checks. It is a test tool: the control
endpoints have no authentication, so bind it to loopback.
"""

from exporter.simulator.api import (
    API_PATH,
    ENDPOINTS,
    KNOWN_STATUSES,
    MAX_TIMESTAMP_SKEW_SECONDS,
    RECORD_QUERY_PATH,
)
from exporter.simulator.calls import RESULT_STATUSES
from exporter.simulator.cli import main
from exporter.simulator.faults import (
    ALL_FAULT_KINDS,
    CHURN_ACTIONS,
    FAULT_KINDS,
    FAULT_VARIANTS,
    HOSTILE_FAULT_KINDS,
    Faults,
    Stats,
    expected_status_code,
)
from exporter.simulator.hostile import gzip_bomb, odd_valid_records
from exporter.simulator.simulator import Simulator

__all__ = [
    "ALL_FAULT_KINDS",
    "API_PATH",
    "CHURN_ACTIONS",
    "ENDPOINTS",
    "FAULT_KINDS",
    "FAULT_VARIANTS",
    "HOSTILE_FAULT_KINDS",
    "KNOWN_STATUSES",
    "MAX_TIMESTAMP_SKEW_SECONDS",
    "RECORD_QUERY_PATH",
    "RESULT_STATUSES",
    "Faults",
    "Simulator",
    "Stats",
    "expected_status_code",
    "gzip_bomb",
    "main",
    "odd_valid_records",
]
