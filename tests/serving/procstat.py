"""What a server process holds, read from /proc (Linux), and its Prometheus metrics."""

from __future__ import annotations

import os
import re
import resource
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Usage:
    threads: int
    fds: int
    rss_kb: int


def usage(pid: int) -> Usage:
    status = open(f"/proc/{pid}/status").read()  # one read
    field = lambda name: int(re.search(rf"^{name}:\s+(\d+)", status, re.M)[1])  # noqa: E731
    return Usage(field("Threads"), len(os.listdir(f"/proc/{pid}/fd")), field("VmRSS"))


def raise_fd_limit() -> None:
    """Soft open-files limit up to the hard one (thousands of client sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels`` (0 when none)."""
    with urllib.request.urlopen(url, timeout=30) as response:  # loopback
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)
