"""sd_notify messages arrive on a real Unix datagram socket made by the test."""

import os
import socket
import time

import pytest

from edgeseg.agent.watchdog import Watchdog, sd_notify, watchdog_due, watchdog_interval


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.1)
    try:
        yield str(path), sock
    finally:
        sock.close()


def received(sock, seconds: float) -> list[str]:
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            pass
    return out


def test_sd_notify_sends_one_datagram(notify_socket):
    path, sock = notify_socket
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": path})
    assert sock.recv(100) == b"READY=1"


def test_abstract_socket_address():
    name = f"edgeseg-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert sd_notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"WATCHDOG=1"


def test_without_systemd_it_is_a_no_op(tmp_path):
    assert sd_notify("READY=1", {}) is False
    assert sd_notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False


@pytest.mark.parametrize("env, expected", [
    ({}, None), ({"WATCHDOG_USEC": "0"}, None), ({"WATCHDOG_USEC": "4000000"}, 2.0),
    ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}, None),
    ({"WATCHDOG_USEC": "x"}, None),
])
def test_watchdog_interval(env, expected):
    assert watchdog_interval(env) == expected


@pytest.mark.parametrize("last, now, stall, due", [
    (None, 10.0, 5.0, False), (9.0, 10.0, 5.0, True), (4.0, 10.0, 5.0, False),
    (5.0, 10.0, 5.0, True),
])
def test_watchdog_due(last, now, stall, due):
    assert watchdog_due(last, now, stall) is due


def test_ready_once_and_watchdog_only_while_frames_flow(notify_socket):
    path, sock = notify_socket
    health = Watchdog(stall_s=0.3, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    health.start()
    try:
        assert received(sock, 0.3) == []  # no frame yet: no ping
        health.frame_seen()
        health.mask_published()
        health.mask_published()
        msgs = received(sock, 0.25)
        assert msgs.count("READY=1\nSTATUS=publishing masks") == 1
        assert msgs.count("WATCHDOG=1") >= 2
        # Frames stopped. The rule is a duration: pings go on until stall_s (0.3 s) has
        # passed, so this window is waited out (and drained: pings sent in it are allowed),
        # then the next 0.3 s must be silent.
        received(sock, 0.3)
        assert "WATCHDOG=1" not in received(sock, 0.3)
    finally:
        health.stopping()
    assert "STOPPING=1" in received(sock, 0.2)
