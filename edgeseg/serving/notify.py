"""systemd readiness: ``sd_notify`` in pure Python.

Contract: :func:`sd_notify` sends one datagram ("READY=1", "STOPPING=1", "STATUS=...") to
the socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace)
and returns True; without that variable, or when sending fails, it does nothing and
returns False. It never raises: readiness reporting must not take the server down.
"""

from __future__ import annotations

import os
import socket


def sd_notify(message: str, environ: dict[str, str] | None = None) -> bool:
    address = (environ if environ is not None else os.environ).get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
    except OSError:
        return False
    return True
