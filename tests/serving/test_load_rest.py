"""REST under load on a real server: idle sockets and slow senders hold no threads, are
dropped after --rest_api_idle_timeout_s, and what they held comes back (issue 17).

One server for the module (4 workers, a 2 s timeout); the tests run in order and the last
checks threads, fds and RSS against their levels before the first.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from .conftest import free_port, rest_call, run_serve, tfs_data
from .procstat import metric, raise_fd_limit, usage, wait_until

POOL = 4
TIMEOUT_S = 2.0
IDLE = 2000
SLOW = 100
HALF_HEAD = b"POST /v1/models/default:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@pytest.fixture(scope="module")
def server(serve):
    raise_fd_limit()
    port = free_port()
    server = serve(f"--model_base_path={tfs_data('saved_model_half_plus_two_cpu')}",
                   f"--rest_api_port={port}", f"--rest_api_num_threads={POOL}",
                   f"--rest_api_idle_timeout_s={TIMEOUT_S}",
                   "--rest_api_max_connections=3000",
                   f"--monitoring_config_file={tfs_data('monitoring_config.txt')}")
    server.url = server.serve_rest(port)
    server.rest_port = port
    server.metrics = server.url.replace("/v1/models", "/monitoring/prometheus/metrics")
    assert rest_call(f"{server.url}/default:predict", {"instances": [1.0]})[0] == 200
    server.before = usage(server.proc.pid)
    return server


def open_connections(server) -> float:
    return metric(server.metrics, "edgeseg_serving_open_connections", transport="rest")


def predict_ok(server) -> bool:
    return rest_call(f"{server.url}/default:predict", {"instances": [2.0, 4.0]}) == (
        200, {"predictions": [3.0, 4.0]})


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    return sock


def closed_by_server(sock: socket.socket, timeout: float) -> bytes:
    """What the server sent before closing (b"" for a bare close); fails if it did not."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def test_idle_connections_hold_no_threads_and_are_closed(server):
    socks = []
    try:
        for i in range(IDLE):
            socks.append(connect(server.rest_port))
            if i % 2:
                socks[-1].sendall(HALF_HEAD)  # half a request, then nothing
        # the metrics page answers on the loop thread while they are all open
        wait_until(lambda: open_connections(server) >= IDLE, 20, f"{IDLE} connections open")
        during = usage(server.proc.pid)
        assert during.threads <= server.before.threads + 2, (server.before, during)
        assert predict_ok(server)  # a well-behaved client still gets its answer
        ready = server.url.replace("/v1/models", "/v1/ready")
        assert rest_call(ready) == (200, {"ready": True})  # and so does readiness
        opened = time.monotonic()
        answers = [closed_by_server(s, TIMEOUT_S + 10) for s in socks]
        assert time.monotonic() - opened < TIMEOUT_S + 10
        assert all(a == b"" for a in answers[::2])  # idle: closed without a word
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers[1::2])  # partial: 408
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: open_connections(server) <= 1, 10, "connections released")
    assert metric(server.metrics, "edgeseg_serving_rejections_total", transport="rest",
                  reason="idle_timeout") >= IDLE // 2


def test_slow_senders_are_dropped_after_the_header_timeout(server):
    request = (b"POST /v1/models/default:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Type: application/json\r\nContent-Length: 20\r\n\r\n"
               b'{"instances": [1.0]}')
    before = metric(server.metrics, "edgeseg_serving_rejections_total", transport="rest",
                    reason="read_timeout")
    socks = [connect(server.rest_port) for _ in range(SLOW)]
    dropped_at: dict[int, float] = {}
    started = time.monotonic()
    stop = threading.Event()

    def drip() -> None:  # every sender, a byte a second
        for index in range(len(request)):
            for i, sock in enumerate(socks):
                if i not in dropped_at:
                    try:
                        sock.send(request[index:index + 1])
                    except OSError:
                        dropped_at.setdefault(i, time.monotonic() - started)
            if stop.wait(1.0) or len(dropped_at) == SLOW:
                return

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        wait_until(lambda: open_connections(server) >= SLOW, 10, "slow senders connected")
        assert usage(server.proc.pid).threads <= server.before.threads + 2
        answers = [closed_by_server(s, TIMEOUT_S + 10) for s in socks]
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        dripper.join()
        for s in socks:
            s.close()
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers[:3]
    assert json.loads(answers[0].split(b"\r\n\r\n", 1)[1])["error"].startswith(
        "the request did not arrive within 2 s")
    assert elapsed < TIMEOUT_S + 10
    wait_until(lambda: open_connections(server) <= 1, 10, "slots released")
    assert metric(server.metrics, "edgeseg_serving_rejections_total", transport="rest",
                  reason="read_timeout") - before == SLOW
    assert predict_ok(server)


def test_concurrent_clients_all_answered(server):
    results: list[bool] = []

    def client() -> None:
        for _ in range(5):
            results.append(predict_ok(server))

    threads = [threading.Thread(target=client) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 160
    assert metric(server.metrics, "edgeseg_serving_active_requests", transport="rest") == 0


def test_resources_return_after_the_load(server):
    wait_until(lambda: open_connections(server) <= 1, 10, "connections released")
    after = usage(server.proc.pid)
    before = server.before
    assert after.threads <= before.threads * 1.1, (before, after)
    assert after.fds <= before.fds * 1.1 + 2, (before, after)  # +2: a scrape's own socket
    assert after.rss_kb <= before.rss_kb * 1.1, (before, after)


@pytest.mark.parametrize("flag", ["--rest_api_idle_timeout_s=0", "--grpc_max_concurrent_rpcs=0",
                                  "--rest_api_num_threads=-1", "--rest_api_max_connections=0"])
def test_limits_out_of_range_are_clear_errors(flag):
    result = run_serve("--model_base_path=/nonexistent", flag)
    assert result.returncode == 2 and flag.split("=")[0] in result.stderr, result.stderr
