"""soak.png: RSS, open fds and masks/s over the soak, with every fault marked."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path


def plot(workdir: Path, faults: list[tuple[float, str]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    with (workdir / "samples.csv").open() as f:
        for row in csv.DictReader(f):
            samples[row["process"]].append((float(row["t_s"]) / 60, int(row["rss_kb"]) / 1024,
                                            int(row["fds"])))
    rates: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with (workdir / "rates.csv").open() as f:
        for row in csv.DictReader(f):
            rates[row["camera"]].append((float(row["t_s"]) / 60, float(row["masks_per_s"])))
    fig, (rss, fds, masks) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    for name, rows in sorted(samples.items()):
        t, mb, fd = zip(*rows, strict=True)
        rss.plot(t, mb, ".-", ms=2, lw=0.8, label=name)
        fds.plot(t, fd, ".-", ms=2, lw=0.8, label=name)
    for cam, rows in sorted(rates.items()):
        t, rate = zip(*rows, strict=True)
        masks.plot(t, rate, lw=0.9, label=cam)
    colours = {"broker restart": "tab:red", "server kill": "tab:purple",
               "camera gone": "tab:orange", "new model version": "tab:green",
               "config reload": "tab:gray"}
    for axis in (rss, fds, masks):
        for at, name in faults:
            axis.axvline(at / 60, color=colours.get(name, "k"), lw=0.6, alpha=0.6)
    rss.set_ylabel("RSS (MB)")
    fds.set_ylabel("open fds")
    masks.set_ylabel("masks/s received")
    masks.set_xlabel("minutes")
    rss.legend(fontsize=7, ncol=3)
    masks.legend(fontsize=7)
    handles = [plt.Line2D([], [], color=c, lw=1.5, label=n) for n, c in colours.items()]
    fds.legend(handles=handles, fontsize=7, ncol=5, title="faults", title_fontsize=7)
    fig.suptitle("edgeseg soak: two cameras, faults on a schedule")
    fig.tight_layout()
    out = workdir / "soak.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
