"""Small helpers for the benchmarks: timing loops and table printing."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence


def timings(fn: Callable[[], object], runs: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def interleaved(fns: dict[str, Callable[[], object]], runs: int,
                warmup: int = 2) -> dict[str, list[float]]:
    """Time several functions in alternation (A B A B …) so that a noisy neighbour
    slows them all alike and their ratio stays meaningful."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            out[name].append(time.perf_counter() - started)
    return out


def median_ms(values: Sequence[float]) -> float:
    return 1000 * statistics.median(values)


def p90_ms(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
