"""An MJPEG-over-HTTP camera for the soak: a clip's frames, looped, at a fixed rate.

``python -m bench.mjpeg_camera --port P --clip demo.avi --fps 5`` serves
``http://127.0.0.1:P/stream.mjpg`` as ``multipart/x-mixed-replace`` (what IP cameras and
``ffmpeg -f mpjpeg`` send; OpenCV's FFmpeg backend reads it). Killing the process is a
camera going away; starting it again on the same port is the camera coming back. Every
client gets the frames from the moment it connects, as from a live camera.
"""

from __future__ import annotations

import argparse
import http.server
import socketserver
import sys
import time
from pathlib import Path

import cv2

BOUNDARY = "edgesegframe"


def load_jpegs(clip: Path, limit: int = 300) -> list[bytes]:
    capture = cv2.VideoCapture(str(clip))
    jpegs = []
    while len(jpegs) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        jpegs.append(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes())
    capture.release()
    if not jpegs:
        raise SystemExit(f"mjpeg_camera: no frames in {clip}")
    return jpegs


def handler_for(jpegs: list[bytes], fps: float) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/stream.mjpg":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace;boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            period, due, index = 1.0 / fps, time.monotonic(), 0
            try:
                while True:
                    jpeg = jpegs[index % len(jpegs)]
                    self.wfile.write(
                        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                        f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                    self.wfile.flush()
                    index += 1
                    due += period
                    time.sleep(max(0.0, due - time.monotonic()))
            except (BrokenPipeError, ConnectionResetError):
                return

        def log_message(self, *args: object) -> None:
            pass

    return Handler


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.mjpeg_camera", description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--clip", type=Path, required=True)
    p.add_argument("--fps", type=float, default=5.0)
    args = p.parse_args(argv)
    server = Server(("127.0.0.1", args.port), handler_for(load_jpegs(args.clip), args.fps))
    print(f"mjpeg_camera: http://127.0.0.1:{args.port}/stream.mjpg", file=sys.stderr,
          flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
