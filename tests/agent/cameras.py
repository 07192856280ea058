"""REAL network cameras for the agent's tests, as restartable child processes.

* :class:`RtspCamera`: GStreamer's own RTSP server (gst-rtsp-server through PyGObject,
  Debian's gir1.2-gst-rtsp-server-1.0) streaming live H.264 (x264enc) at
  rtsp://127.0.0.1:PORT/cam — run by this file as a script.
* :class:`MjpegCamera`: ffmpeg's HTTP server (``-f mpjpeg -listen 1``) streaming
  multipart JPEG at http://127.0.0.1:PORT/cam.mjpg. ``-listen 1`` serves one client and
  exits, so, like a camera that takes the next client, it is restarted after each.

Both bind to loopback on a fixed free port, so a test can kill (or SIGSTOP) them and
start them again where the agent expects them. Tests skip, naming the Debian packages,
when a part is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

if __name__ == "__main__":  # run as a script by RtspCamera: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.services import free_port, wait_port

RTSP_LAUNCH = ("( videotestsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},"
               "framerate={fps}/1 ! x264enc tune=zerolatency speed-preset=ultrafast "
               "key-int-max={fps} ! rtph264pay name=pay0 pt=96 )")


def gst_rtsp_missing() -> str | None:
    """Why GStreamer's RTSP server cannot run here, or None."""
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        from gi.repository import Gst, GstRtspServer  # noqa: F401
    except (ImportError, ValueError) as exc:
        return (f"GStreamer's RTSP server is not importable ({exc}): apt-get install "
                f"python3-gi gir1.2-gst-rtsp-server-1.0 and run `make venv-gi`")
    Gst.init(None)
    missing = [e for e in ("videotestsrc", "x264enc", "rtph264pay")
               if Gst.ElementFactory.find(e) is None]
    if missing:
        return f"GStreamer elements {missing} are missing (gstreamer1.0-plugins-ugly/-good)"
    return None


class _Child:
    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.proc: subprocess.Popen | None = None

    def _spawn(self, argv: list[str]) -> None:
        # a process group of its own: signals reach the camera and any child it runs
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """The camera is gone (power cut): every process of it killed at once."""
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(5)

    def pause(self) -> None:
        """SIGSTOP: the camera hangs with its sockets open."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)


class RtspCamera(_Child):
    def __init__(self, log: Path, size=(96, 128), fps: int = 20) -> None:
        super().__init__(log)
        self.size, self.fps = size, fps

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self) -> None:
        self._spawn([sys.executable, __file__, str(self.port), str(self.size[0]),
                     str(self.size[1]), str(self.fps)])
        wait_port(self.port, 20)


class MjpegCamera(_Child):
    """ffmpeg -listen 1 in a loop: each client gets a fresh ffmpeg, as from a camera."""

    def __init__(self, log: Path, size=(96, 128), fps: int = 20) -> None:
        super().__init__(log)
        self.size, self.fps = size, fps
        self.ffmpeg = shutil.which("ffmpeg")
        if self.ffmpeg is None:
            pytest.skip("ffmpeg is not installed (make system-deps installs Debian's)")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cam.mjpg"

    def start(self) -> None:
        h, w = self.size
        ffmpeg = (f"{self.ffmpeg} -hide_banner -loglevel error -re -f lavfi "
                  f"-i testsrc=size={w}x{h}:rate={self.fps} -f mpjpeg -q:v 5 "
                  f"-listen 1 {self.url}")
        self._spawn(["/bin/sh", "-c", f"while :; do {ffmpeg}; sleep 0.05; done"])
        wait_port_quietly(self.port)


def wait_port_quietly(port: int, timeout: float = 20.0) -> None:
    """Wait until something listens, without connecting (a connect would be ffmpeg's one
    client): /proc/net/tcp lists listening sockets (state 0A)."""
    deadline = time.monotonic() + timeout
    hexport = f":{port:04X}"
    while time.monotonic() < deadline:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            if any(line.split()[1].endswith(hexport) and line.split()[3] == "0A"
                   for line in lines):
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def _serve(port: str, height: str, width: str, fps: str) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(RTSP_LAUNCH.format(w=width, h=height, fps=fps))
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    server.attach(None)
    print(f"rtsp camera listening on rtsp://127.0.0.1:{port}/cam", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    _serve(*sys.argv[1:5])
