"""The REST transport (http_server.py, http_message.py) on its own: head parsing as a table,
then a real HttpServer on loopback with a small handler (the integration tests with the model
server are test_rest_api.py and test_load_rest.py)."""

from __future__ import annotations

import http.client
import socket
import ssl
import time

import pytest

from edgeseg.serving.http_message import Limits, Request, Response, parse_head
from edgeseg.serving.http_server import HttpServer


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"GET /a HTTP/1.1\r\nHost: x", ("GET", "/a", None, True)),
        (b"POST /p HTTP/1.1\r\nContent-Length: 12\r\nConnection: close", ("POST", "/p", 12, False)),
        (b"GET / HTTP/1.0", ("GET", "/", None, False)),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive", ("GET", "/", None, True)),
    ],
)
def test_heads(head, expected):
    request, keep_alive = parse_head(head)
    assert (request.method, request.path, request.content_length, keep_alive) == expected


@pytest.mark.parametrize(
    ("head", "status", "complaint"),
    [
        (b"GET /a", 400, "malformed request line"),
        (b"GET /a HTTP/1.1\r\nno colon here", 400, "malformed header line"),
        (b"GET /a HTTP/1.1\r\n folded: x", 400, "malformed header line"),
        (b"POST /a HTTP/1.1\r\nContent-Length: -3", 400, "bad Content-Length"),
        (b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked", 411, "send a Content-Length"),
        (b"GET /a HTTP/2.0", 505, "not supported"),
    ],
)
def test_bad_heads(head, status, complaint):
    with pytest.raises(ValueError) as err:
        parse_head(head)
    assert err.value.args[0] == status and complaint in err.value.args[1]


def echo(request: Request) -> Response:
    if request.path == "/sleep":
        time.sleep(0.3)
    body = b"-" if request.body is None else request.body
    return Response(200, request.path.encode() + b" " + body, "text/plain")


@pytest.fixture(scope="module")
def server():
    rejected: list[str] = []
    server = HttpServer(echo, "127.0.0.1", 0,
                        Limits(num_threads=2, idle_timeout_s=1.0, max_connections=4,
                               max_body_bytes=100, max_header_bytes=1024),
                        on_reject=rejected.append)
    server.rejected = rejected
    server.start()
    yield server
    server.stop()


def raw(server, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_keep_alive_and_bodies(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for body in (b"one", b"second"):
        connection.request("POST", "/x", body)
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"/x " + body)
        assert response.getheader("Connection") == "keep-alive"
    connection.close()


def test_pipelined_requests_answered_in_order(server):
    answer = raw(server, b"POST /a HTTP/1.1\r\nContent-Length: 1\r\n\r\nA"
                         b"GET /b HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.count(b"HTTP/1.1 200 OK") == 2
    assert answer.index(b"/a A") < answer.index(b"/b ") and answer.endswith(b"/b ")


def test_expect_100_continue(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /c HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hi")
        assert sock.recv(1000).endswith(b"/c hi")


def test_limits_answer_and_close(server):
    assert raw(server, b"GET / HTTP/1.1\r\nX: " + b"y" * 2000).startswith(b"HTTP/1.1 431 ")
    assert raw(server, b"BAD\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    over = raw(server, b"POST /big HTTP/1.1\r\nContent-Length: 101\r\n\r\n" + b"x" * 101)
    assert over.startswith(b"HTTP/1.1 200 ") and over.endswith(b"/big -")  # handler refuses
    assert b"Connection: close" in over
    assert "header_too_large" in server.rejected and "bad_request" in server.rejected


def test_past_max_connections_gets_503_while_the_pool_is_busy(server):
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(4)]
    try:
        held[0].sendall(b"GET /sleep HTTP/1.1\r\n\r\n")
        answer = raw(server, b"")
        assert answer.startswith(b"HTTP/1.1 503 ") and b"too many open connections" in answer
        assert held[0].recv(1000).endswith(b"/sleep ")  # the admitted ones are served
        assert "max_connections" in server.rejected
    finally:
        for sock in held:
            sock.close()


def test_idle_connection_closed_after_the_timeout(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert 0.5 < time.monotonic() - started < 5
    deadline = time.monotonic() + 5
    while server.stats()[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats() == (0, 0, 0)


def test_tls_handshakes_do_not_hold_up_the_loop(tmp_path):
    from .test_tls import make_pki

    pki = make_pki(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    server = HttpServer(echo, "127.0.0.1", 0, Limits(num_threads=1, idle_timeout_s=1.0), context)
    server.start()
    try:
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        partial = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        partial.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then nothing
        client = ssl.create_default_context(cadata=pki["ca.pem"].decode())
        connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=client,
                                                 timeout=10)
        connection.request("POST", "/t", b"x")
        assert connection.getresponse().read() == b"/t x"  # while two handshakes hang
        connection.close()
        for sock in (silent, partial):
            assert sock.recv(100) == b""  # dropped after the timeout
            sock.close()
    finally:
        server.stop()
