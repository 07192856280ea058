"""Frames from a camera, file or stream: one reader thread that keeps only the newest frame.

Contract:

* :func:`parse_source` is pure: it says how a ``--source`` string is opened (a device
  index or /dev/videoN through V4L2, a GStreamer pipeline — anything with ``!`` in it,
  e.g. nvarguscamerasrc on a Jetson — a URL through FFmpeg, anything else as a file).
* :class:`Capture` owns one thread. It puts :class:`Frame` objects into a
  :class:`~edgeseg.agent.queues.DropOldestQueue` (size 1 in the pipeline: the consumer
  always gets the newest frame and every frame it skips is counted as dropped). Live
  sources are read continuously so OpenCV's own buffer never holds stale frames
  (opencv #13145); ``fps`` only limits what is handed on. Files are paced at ``fps`` or
  their own frame rate, like a camera.
* When the source cannot be opened or stops delivering, the thread logs one line per
  attempt, calls ``on_state(False)``, and retries after a capped exponential backoff
  with jitter, sleeping on the stop event (no busy loop; viseron #1461). Frames flowing
  again call ``on_state(True)``.
* A file without ``loop`` ends the stream: the output queue is closed, which tells the
  rest of the pipeline to finish. ``stop`` (an Event set by anyone) ends the thread
  within one read or one backoff wait; the queue is closed in every case — also when the
  thread dies of an unexpected exception, which is logged and sets ``failed``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from edgeseg.agent.backoff import Backoff
from edgeseg.agent.config import SourceConfig
from edgeseg.agent.queues import DropOldestQueue

log = logging.getLogger("edgeseg.agent.capture")

_DEFAULT_FILE_FPS = 25.0


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # "device" | "gstreamer" | "stream" | "file"
    target: int | str
    api: int
    live: bool


@dataclass
class Frame:
    id: int
    image: np.ndarray
    captured_at: float  # wall clock, Unix seconds
    captured_mono: float  # time.monotonic(), for latencies
    timings: dict = field(default_factory=dict)


def parse_source(uri: str) -> SourceSpec:
    text = uri.strip()
    if re.fullmatch(r"\d+", text):
        return SourceSpec("device", int(text), cv2.CAP_V4L2, True)
    if re.fullmatch(r"/dev/video\d+", text):
        return SourceSpec("device", text, cv2.CAP_V4L2, True)
    if "!" in text:
        return SourceSpec("gstreamer", text, cv2.CAP_GSTREAMER, True)
    if re.match(r"^(rtsps?|rtmp|https?|udp|tcp)://", text, re.IGNORECASE):
        return SourceSpec("stream", text, cv2.CAP_FFMPEG, True)
    return SourceSpec("file", text.removeprefix("file://"), cv2.CAP_ANY, False)


def open_capture(spec: SourceSpec, cfg: SourceConfig) -> cv2.VideoCapture | None:
    """An opened VideoCapture, or None; time-outs apply where the backend supports them."""
    params: list[int] = []
    if spec.kind in ("stream", "file"):
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(cfg.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(cfg.read_timeout_s * 1000)]
    try:
        cap = cv2.VideoCapture(spec.target, spec.api, params)
    except cv2.error:
        return None
    if not cap.isOpened():
        cap.release()
        return None
    if spec.kind == "device":
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    return cap


class Capture:
    def __init__(self, cfg: SourceConfig, out: DropOldestQueue[Frame], stop: threading.Event,
                 metrics=None, on_state: Callable[[bool], None] | None = None,
                 on_frame: Callable[[], None] | None = None) -> None:
        self.cfg = cfg
        self.spec = parse_source(cfg.uri)
        self.out = out
        self.stop = stop
        self.metrics = metrics
        self.on_state = on_state or (lambda up: None)
        self.on_frame = on_frame or (lambda: None)
        self.backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)
        self.ended = threading.Event()  # a file reached its end without --loop
        self.frames = 0
        self.failed = False  # the thread died of a bug (the pipeline then exits 1)
        self._up: bool | None = None
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _set_up(self, up: bool) -> None:
        if up != self._up:
            self._up = up
            if self.metrics:
                self.metrics.source_up.set(1 if up else 0)
            self.on_state(up)

    def _run(self) -> None:
        try:
            while not self.stop.is_set() and not self.ended.is_set():
                cap = open_capture(self.spec, self.cfg)
                if cap is None:
                    self._wait_retry(f"cannot open source {self.cfg.uri!r}")
                    continue
                log.info("capture: opened %s %r", self.spec.kind, self.cfg.uri)
                try:
                    delivered = self._read_until_lost(cap)
                finally:
                    cap.release()
                if delivered:
                    self.backoff.reset()
                if not self.stop.is_set() and not self.ended.is_set():
                    self._wait_retry(f"source {self.cfg.uri!r} stopped delivering frames")
        except Exception:
            log.exception("capture: the reader thread failed")
            self.failed = True
        finally:
            self.out.close()

    def _wait_retry(self, why: str) -> None:
        self._set_up(False)
        if self.metrics:
            self.metrics.source_reconnects.inc()
        wait = self.backoff.next_delay()
        log.warning("capture: %s; retrying in %.1f s (attempt %d)", why, wait,
                    self.backoff.attempt)
        self.stop.wait(wait)

    def _interval(self, cap: cv2.VideoCapture) -> float:
        if self.cfg.fps:
            return 1.0 / self.cfg.fps
        if self.spec.live:
            return 0.0
        native = cap.get(cv2.CAP_PROP_FPS)
        return 1.0 / (native if 0 < native < 1000 else _DEFAULT_FILE_FPS)

    def _read_until_lost(self, cap: cv2.VideoCapture) -> bool:
        """Read until the source fails, the file ends, or stop; True if any frame came."""
        interval = self._interval(cap)
        next_due = time.monotonic()
        delivered = False
        while not self.stop.is_set():
            ok, image = self._next(cap, next_due)
            if ok and image is None:
                continue  # drained from OpenCV's buffer but over the fps cap
            if not ok or image is None:
                if self.spec.live or not delivered:
                    return delivered
                if not self.cfg.loop:
                    log.info("capture: end of %r after %d frames", self.cfg.uri, self.frames)
                    self.ended.set()
                    return delivered
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                continue
            delivered = True
            self._set_up(True)
            now = time.monotonic()
            if not self.spec.live and now < next_due:
                self.stop.wait(next_due - now)
                now = time.monotonic()
            next_due = max(next_due + interval, now) if interval else now
            self._emit(image, now)
        return delivered

    def _next(self, cap: cv2.VideoCapture, next_due: float) -> tuple[bool, np.ndarray | None]:
        """(ok, image); for a live source over the fps cap, (True, None): the frame is
        grabbed — so OpenCV's buffer never goes stale — but not decoded (grab is cheap)."""
        if not self.spec.live:
            return cap.read()
        if not cap.grab():
            return False, None
        if time.monotonic() < next_due:
            return True, None
        ok, image = cap.retrieve()
        return ok and image is not None, image

    def _emit(self, image: np.ndarray, mono: float) -> None:
        frame = Frame(self.frames, image, time.time(), mono)
        self.frames += 1
        if self.metrics:
            self.metrics.frames_captured.inc()
        self.on_frame()
        self.out.put(frame)
