"""Frames from a camera, file or stream: the newest frame only, outages noticed and logged.

Contract:

* :class:`Capture` owns a supervisor thread. Each opening of the source is a *reader*
  thread of its own (:class:`_Reader`) that makes every blocking OpenCV/GStreamer call, so
  a camera that hangs (SIGSTOPped, a dead link without a TCP reset) blocks only that
  thread: the supervisor notices a read that takes longer than ``read_timeout_s``, gives
  the reader up (it releases its capture whenever the call returns) and reconnects.
* Frames go into a :class:`~edgeseg.agent.queues.DropOldestQueue` (size 1 in the
  pipeline: the consumer always gets the newest frame; skipped frames are counted).
  Live sources are read continuously so OpenCV's own buffer never holds stale frames
  (opencv #13145); ``max_fps`` only limits what is decoded and handed on. Files are
  played at ``pace`` or their own frame rate, like a camera. ``fps`` is the deprecated
  spelling of both (pace for a file, max_fps for a live source).
* While the source is away the supervisor runs the cheap :func:`~edgeseg.agent.sources.probe`
  (a TCP connect for network cameras) after each capped, jittered backoff delay, and
  a full open only when the probe succeeds; it sleeps on the stop event (no busy loop).
  Each outage is two log lines: one when it starts (the cause, e.g. "Connection refused")
  and one when frames flow again (duration, attempts, frames lost at the rate seen
  before). Single attempts are logged at DEBUG. ``on_state`` is called on each change.
* A file without ``loop`` ends the stream: the output queue is closed, which tells the
  rest of the pipeline to finish. ``stop`` ends the supervisor within one poll (0.1 s) or
  one backoff wait; the queue is closed in every case — also when a thread dies of an
  unexpected exception, which is logged and sets ``failed``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import cv2
import numpy as np

from edgeseg.agent.backoff import Backoff
from edgeseg.agent.config import SourceConfig
from edgeseg.agent.metrics import AgentMetrics
from edgeseg.agent.queues import Closed, DropOldestQueue
from edgeseg.agent.sources import (  # noqa: F401 - parse_source re-exported
    FrameSource,
    SourceSpec,
    SourceUnavailable,
    check_source,
    diagnose,
    open_source,
    parse_source,
    probe,
    quiet_opencv,
    redact,
)

log = logging.getLogger("edgeseg.agent.capture")

_DEFAULT_FILE_FPS = 25.0
_POLL_S = 0.1


@dataclass
class Frame:
    id: int
    image: np.ndarray
    captured_at: float  # wall clock, Unix seconds
    captured_mono: float  # time.monotonic(), for latencies
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds


_T = TypeVar("_T")


class _Reader:
    """One opening of the source on its own daemon thread (see the module docstring)."""

    def __init__(self, capture: Capture) -> None:
        self.capture = capture
        self.opened = threading.Event()
        self.done = threading.Event()
        self.cancelled = threading.Event()
        self.busy_since: float | None = time.monotonic()  # a blocking call is running
        self.reason = "the stream ended"
        self.crashed = False
        self.delivered = 0
        threading.Thread(target=self._run, name="capture-reader", daemon=True).start()

    def _run(self) -> None:
        c = self.capture
        try:
            try:
                cap = c.opener(c.spec, c.cfg)
            except SourceUnavailable as exc:
                self.reason = str(exc)
                return
            self.busy_since = None
            if self.cancelled.is_set():
                cap.release()
                return
            c._grabs.clear()  # the rate is this session's
            native = cap.get(cv2.CAP_PROP_FPS) if c.spec.live else 0.0
            c._native_fps = native if 0 < native < 1000 else None
            self.opened.set()
            try:
                c._read_until_lost(cap, self)
            except SourceUnavailable as exc:  # e.g. a pixel format appsink cannot hand on
                self.reason = str(exc)
            finally:
                cap.release()
        except Exception:
            log.exception("capture: the reader thread failed")
            self.crashed = True
        finally:
            self.busy_since = None
            self.done.set()

    def call(self, fn: Callable[..., _T], *args: object) -> _T:
        """A blocking capture call, timed for the supervisor's stall check."""
        self.busy_since = time.monotonic()
        try:
            return fn(*args)
        finally:
            self.busy_since = None


