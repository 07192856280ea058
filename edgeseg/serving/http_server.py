"""HTTP/1.1 transport of the REST API: one selector loop, a fixed pool of workers.

Contract: :class:`HttpServer` listens on host:port (backlog ``Limits.backlog``) and runs ONE
event-loop thread that accepts, does TLS handshakes and reads requests on non-blocking
sockets (``selectors``). A complete request (request line, headers, and a body of exactly
Content-Length bytes) is queued to a fixed pool of ``Limits.num_threads`` workers that call
``handler(request) -> Response``; the loop writes the answer back. The process's REST threads
are therefore 1 + num_threads, however many connections are open. Requests for which
``inline(request)`` is true (readiness, metrics: quick, never blocking) are answered on the
loop thread itself, so they answer while the pool is busy.

Limits (``Limits``, whose fields say what each one does) are counted by
``on_reject(reason)`` on the loop thread; besides them ``bad_request`` (400, 411 for
Transfer-Encoding, 505) and ``tls_handshake`` close the connection. Late connections are
closed ``EXPIRE_BATCH`` per loop turn, so a crowd that timed out together never holds up
answers.

One request per connection is in flight at a time (pipelined ones wait in the buffer);
keep-alive as http_message.py says. The handler runs on several threads at once and must be
thread-safe; its exceptions become a 500.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from edgeseg.serving.http_message import (
    Limits,
    Request,
    Response,
    json_response,
    parse_head,
    serialize,
)

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024
SCAN_INTERVAL_S = 0.25  # how often deadlines are checked
EXPIRE_BATCH = 16  # expired connections closed per loop turn at most, so answers are not
ACCEPT_BATCH = 16  # held up behind a crowd; likewise connections accepted per wake-up
_HANDSHAKE, _HEAD, _BODY, _BUSY, _WRITE = range(5)  # the reading states first
_WAKE = object()


@dataclass(eq=False, slots=True)  # eq=False: hashed by identity, kept in a set
class _Conn:
    sock: socket.socket
    peer: str
    state: int
    deadline: float
    buf: bytearray = field(default_factory=bytearray)
    request: Request | None = None
    need: int = 0
    out: bytes = b""
    sent: int = 0
    keep_alive: bool = True
    events: int = 0  # selector events registered for; 0: not registered


class HttpServer:
    """See the module's contract. ``stats()`` gives (open connections, running, queued)."""

    def __init__(self, handler: Callable[[Request], Response], host: str, port: int,
                 limits: Limits, context: ssl.SSLContext | None = None,
                 inline: Callable[[Request], bool] | None = None,
                 on_reject: Callable[[str], None] | None = None) -> None:
        self._handler, self._limits, self._context = handler, limits, context
        self._inline = inline or (lambda request: False)
        self._on_reject = on_reject or (lambda reason: None)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((host, port))
            self._listener.listen(limits.backlog)
        except OSError:
            self._listener.close()
            raise
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, None)
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self._conns: set[_Conn] = set()
        self._late: deque[_Conn] = deque()  # found past their deadline, closed a few a turn
        self._jobs: queue.SimpleQueue[_Conn | None] = queue.SimpleQueue()
        self._done: deque[tuple[_Conn, bytes]] = deque()
        self._lock = threading.Lock()
        self._queued = self._running = 0
        self._stopping = False
        self._paused_until = 0.0  # accepting paused after EMFILE
        self._loop = threading.Thread(target=self._run, name="rest-loop", daemon=True)
        self._workers = [threading.Thread(target=self._work, name=f"rest-{i}", daemon=True)
                         for i in range(limits.num_threads)]

    def start(self) -> None:
        for worker in self._workers:
            worker.start()
        self._loop.start()

    def stop(self) -> None:
        """Close the listener and every connection; running handlers' answers are dropped."""
        self._stopping = True
        self._wake()
        self._loop.join(5)
        for _ in self._workers:
            self._jobs.put(None)

    def stats(self) -> tuple[int, int, int]:
        with self._lock:
            return len(self._conns), self._running, self._queued

    def _run(self) -> None:
        next_scan = time.monotonic() + SCAN_INTERVAL_S
        try:
            while not self._stopping:
                for key, _ in self._sel.select(0 if self._late else SCAN_INTERVAL_S):
                    try:
                        self._on_event(key.data)
                    except Exception:  # a bug or an odd socket must not stop the loop
                        log.exception("REST: handling a socket event failed")
                        if isinstance(key.data, _Conn):
                            self._close(key.data)
                self._flush_done()
                now = time.monotonic()
                if now >= next_scan:
                    self._scan(now)
                    next_scan = now + SCAN_INTERVAL_S
                self._expire(now)
        finally:
            for conn in list(self._conns):
                self._close(conn)
            self._sel.close()
            for s in (self._listener, self._wake_r, self._wake_w):
                s.close()

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("REST: cannot accept (%s); pausing accepts for 1 s", exc.strerror)
                    self._on_reject("fd_limit")
                    self._sel.unregister(self._listener)
                    self._paused_until = time.monotonic() + 1.0
                return
            self._admit(sock, address[0])

    def _admit(self, sock: socket.socket, peer: str) -> None:
        sock.setblocking(False)
        if len(self._conns) >= self._limits.max_connections:
            self._on_reject("max_connections")
            if self._context is None:
                why = f"too many open connections (the limit is {self._limits.max_connections})"
                with contextlib.suppress(OSError):
                    sock.send(serialize(json_response(503, {"error": why}), keep_alive=False))
            sock.close()
            return
        with contextlib.suppress(OSError):  # a peer that is gone already: reading will tell
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = time.monotonic() + self._limits.idle_timeout_s
        if self._context is not None:
            sock = self._context.wrap_socket(sock, server_side=True,
                                             do_handshake_on_connect=False)
        conn = _Conn(sock, peer, _HANDSHAKE if self._context else _HEAD, deadline)
        with self._lock:
            self._conns.add(conn)
        if conn.state == _HANDSHAKE:
            self._handshake(conn)
        else:
            self._want(conn, selectors.EVENT_READ)

    def _on_event(self, data: _Conn | object | None) -> None:
        if data is None:
            self._accept()
        elif data is _WAKE:
            self._drain_wake()
        elif isinstance(data, _Conn) and data.sock is not None:
            {_HANDSHAKE: self._handshake, _HEAD: self._read, _BODY: self._read,
             _WRITE: self._write}.get(data.state, lambda conn: None)(data)

    def _handshake(self, conn: _Conn) -> None:
        try:
            conn.sock.do_handshake()  # type: ignore[attr-defined]
        except ssl.SSLWantReadError:
            self._want(conn, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._want(conn, selectors.EVENT_WRITE)
            return
        except OSError as exc:  # ssl.SSLError included: no or a wrong client certificate
            log.info("REST connection from %s dropped (TLS handshake failed: %s)",
                     conn.peer, exc)
            self._close(conn, "tls_handshake")
            return
        conn.state = _HEAD
        self._want(conn, selectors.EVENT_READ)
        self._read(conn)

    def _read(self, conn: _Conn) -> None:
        if conn.buf and self._parse(conn):
            return
        while True:
            try:
                data = conn.sock.recv(READ_CHUNK)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except OSError:
                self._close(conn)
                return
            if not data:  # the client closed
                self._close(conn)
                return
            conn.buf += data
            if conn.state == _BODY:
                conn.deadline = time.monotonic() + self._limits.idle_timeout_s
            if self._parse(conn):
                return

    def _parse(self, conn: _Conn) -> bool:
        """True when the connection left the reading states (dispatched or closed)."""
        if conn.state == _HEAD:
            end = conn.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(conn.buf) > self._limits.max_header_bytes:
                    self._fail(conn, 431, f"the request head is over "
                                          f"{self._limits.max_header_bytes} bytes",
                               "header_too_large")
                    return True
                return False
            head = bytes(conn.buf[:end]).lstrip(b"\r\n")
            del conn.buf[:end + 4]
            try:
                conn.request, conn.keep_alive = parse_head(head)
            except ValueError as exc:
                self._fail(conn, exc.args[0], exc.args[1], "bad_request")
                return True
            length = conn.request.content_length or 0
            if length > self._limits.max_body_bytes:
                conn.keep_alive = False  # the unread body would follow
                self._dispatch(conn)
                return True
            if length > len(conn.buf) and \
                    conn.request.headers.get("expect", "").lower() == "100-continue":
                with contextlib.suppress(OSError):  # curl waits a second for it otherwise
                    conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            conn.state, conn.need = _BODY, length
            conn.deadline = time.monotonic() + self._limits.idle_timeout_s
        if len(conn.buf) < conn.need:
            return False
        assert conn.request is not None
        conn.request.body = bytes(conn.buf[:conn.need])
        del conn.buf[:conn.need]
        self._dispatch(conn)
        return True

    def _dispatch(self, conn: _Conn) -> None:
        self._want(conn, 0)
        conn.state = _BUSY
        assert conn.request is not None
        if self._inline(conn.request):
            self._respond(conn, self._call(conn.request))
            return
        with self._lock:
            self._queued += 1
        self._jobs.put(conn)

    def _fail(self, conn: _Conn, status: int, why: str, reason: str) -> None:
        self._on_reject(reason)
        conn.keep_alive = False
        self._respond(conn, json_response(status, {"error": why}))

    def _respond(self, conn: _Conn, response: Response) -> None:
        conn.out, conn.sent, conn.state = serialize(response, conn.keep_alive), 0, _WRITE
        self._write(conn)

    def _write(self, conn: _Conn) -> None:
        while conn.sent < len(conn.out):
            try:
                conn.sent += conn.sock.send(memoryview(conn.out)[conn.sent:])
            except (BlockingIOError, ssl.SSLWantWriteError):
                self._want(conn, selectors.EVENT_WRITE)
                return
            except ssl.SSLWantReadError:
                self._want(conn, selectors.EVENT_READ)
                return
            except OSError:
                self._close(conn)
                return
        if not conn.keep_alive:
            self._close(conn)
            return
        conn.out, conn.request, conn.state = b"", None, _HEAD
        conn.deadline = time.monotonic() + self._limits.idle_timeout_s
        self._want(conn, selectors.EVENT_READ)
        self._read(conn)  # a pipelined request, or TLS data already decrypted

    def _want(self, conn: _Conn, events: int) -> None:
        if events == conn.events:
            return
        if conn.events == 0:
            self._sel.register(conn.sock, events, conn)
        elif events == 0:
            self._sel.unregister(conn.sock)
        else:
            self._sel.modify(conn.sock, events, conn)
        conn.events = events

    def _close(self, conn: _Conn, reason: str = "") -> None:
        if conn.sock is None:
            return
        if reason:
            self._on_reject(reason)
        self._want(conn, 0)
        with contextlib.suppress(OSError):
            conn.sock.close()
        conn.sock = None  # type: ignore[assignment]
        with self._lock:
            self._conns.discard(conn)

    def _scan(self, now: float) -> None:
        if self._paused_until and now >= self._paused_until:
            self._paused_until = 0.0
            self._sel.register(self._listener, selectors.EVENT_READ, None)
        self._late = deque(c for c in self._conns if c.deadline <= now and c.state <= _BODY)

    def _expire(self, now: float) -> None:
        """Close up to EXPIRE_BATCH of the connections the last scan found late (a crowd that
        opened together leaves in steps, between other events)."""
        for _ in range(min(EXPIRE_BATCH, len(self._late))):
            conn = self._late.popleft()
            if conn.sock is None or conn.deadline > now or conn.state > _BODY:
                continue  # closed, or active again, since the scan
            if conn.state == _HEAD and not conn.buf:
                self._close(conn, "idle_timeout")
                continue
            why = f"the request did not arrive within {self._limits.idle_timeout_s:g} s"
            with contextlib.suppress(OSError):  # best effort: a slow sender learns why
                conn.sock.send(serialize(json_response(408, {"error": why}), keep_alive=False))
            self._close(conn, "read_timeout")

    def _flush_done(self) -> None:
        while self._done:
            conn, data = self._done.popleft()
            if conn.sock is None:
                continue
            conn.out, conn.sent, conn.state = data, 0, _WRITE
            self._write(conn)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full: the loop is woken already
            self._wake_w.send(b"x")

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while self._wake_r.recv(4096):
                pass

    def _call(self, request: Request) -> Response:
        try:
            return self._handler(request)
        except Exception as exc:  # a bug in the handler: logged, answered 500
            log.exception("REST %s %s failed", request.method, request.path)
            return json_response(500, {"error": f"{type(exc).__name__}: {exc}"})

    def _work(self) -> None:
        while True:
            conn = self._jobs.get()
            if conn is None:
                return
            with self._lock:
                self._queued -= 1
                self._running += 1
            try:
                assert conn.request is not None
                data = serialize(self._call(conn.request), conn.keep_alive)
            finally:
                with self._lock:
                    self._running -= 1
            self._done.append((conn, data))
            self._wake()
