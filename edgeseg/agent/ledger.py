"""The frame ledger: where every captured frame ended up, kept in one place.

Contract:

* A frame is *entered* once, as the capture thread hands it to the pipeline (the frame
  slot's ``on_put``), and *settled* once: :meth:`acknowledge` when the broker accepted
  its messages (docs/mqtt.md, "Accounting"), or :meth:`drop` with one of :data:`REASONS`.
* At every moment ``captured == acknowledged + sum(dropped) + in_flight``: the counts
  and the set of in-flight frame ids change together under one lock, and
  :meth:`snapshot` reads them under it. Settling a frame that is not in flight (never
  entered, or settled already) changes no count: it is counted in ``errors`` and logged,
  because it is a bug in the caller.
* :meth:`close` settles whatever is still in flight as ``shutdown`` (so ``in_flight`` is
  0 after a stop) and ignores settlements that arrive after it (a reply or PUBACK that
  came back late: the frame was already counted).
* ``listeners`` (optional) are called ``(frame_id, outcome)`` for every settlement,
  outside the lock; an outcome is ``"acknowledged"`` or a drop reason.
* :class:`LedgerFile` is such a listener: one line per settled frame,
  ``<unix time> <frame id> <outcome>``, after a ``# start`` line per agent run (frame ids
  start at 0 each run). A write that fails (a full disk) is logged once and the file
  stops; the agent and its counts go on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

log = logging.getLogger("edgeseg.agent.ledger")

ACKNOWLEDGED = "acknowledged"

#: Why a frame was dropped; each frame ends in exactly one of these or is acknowledged.
REASONS = (
    "capture_overwritten",  # replaced in the size-1 frame slot by a newer frame
    "server_unavailable",   # server unreachable, deadline passed, or a backoff running
    "inference_error",      # the server answered an error, or its reply was unreadable
    "stale",                # a pipelined reply came back after a newer frame's mask
    "result_overwritten",   # replaced in the result queue (encoding fell behind)
    "outbox_full",          # the outbox (or paho's queue) was full: broker away too long
    "connection_lost",      # a QoS 0 message not written before the connection dropped
    "broker_refused",       # the broker refused a message of the frame (reason >= 0x80)
    "shutdown",             # still in the pipeline when the agent stopped
)


@dataclass(frozen=True)
class Snapshot:
    captured: int
    acknowledged: int
    dropped: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    errors: int = 0

    @property
    def balanced(self) -> bool:
        return self.captured == self.acknowledged + sum(self.dropped.values()) + self.in_flight

    def line(self) -> str:
        """One log line with every total (the agent logs it at exit)."""
        drops = ", ".join(f"{r}={n}" for r, n in self.dropped.items() if n) or "none"
        return (f"frames captured={self.captured} acknowledged={self.acknowledged} "
                f"dropped={sum(self.dropped.values())} ({drops}) in_flight={self.in_flight}")


class Ledger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: set[int] = set()
        self._captured = 0
        self._acknowledged = 0
        self._dropped = dict.fromkeys(REASONS, 0)
        self._errors = 0
        self._closed = False
        self.listeners: list[Callable[[int, str], None]] = []

    def enter(self, frame_id: int) -> None:
        with self._lock:
            if frame_id in self._in_flight or self._closed:
                self._errors += 1
                log.error("ledger: frame %d entered twice or after close", frame_id)
                return
            self._in_flight.add(frame_id)
            self._captured += 1

    def acknowledge(self, frame_id: int) -> None:
        self._settle(frame_id, ACKNOWLEDGED)

    def drop(self, frame_id: int, reason: str) -> None:
        if reason not in self._dropped:
            raise ValueError(f"unknown drop reason {reason!r}; expected one of {REASONS}")
        self._settle(frame_id, reason)

    def _settle(self, frame_id: int, outcome: str) -> None:
        with self._lock:
            if frame_id not in self._in_flight:
                if not self._closed:
                    self._errors += 1
                    log.error("ledger: frame %d settled as %s but it is not in flight",
                              frame_id, outcome)
                return
            self._in_flight.discard(frame_id)
            if outcome == ACKNOWLEDGED:
                self._acknowledged += 1
            else:
                self._dropped[outcome] += 1
        for listener in self.listeners:
            listener(frame_id, outcome)

    def in_flight_ids(self) -> list[int]:
        with self._lock:
            return sorted(self._in_flight)

    def close(self, reason: str = "shutdown") -> Snapshot:
        """Settle every frame still in flight as ``reason``; later settlements are ignored."""
        for frame_id in self.in_flight_ids():
            self.drop(frame_id, reason)
        with self._lock:
            self._closed = True
        return self.snapshot()

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(self._captured, self._acknowledged, dict(self._dropped),
                            len(self._in_flight), self._errors)


class LedgerFile:
    """Appends every settlement to ``path`` (``health.ledger_file``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        try:
            self._file = path.open("a", buffering=1)  # a line reaches the file as written
            self._file.write(f"# start {time.time():.3f} pid {os.getpid()}\n")
        except OSError as exc:
            self._failed(exc)

    def __call__(self, frame_id: int, outcome: str) -> None:
        with self._lock:
            if self._file is None:
                return
            try:
                self._file.write(f"{time.time():.3f} {frame_id} {outcome}\n")
            except OSError as exc:
                self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        log.error("ledger: cannot write %s (%s); the frame log stops here, the counts go on",
                  self.path, exc.strerror or exc)
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass  # its buffer could not be written either

    def close(self) -> None:
        with self._lock:
            file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                log.error("ledger: cannot write %s (%s)", self.path, exc.strerror or exc)
