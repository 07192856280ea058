"""Retry delays: capped exponential backoff with full jitter — a pure policy.

``delay(attempt)`` for attempt 0, 1, 2, … is drawn uniformly from
[(1 - jitter) * d, d] where d = min(cap, initial * 2**attempt). Never zero while
initial > 0 and jitter < 1, so a dead camera or server is never polled in a busy loop.
:class:`Backoff` keeps the attempt count for one retrying loop (one thread owns it).
"""

from __future__ import annotations

import random


def delay(attempt: int, initial: float, cap: float, jitter: float, rnd: float) -> float:
    """The delay before retry ``attempt`` (0-based); ``rnd`` in [0, 1) makes it testable."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    ceiling = min(cap, initial * (2.0 ** min(attempt, 62)))
    return ceiling * (1.0 - jitter * rnd)


class Backoff:
    def __init__(self, initial: float = 0.5, cap: float = 30.0, jitter: float = 0.5) -> None:
        self.initial, self.cap, self.jitter = initial, cap, jitter
        self.attempt = 0

    def next_delay(self) -> float:
        d = delay(self.attempt, self.initial, self.cap, self.jitter, random.random())  # noqa: S311
        self.attempt += 1
        return d

    def reset(self) -> None:
        self.attempt = 0
