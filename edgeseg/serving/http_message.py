"""HTTP/1.1 messages for http_server.py: limits, a parsed request, an answer on the wire.

Contract: pure, no I/O. :func:`parse_head` turns a request head (request line and headers,
without the blank line) into a :class:`Request` without its body and whether the
connection stays open after the answer (HTTP/1.1 unless ``Connection: close``; HTTP/1.0
only with ``Connection: keep-alive``), or raises ``ValueError(status, why)`` (400 malformed,
411 Transfer-Encoding, which is not supported, 505 other than HTTP/1.0 and 1.1).
:func:`serialize` writes a :class:`Response` with Server, Date, Content-Type,
Content-Length and Connection headers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus


@dataclass(frozen=True)
class Limits:
    """What http_server.py holds to; each refusal is counted by reason (``on_reject``)."""

    num_threads: int  # workers calling the handler
    # A request head must be complete this long after the connection opened (TLS handshake
    # included) or after its previous answer: a silent connection is then closed
    # (idle_timeout), a slow sender gets 408 and is closed (read_timeout). While a body
    # arrives, every read that brings data restarts it.
    idle_timeout_s: float = 5.0
    max_connections: int = 4096  # over it: 503 at once (TLS: closed); max_connections
    # A longer body is not read: the handler gets body=None (it answers the refusal) and
    # the connection is closed after the answer.
    max_body_bytes: int = 4 * 1024 * 1024
    max_header_bytes: int = 64 * 1024  # a longer head: 431, closed (header_too_large)
    backlog: int = 1024


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    content_length: int | None
    body: bytes | None = None  # None: no Content-Length, or over max_body_bytes (not read)


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"


def json_response(status: int, payload: object, indent: int | None = 1) -> Response:
    """Indented as TF Serving's status and metadata JSON; ``indent=None``: one line, written
    by json's C encoder (an indent makes it use the pure-Python one, ~5x slower)."""
    return Response(status, json.dumps(payload, indent=indent).encode())


def serialize(response: Response, keep_alive: bool) -> bytes:
    try:
        reason = HTTPStatus(response.status).phrase
    except ValueError:
        reason = ""
    head = (f"HTTP/1.1 {response.status} {reason}\r\nServer: edgeseg-serve\r\n"
            f"Date: {formatdate(usegmt=True)}\r\nContent-Type: {response.content_type}\r\n"
            f"Content-Length: {len(response.body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n")
    return head.encode("latin-1") + response.body


def parse_head(head: bytes) -> tuple[Request, bool]:
    """(request without body, keep-alive?) from a request head; ValueError(status, why)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[2].startswith("HTTP/"):
        raise ValueError(400, f"malformed request line {lines[0][:80]!r}")
    method, path, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise ValueError(505, f"HTTP version {version[:20]!r} is not supported")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise ValueError(400, f"malformed header line {line[:80]!r}")
        name = name.lower()
        headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
    if "transfer-encoding" in headers:
        raise ValueError(411, "Transfer-Encoding is not supported: send a Content-Length")
    length = None
    if "content-length" in headers:
        if not headers["content-length"].isdigit():
            raise ValueError(400, f"bad Content-Length {headers['content-length'][:40]!r}")
        length = int(headers["content-length"])
    connection = headers.get("connection", "").lower()
    keep_alive = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
    return Request(method, path, headers, length), keep_alive


