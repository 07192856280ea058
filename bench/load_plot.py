"""bench_load's plot: the well-behaved client's latency, and the server's threads, fds and
RSS over time, the load phase shaded (matplotlib, from the dev extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot(probe: Any, load: tuple[float, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    for transport, color in (("grpc", "tab:blue"), ("rest", "tab:orange")):
        points = [(t, s * 1000) for t, tr, s in probe.latency if tr == transport and s >= 0]
        axes[0].scatter(*zip(*points, strict=True), s=3, color=color, label=transport)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("well-behaved\nlatency ms")
    axes[0].legend()
    t = [s[0] for s in probe.samples]
    axes[1].plot(t, [s[1] for s in probe.samples])
    axes[1].set_ylabel("threads")
    axes[2].plot(t, [s[2] for s in probe.samples], label="fds")
    axes[2].plot(t, [s[4].get('edgeseg_serving_open_connections{transport="rest"}', 0)
                     for s in probe.samples], label="open REST connections")
    axes[2].legend()
    axes[3].plot(t, [s[3] for s in probe.samples])
    axes[3].set_ylabel("RSS MiB")
    axes[3].set_xlabel("seconds")
    for axis in axes:
        axis.axvspan(*load, color="red", alpha=0.08)
    fig.suptitle("edgeseg serve under load (shaded: load on)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    print(f"\nplot: {path}")