class Capture:
    def __init__(self, cfg: SourceConfig, out: DropOldestQueue[Frame], stop: threading.Event,
                 metrics: AgentMetrics | None = None,
                 on_state: Callable[[bool], None] | None = None,
                 on_frame: Callable[[], None] | None = None) -> None:
        self.cfg = cfg
        self.spec = parse_source(cfg.uri)
        self.backend = check_source(self.spec, cfg)
        self.name = redact(cfg.uri)
        if cfg.fps is not None:
            log.warning("capture: source.fps/--fps is deprecated: it means %s here; use %s",
                        "max_fps (a cap)" if self.spec.live else "pace (the playback rate)",
                        "--max-fps" if self.spec.live else "--pace (and --max-fps for a cap)")
        fps = cfg.fps
        self.pace = cfg.pace or (None if self.spec.live else fps)
        self.max_fps = cfg.max_fps or (fps if self.spec.live else None)
        self.out = out
        self.stop = stop
        self.metrics = metrics
        self.on_state = on_state or (lambda up: None)
        self.on_frame = on_frame or (lambda: None)
        self.opener = open_source
        self.backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)
        self.ended = threading.Event()  # a file reached its end without --loop
        self.frames = 0
        self.failed = False  # a thread died of a bug (the pipeline then exits 1)
        self._up: bool | None = None
        self._grabs: collections.deque[float] = collections.deque(maxlen=30)
        self._native_fps: float | None = None
        self._outage: dict[str, Any] | None = None  # since, attempts, rate, was_up, last
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> None:
        quiet_opencv(log.isEnabledFor(logging.DEBUG))
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    # -- the supervisor --

    def _run(self) -> None:
        try:
            while not self.stop.is_set() and not self.ended.is_set():
                why = probe(self.spec, min(self.cfg.open_timeout_s, 2.0))
                if why is None:
                    why = self._session()
                    if why is None:
                        break
                    cause = diagnose(self.spec, min(self.cfg.open_timeout_s, 2.0))
                    why = f"{why} ({cause})" if cause and cause not in why else why
                self._lost(why)
        except Exception:
            log.exception("capture: the capture thread failed")
            self.failed = True
        finally:
            self.out.close()

    def _session(self) -> str | None:
        """Open and read until lost; the reason, or None after stop/end of file."""
        reader = _Reader(self)
        opened_by = time.monotonic() + self.cfg.open_timeout_s + 1.0
        while not reader.opened.is_set() and not reader.done.wait(_POLL_S):
            if self.stop.is_set():
                reader.cancelled.set()
                return None
            if time.monotonic() > opened_by:
                reader.cancelled.set()
                return f"opening took longer than {self.cfg.open_timeout_s:g} s"
        while not reader.done.wait(_POLL_S):
            if self.stop.is_set():
                reader.cancelled.set()
                return None
            busy = reader.busy_since
            if busy is not None and time.monotonic() - busy > self.cfg.read_timeout_s:
                reader.cancelled.set()
                return (f"no frame for {self.cfg.read_timeout_s:g} s (read_timeout_s): "
                        f"the camera hangs")
        if reader.crashed:
            raise RuntimeError("the reader thread failed (logged above)")
        if reader.delivered:
            self.backoff.reset()
        if self.stop.is_set() or self.ended.is_set():
            return None
        return reader.reason

    def _set_up(self, up: bool) -> None:
        if up != self._up:
            self._up = up
            if self.metrics:
                self.metrics.source_up.set(1 if up else 0)
            self.on_state(up)

    def _lost(self, why: str) -> None:
        self._set_up(False)
        if self.metrics:
            self.metrics.source_reconnects.inc()
        wait = self.backoff.next_delay()
        if self._outage is None:
            was_up = self.frames > 0
            # a hung camera's outage began at its last frame, read_timeout_s ago
            since = self._grabs[-1] if was_up and self._grabs else time.monotonic()
            self._outage = {"since": since, "attempts": 0, "rate": self._rate(),
                            "was_up": was_up}
            if self._outage["was_up"]:
                log.warning("capture: source %r lost: %s; reconnecting (retry in %.2f s, "
                            "then at most every %.1f s)", self.name, why, wait,
                            self.cfg.backoff_max_s)
            else:
                log.warning("capture: cannot open source %r; retrying in %.2f s, then at "
                            "most every %.1f s: %s", self.name, wait, self.cfg.backoff_max_s,
                            why)
        else:
            log.debug("capture: source %r still unavailable: %s; retry in %.1f s",
                      self.name, why, wait)
        self._outage["attempts"] += 1
        self._outage["last"] = why
        self.stop.wait(wait)

    def _rate(self) -> float | None:
        """The camera's frame rate as seen over the last 30 frames; right after an open,
        where a burst of buffered frames would inflate that, what the stream declares."""
        g = self._grabs
        seen = (len(g) - 1) / (g[-1] - g[0]) if len(g) >= 2 and g[-1] > g[0] else None
        if seen is not None and (g[-1] - g[0] >= 1.0 or not self._native_fps):
            return seen
        return self._native_fps

    def _back(self) -> None:
        """Frames flow (again): end the outage with its one summary line."""
        outage, self._outage = self._outage, None
        if outage is None:
            log.info("capture: opened %s %r (%s)", self.spec.kind, self.name, self.backend)
            return
        took = time.monotonic() - outage["since"]
        if not outage["was_up"]:
            log.info("capture: opened %s %r after %.1f s (%d attempts)", self.spec.kind,
                     self.name, took, outage["attempts"])
            return
        rate = outage["rate"]
        lost = f"~{round(took * rate)} frames lost at {rate:.1f} fps" if rate else \
            "frames lost: unknown rate"
        log.warning("capture: source %r back after a %.1f s outage (%d reconnect attempt(s), "
                    "%s; last failure: %s)", self.name, took, outage["attempts"], lost,
                    outage["last"])

    # -- the reader's loop (runs on the reader thread) --

    def _interval(self, cap: FrameSource) -> tuple[float, float]:
        """(seconds between frames read, seconds between frames handed on)."""
        handed = 1.0 / self.max_fps if self.max_fps else 0.0
        if self.spec.live:
            return 0.0, handed
        if self.pace:
            return 1.0 / self.pace, handed
        native = cap.get(cv2.CAP_PROP_FPS)
        return 1.0 / (native if 0 < native < 1000 else _DEFAULT_FILE_FPS), handed

    def _read_until_lost(self, cap: FrameSource, reader: _Reader) -> None:
        read_every, hand_every = self._interval(cap)
        next_read = next_hand = time.monotonic()
        while not self.stop.is_set() and not reader.cancelled.is_set():
            if not self.spec.live and time.monotonic() < next_read:
                self.stop.wait(next_read - time.monotonic())
            if not reader.call(cap.grab):
                if self.spec.live or not reader.delivered:
                    reader.reason = getattr(cap, "last_error", None) or "the stream ended"
                    return
                if not self.cfg.loop:
                    log.info("capture: end of %r after %d frames", self.name, self.frames)
                    self.ended.set()
                    return
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            if reader.cancelled.is_set():
                return  # given up while it hung: this frame is stale
            # keep the rate (a loop's rewind costs no interval), but a reader that was late
            # never bursts: frames stay at least 3/4 of an interval apart, like a camera's
            next_read = max(next_read + read_every, time.monotonic() + read_every * 0.75)
            now = time.monotonic()
            self._grabs.append(now)
            if now < next_hand:
                reader.delivered += 1
                continue  # taken out of the buffer but over the max_fps cap: not decoded
            ok, image = reader.call(cap.retrieve)
            if not ok or image is None or reader.cancelled.is_set():
                continue
            next_hand = max(next_hand + hand_every, now) if hand_every else now
            reader.delivered += 1
            if self._up is not True:
                self._back()
            self._set_up(True)
            self._emit(image, time.monotonic())

    def _emit(self, image: np.ndarray, mono: float) -> None:
        frame = Frame(self.frames, image, time.time(), mono)
        self.frames += 1
        if self.metrics:
            self.metrics.frames_captured.inc()
        self.on_frame()
        try:
            self.out.put(frame)
        except Closed:
            pass  # the capture is stopping; this reader ends at its next check
