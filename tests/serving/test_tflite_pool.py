"""InterpreterPools: one request per interpreter, pools in parallel, bounded waits (no I/O)."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from edgeseg.errors import DeadlineExceeded, InvalidArgument
from edgeseg.serving.tflite_pool import InterpreterPools


def _pools(pools: int, per_pool: int) -> InterpreterPools:
    counter = itertools.count()
    return InterpreterPools(lambda: f"interpreter{next(counter)}", pools, per_pool)


@pytest.mark.parametrize(("pools", "per_pool"), [(1, 2), (2, 1), (2, 2)])
def test_each_interpreter_serves_one_request_at_a_time(pools, per_pool):
    pool = _pools(pools, per_pool)
    in_use: set[str] = set()
    peak, lock, errors = [0], threading.Lock(), []

    def client() -> None:
        for _ in range(20):
            with pool.acquire() as interpreter:
                with lock:
                    if interpreter in in_use:
                        errors.append(f"{interpreter} handed out twice")
                    in_use.add(interpreter)
                    peak[0] = max(peak[0], len(in_use))
                time.sleep(0.001)
                with lock:
                    in_use.discard(interpreter)

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert 1 <= peak[0] <= pools * per_pool
    assert pool.busy == 0


def test_pools_run_in_parallel():
    pool = _pools(2, 1)
    barrier = threading.Barrier(2, timeout=10)  # breaks unless both runs are inside at once
    results = []

    def client() -> None:
        with pool.acquire() as interpreter:
            barrier.wait()
            results.append(interpreter)

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(results) == ["interpreter0", "interpreter1"]


def test_a_full_pool_makes_callers_wait_then_deadline_exceeded():
    pool = _pools(1, 1)
    with pool.acquire():
        with pytest.raises(DeadlineExceeded, match="no free TFLite interpreter within 50 ms"):
            with pool.acquire(timeout_s=0.05):
                pass
    with pool.acquire(timeout_s=0.05) as interpreter:  # released: free again
        assert interpreter == "interpreter0"


def test_sizes_are_validated_and_the_first_interpreter_is_reused():
    with pytest.raises(InvalidArgument, match="must be >= 1"):
        _pools(0, 1)
    pool = InterpreterPools(lambda: "built", 1, 2, first="given")
    with pool.acquire() as a, pool.acquire() as b:
        assert {a, b} == {"given", "built"}
