"""The preview's hand-over point between a producer and its viewers.

Contract: the producer (the agent's publish loop, or ``edgeseg view``'s MQTT callback)
calls :meth:`PreviewHub.update` with the newest frame (BGR), its class map and a few
facts; that only stores references, so a camera with no viewer pays nothing. Viewers
(HTTP threads) call :meth:`jpeg`, which encodes an overlay at most once per frame and
opacity, and :meth:`wait_next` to block until a newer frame arrives. Thread-safe.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import cv2
import numpy as np

from edgeseg.preview.overlay import blend, legend, palette_lut


class PreviewHub:
    def __init__(self, names: Sequence[str], palette: Sequence[Sequence[int]],
                 max_fps: float = 10.0, jpeg_quality: int = 80) -> None:
        self.names = list(names)
        self.palette = [tuple(c) for c in palette]
        self.max_fps = max_fps
        self.jpeg_quality = jpeg_quality
        self._lut = palette_lut(self.palette)
        self._cond = threading.Condition()
        self._seq = 0
        self._image: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._info: dict[str, Any] = {}
        self._stamps: list[float] = []
        self._cache: dict[int, tuple[int, bytes]] = {}
        self._legend: tuple[int, list[dict]] = (-1, [])
        self.viewers = 0
        self.encoded_total = 0

    def update(self, image_bgr: np.ndarray, class_map: np.ndarray,
               info: dict[str, Any] | None = None) -> None:
        now = time.monotonic()
        with self._cond:
            self._image, self._mask, self._info = image_bgr, class_map, dict(info or {})
            self._seq += 1
            self._stamps = [t for t in self._stamps if now - t < 5.0][-99:] + [now]
            self._cond.notify_all()

    @property
    def seq(self) -> int:
        return self._seq

    def wait_next(self, after: int, timeout: float) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after, timeout=timeout)
            return self._seq

    def fps(self) -> float:
        with self._cond:
            stamps = [t for t in self._stamps if time.monotonic() - t < 5.0]
        span = stamps[-1] - stamps[0] if len(stamps) >= 2 else 0.0
        if span <= 0:  # fewer than two frames, or two in one clock tick
            return 0.0
        return (len(stamps) - 1) / span

    def jpeg(self, opacity: float = 0.5) -> tuple[int, bytes] | None:
        """(frame seq, JPEG of the overlay) for the newest frame, or None before one."""
        key = int(round(min(max(opacity, 0.0), 1.0) * 100))
        with self._cond:
            seq, image, mask = self._seq, self._image, self._mask
            cached = self._cache.get(key)
        if image is None or mask is None:
            return None
        if cached and cached[0] == seq:
            return cached
        ok, data = cv2.imencode(".jpg", blend(image, mask, self._lut, key / 100),
                                [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            return None
        entry = (seq, data.tobytes())
        with self._cond:
            self.encoded_total += 1
            if len(self._cache) > 8:
                self._cache.clear()
            self._cache[key] = entry
        return entry

    def stats(self) -> dict[str, Any]:
        with self._cond:
            seq, mask, info = self._seq, self._mask, dict(self._info)
            cached_seq, rows = self._legend
        if mask is not None and cached_seq != seq:
            rows = legend(mask, self.names, self.palette)
            with self._cond:
                self._legend = (seq, rows)
        height, width = (mask.shape if mask is not None else (0, 0))
        return {"frames": seq, "fps": round(self.fps(), 2), "width": int(width),
                "height": int(height), "legend": rows, "viewers": self.viewers, **info}

    @contextmanager
    def viewer(self) -> Iterator[None]:
        with self._cond:
            self.viewers += 1
        try:
            yield
        finally:
            with self._cond:
                self.viewers -= 1
