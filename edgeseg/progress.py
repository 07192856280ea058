"""Progress lines on stderr for steps that take more than a moment.

``with progress.step("building"):`` prints the step when it starts and its duration when
it ends; on a terminal a ticker repaints the elapsed time every half second so a slow
step never looks hung. ``Progress(enabled=False)`` is silent (tests, --quiet).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    def __init__(self, prefix: str = "edgeseg", stream: TextIO | None = None,
                 enabled: bool = True) -> None:
        self.prefix = prefix
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last_quarter = 0

    def say(self, message: str) -> None:
        if self.enabled:
            print(f"{self.prefix}: {message}", file=self.stream, flush=True)

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        started = time.monotonic()
        stop = threading.Event()
        ticker = None
        if self.tty:
            ticker = threading.Thread(target=self._tick, args=(what, started, stop), daemon=True)
            ticker.start()
        else:
            self.say(f"{what}…")
        try:
            yield
        except BaseException:
            stop.set()
            if ticker:
                ticker.join()
            self._line(f"{what}: failed after {time.monotonic() - started:.1f} s")
            raise
        stop.set()
        if ticker:
            ticker.join()
        self._line(f"{what}: done in {time.monotonic() - started:.1f} s")

    def count(self, what: str, done: int, total: int) -> None:
        """A counter for loops (calibration images, …)."""
        if not self.enabled:
            return
        if self.tty:
            end = "\n" if done == total else ""
            print(f"\r{self.prefix}: {what} {done}/{total}", end=end, file=self.stream,
                  flush=True)
        elif done == total or done % 10 == 0:
            self.say(f"{what} {done}/{total}")

    def transfer(self, what: str, done: int, total: int | None, final: bool = False) -> None:
        """A byte counter for downloads: a bar on a terminal, a line a quarter elsewhere."""
        if not self.enabled:
            return
        mb = f"{done / 1e6:.1f}" + (f"/{total / 1e6:.1f} MB" if total else " MB")
        if self.tty:
            filled = int(30 * done / total) if total else 0
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] " if total else ""
            print(f"\r{self.prefix}: {what} {bar}{mb}", end="\n" if final else "",
                  file=self.stream, flush=True)
            return
        quarter = 4 * done // total if total else 0
        if final or quarter > self._last_quarter:
            self._last_quarter = 0 if final else quarter
            self.say(f"{what} {mb}" + (" done" if final else ""))

    def _tick(self, what: str, started: float, stop: threading.Event) -> None:
        while not stop.wait(0.5):
            print(f"\r{self.prefix}: {what}… {time.monotonic() - started:.0f} s", end="",
                  file=self.stream, flush=True)

    def _line(self, text: str) -> None:
        lead = "\r" if self.tty else ""
        print(f"{lead}{self.prefix}: {text}", file=self.stream, flush=True)
