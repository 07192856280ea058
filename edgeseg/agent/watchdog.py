"""systemd watchdog: READY=1 after the first published mask, WATCHDOG=1 only while frames flow.

Contract: notifications go through :mod:`edgeseg.sdnotify` (a no-op outside systemd).
:func:`watchdog_due` is the pure rule: ping only if a frame arrived within ``stall_s``.
:class:`Watchdog` runs the pinging thread at half of ``$WATCHDOG_USEC`` (systemd's advice);
a stuck camera or pipeline thus stops the pings and systemd restarts the unit.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from edgeseg.sdnotify import sd_notify, watchdog_interval

__all__ = ["Watchdog", "sd_notify", "watchdog_due", "watchdog_interval"]

log = logging.getLogger("edgeseg.agent.watchdog")


def watchdog_due(last_frame_mono: float | None, now_mono: float, stall_s: float) -> bool:
    return last_frame_mono is not None and now_mono - last_frame_mono <= stall_s


class Watchdog:
    """Owns READY/WATCHDOG/STOPPING for one agent process; thread-safe."""

    def __init__(self, stall_s: float, env: dict[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.stall_s = stall_s
        self.ready = False
        self.last_frame: float | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def frame_seen(self) -> None:
        self.last_frame = time.monotonic()

    def mask_published(self) -> None:
        with self._lock:
            if self.ready:
                return
            self.ready = True
        sd_notify("READY=1\nSTATUS=publishing masks", self.env)

    def status(self, text: str) -> None:
        sd_notify(f"STATUS={text}", self.env)

    def start(self) -> None:
        interval = watchdog_interval(self.env)
        if interval is None:
            return
        self._thread = threading.Thread(target=self._pet, args=(interval,), name="watchdog",
                                        daemon=True)
        self._thread.start()

    def _pet(self, interval: float) -> None:
        while not self._stop.wait(interval):
            if watchdog_due(self.last_frame, time.monotonic(), self.stall_s):
                sd_notify("WATCHDOG=1", self.env)

    def stopping(self) -> None:
        self._stop.set()
        sd_notify("STOPPING=1", self.env)
