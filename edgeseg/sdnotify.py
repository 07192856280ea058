"""systemd's notify protocol in pure Python, for every long-running edgeseg process.

Contract: :func:`sd_notify` sends one datagram ("READY=1", "WATCHDOG=1", "STOPPING=1",
"STATUS=…") to ``$NOTIFY_SOCKET`` (a path, or an abstract socket when it starts with
``@``) and returns True; without the variable, or when sending fails (logged), it returns
False and never raises, so a process runs the same outside systemd.
:func:`watchdog_interval` is systemd's advice: ping at half of ``$WATCHDOG_USEC``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("edgeseg.sdnotify")


def sd_notify(message: str, env: Mapping[str, str] | None = None) -> bool:
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
        log.warning("sd_notify to %s failed: %s", env.get("NOTIFY_SOCKET"), exc)
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
