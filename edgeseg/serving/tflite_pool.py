"""Interpreter pools: how many requests one ``model.tflite`` version runs at once.

Contract (as TF Serving's TfLiteInterpreterPool, ``--num_tflite_pools`` and
``--num_tflite_interpreters_per_pool``): a version holds ``pools`` pools of
``per_pool`` interpreters, all built by ``factory()`` at load time. A LiteRT interpreter is
not thread-safe and holds one request's tensors, so each interpreter serves one request at
a time: :meth:`InterpreterPools.acquire` hands a free one out (from the pool with the most
free interpreters, so pools run in parallel) and blocks while all are busy, at most
``timeout_s`` (then DEADLINE_EXCEEDED). At most ``pools * per_pool`` requests run at once;
the others wait in arrival order of the condition variable. Thread-safe.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from edgeseg.errors import DeadlineExceeded, InvalidArgument


class InterpreterPools:
    def __init__(self, factory: Callable[[], Any], pools: int, per_pool: int,
                 first: Any = None) -> None:
        """``first``: an interpreter already built (the one the signatures were read from)."""
        if pools < 1 or per_pool < 1:
            raise InvalidArgument(f"TFLite pools and interpreters per pool must be >= 1, got "
                                  f"{pools} pools of {per_pool}")
        self._cond = threading.Condition()
        self._free: list[list[Any]] = []
        for p in range(pools):
            pool = []
            for i in range(per_pool):
                pool.append(first if (p, i) == (0, 0) and first is not None else factory())
            self._free.append(pool)
        self.size = pools * per_pool
        self._busy = 0

    @property
    def busy(self) -> int:
        with self._cond:
            return self._busy

    @contextlib.contextmanager
    def acquire(self, timeout_s: float | None = None) -> Iterator[Any]:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while True:
                pool = max(self._free, key=len)
                if pool:
                    interpreter = pool.pop()
                    self._busy += 1
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise DeadlineExceeded(
                        f"no free TFLite interpreter within {(timeout_s or 0.0) * 1000:.0f} ms "
                        f"(all {self.size} busy; see --num_tflite_pools)")
                self._cond.wait(left)
        try:
            yield interpreter
        finally:
            with self._cond:
                pool.append(interpreter)
                self._busy -= 1
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            for pool in self._free:
                pool.clear()
