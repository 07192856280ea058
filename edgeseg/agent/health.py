"""systemd health: READY=1 after the first published mask, WATCHDOG=1 only while frames flow.

Contract: :func:`sd_notify` sends one datagram to ``$NOTIFY_SOCKET`` (a path, or an
abstract socket when it starts with ``@``) and returns False — never raises — when there
is no socket, so the agent runs the same outside systemd. :func:`watchdog_due` is the pure
rule: ping only if a frame arrived within ``stall_s``. :class:`Health` runs the pinging
thread at half of ``$WATCHDOG_USEC`` (systemd's advice); a stuck camera or pipeline thus
stops the pings and systemd restarts the unit.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

log = logging.getLogger("edgeseg.agent.health")


def sd_notify(message: str, env: dict[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode("utf-8"), address)
        return True
    except OSError as exc:
        log.warning("health: sd_notify to %s failed: %s", env.get("NOTIFY_SOCKET"), exc)
        return False


def watchdog_interval(env: dict[str, str]) -> float | None:
    """Seconds between pings (half of WATCHDOG_USEC), or None when no watchdog applies."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 2e6


def watchdog_due(last_frame_mono: float | None, now_mono: float, stall_s: float) -> bool:
    return last_frame_mono is not None and now_mono - last_frame_mono <= stall_s


class Health:
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
