"""The worker pool: a fixed number of threads, taking turns between keys."""

from __future__ import annotations

import threading
from concurrent.futures import wait

from exporter.process.workers import WorkerPool


def test_calls_run_and_their_results_come_back() -> None:
    pool = WorkerPool(2, "test")
    try:
        futures = [pool.submit(lambda n=n: n * n) for n in range(10)]
        assert [future.result(timeout=5) for future in futures] == [n * n for n in range(10)]
    finally:
        pool.close()


def test_an_exception_goes_to_the_future_not_the_worker() -> None:
    pool = WorkerPool(1, "test")
    try:
        failed = pool.submit(lambda: 1 / 0)
        assert isinstance(failed.exception(timeout=5), ZeroDivisionError)
        assert pool.submit(lambda: "still working").result(timeout=5) == "still working"
    finally:
        pool.close()


def test_keys_take_turns_so_a_long_queue_never_starves_another_key() -> None:
    pool = WorkerPool(1, "test")
    gate = threading.Event()
    order: list[str] = []
    try:
        pool.submit(gate.wait, key="big")  # Holds the only worker while the queues fill.
        big = [pool.submit(lambda: order.append("big"), key="big") for _ in range(50)]
        small = pool.submit(lambda: order.append("small"), key="small")
        gate.set()
        wait([*big, small], timeout=5)
    finally:
        pool.close()
    assert order.index("small") <= 1


def test_thread_count_is_the_pool_size_whatever_is_queued() -> None:
    pool = WorkerPool(3, "counted")
    gate = threading.Event()
    try:
        futures = [pool.submit(gate.wait, key=str(n)) for n in range(100)]
        workers = [t for t in threading.enumerate() if t.name.startswith("counted-")]
        assert len(workers) == 3
        gate.set()
        wait(futures, timeout=5)
    finally:
        pool.close()


def test_close_cancels_what_is_still_queued() -> None:
    pool = WorkerPool(1, "test")
    gate, started = threading.Event(), threading.Event()
    running = pool.submit(lambda: started.set() or gate.wait())
    queued = pool.submit(lambda: "never")
    started.wait(5)
    pool.close()
    gate.set()
    assert running.result(timeout=5) is True
    assert queued.cancelled()
