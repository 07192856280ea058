"""HTTP front of the preview (a thin adapter over :class:`PreviewHub`).

Routes: ``/`` the page; ``/stream.mjpg?opacity=`` an MJPEG stream
(multipart/x-mixed-replace) capped at the hub's ``max_fps``; ``/snapshot.jpg`` one JPEG
at the frame's size; ``/stats.json`` fps, latency and the legend; ``/metrics``
Prometheus text (encoded JPEGs, viewers). Binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from edgeseg.metrics import Counter, Gauge, Registry, exposition
from edgeseg.preview.hub import PreviewHub

log = logging.getLogger("edgeseg.preview")
BOUNDARY = "edgesegframe"


class PreviewServer:
    def __init__(self, hub: PreviewHub, host: str = "127.0.0.1", port: int = 8080,
                 title: str = "camera") -> None:
        self.hub = hub
        self.title = title
        self.registry = self._register()
        self._stopping = threading.Event()
        handler = type("Handler", (_Handler,), {"preview": self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="preview",
                                        daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/"

    def start(self) -> PreviewServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def page(self) -> bytes:
        html = resources.files("edgeseg.preview").joinpath("page.html").read_text("utf-8")
        return html.replace("__TITLE__", self.title).encode()

    def _register(self) -> Registry:
        """The preview's families, read from the hub at scrape time."""
        hub, registry = self.hub, Registry()
        registry.add(Counter("edgeseg_preview_jpeg_encoded_total",
                             "Overlay JPEGs encoded for viewers.",
                             collect=lambda: [((), hub.encoded_total)]))
        registry.add(Gauge("edgeseg_preview_viewers", "Open preview streams.",
                           collect=lambda: [((), hub.viewers)]))
        return registry


class _Handler(BaseHTTPRequestHandler):
    preview: PreviewServer
    server_version = "edgeseg-preview"

    def log_message(self, format: str, *args: object) -> None:  # stdlib name
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # stdlib name
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        try:
            opacity = float(query.get("opacity", ["0.5"])[0])
        except ValueError:
            self._send(HTTPStatus.BAD_REQUEST, b"opacity must be a number from 0 to 1\n",
                       "text/plain")
            return
        routes = {"/": self._page, "/index.html": self._page, "/stats.json": self._stats,
                  "/metrics": self._metrics}
        if url.path in routes:
            routes[url.path]()
        elif url.path == "/snapshot.jpg":
            self._snapshot(opacity)
        elif url.path == "/stream.mjpg":
            self._stream(opacity)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found; try / or /stream.mjpg\n",
                       "text/plain")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _page(self) -> None:
        self._send(HTTPStatus.OK, self.preview.page(), "text/html; charset=utf-8")

    def _stats(self) -> None:
        body = json.dumps(self.preview.hub.stats()).encode()
        self._send(HTTPStatus.OK, body, "application/json")

    def _metrics(self) -> None:
        self._send(HTTPStatus.OK, *exposition(self.preview.registry))

    def _snapshot(self, opacity: float) -> None:
        with self.preview.hub.viewer():
            frame = self.preview.hub.jpeg(opacity)
        if frame is None:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"no frame yet\n", "text/plain")
            return
        self._send(HTTPStatus.OK, frame[1], "image/jpeg")

    def _stream(self, opacity: float) -> None:
        hub = self.preview.hub
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        period = 1.0 / hub.max_fps if hub.max_fps > 0 else 0.0
        last_seq, last_sent = 0, 0.0
        with hub.viewer():
            while not self.preview._stopping.is_set():
                seq = hub.wait_next(last_seq, timeout=1.0)
                if seq == last_seq:
                    continue
                wait = period - (time.monotonic() - last_sent)
                if wait > 0:
                    time.sleep(wait)
                frame = hub.jpeg(opacity)
                if frame is None:
                    continue
                last_seq, data = frame
                part = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                        f"Content-Length: {len(data)}\r\n\r\n").encode() + data + b"\r\n"
                try:
                    self.wfile.write(part)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return
                last_sent = time.monotonic()
