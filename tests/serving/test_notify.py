"""sd_notify: one datagram to $NOTIFY_SOCKET, silence without it."""

from __future__ import annotations

import socket

from edgeseg.serving.notify import sd_notify


def test_sends_ready_to_the_notify_socket(tmp_path):
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        assert sd_notify("READY=1", {"NOTIFY_SOCKET": path})
        assert sock.recv(100) == b"READY=1"


def test_no_socket_no_message_no_error(tmp_path):
    assert not sd_notify("READY=1", {})
    assert not sd_notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
