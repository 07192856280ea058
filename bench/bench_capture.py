"""Camera recovery benchmark: after an RTSP camera is down for --outage seconds, how long
until the capture hands on frames again, and how long a hung camera (SIGSTOP) goes
unnoticed — with the old defaults (backoff 0.5 s doubling to 30 s) beside the new ones
(0.25 s to 1 s, a TCP probe between opens), alternating runs on one camera.

    .venv/bin/python bench/bench_capture.py [--outage 8] [--runs 3] [--read-timeout 5]

The camera is GStreamer's RTSP server (tests/agent/cameras.py, H.264 128x96 at 20 fps);
needs python3-gi, gir1.2-gst-rtsp-server-1.0 and gstreamer1.0-plugins-ugly.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import table  # noqa: E402
from edgeseg.agent.capture import Capture  # noqa: E402
from edgeseg.agent.config import SourceConfig  # noqa: E402
from edgeseg.agent.queues import DropOldestQueue  # noqa: E402
from tests.agent.cameras import RtspCamera, gst_rtsp_missing  # noqa: E402

SETTINGS = {"old backoff (0.5 s doubling to 30 s)": (0.5, 30.0),
            "new backoff (0.25 s doubling to 1 s)": (0.25, 1.0)}


class Watch:
    """A capture with its frame times and state changes."""

    def __init__(self, url: str, initial: float, cap: float, read_timeout: float) -> None:
        self.frames: list[float] = []
        self.down: list[float] = []
        self.stop = threading.Event()
        out = DropOldestQueue(1)
        self.capture = Capture(SourceConfig(uri=url, backoff_initial_s=initial,
                                            backoff_max_s=cap, read_timeout_s=read_timeout),
                               out, self.stop, on_state=self._state,
                               on_frame=lambda: self.frames.append(time.monotonic()))
        self.capture.start()

    def _state(self, up: bool) -> None:
        if not up:
            self.down.append(time.monotonic())

    def frame_after(self, t: float, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            later = [f for f in self.frames if f > t]
            if later:
                return later[0] - t
            time.sleep(0.01)
        return float("nan")

    def close(self) -> None:
        self.stop.set()
        self.capture.join(2)


def one_outage(camera: RtspCamera, watch: Watch, outage: float) -> tuple[float, float]:
    """(seconds from the camera's return to a frame, seconds a SIGSTOP went unnoticed)."""
    watch.frame_after(time.monotonic() - 0.5)
    camera.kill()
    time.sleep(outage)
    camera.start()
    back = watch.frame_after(time.monotonic())
    watch.frame_after(time.monotonic())
    stopped = time.monotonic()
    camera.pause()
    deadline = time.monotonic() + 60
    while not [d for d in watch.down if d > stopped] and time.monotonic() < deadline:
        time.sleep(0.01)
    noticed = min([d for d in watch.down if d > stopped], default=float("nan")) - stopped
    camera.resume()
    return back, noticed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outage", type=float, default=8.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--read-timeout", type=float, default=5.0)
    args = ap.parse_args()
    logging.getLogger("edgeseg.agent.capture").setLevel(logging.ERROR)  # the table only
    if why := gst_rtsp_missing():
        print(f"skipped: {why}")
        return 0
    results = {name: ([], []) for name in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        camera = RtspCamera(Path(tmp) / "camera.log")
        camera.start()
        try:
            for _ in range(args.runs):
                for name, (initial, cap) in SETTINGS.items():  # alternating: same noise
                    watch = Watch(camera.url, initial, cap, args.read_timeout)
                    try:
                        back, noticed = one_outage(camera, watch, args.outage)
                    finally:
                        watch.close()
                    results[name][0].append(back)
                    results[name][1].append(noticed)
        finally:
            camera.resume()
            camera.kill()
    rows = []
    base = statistics.median(results[next(iter(SETTINGS))][0])
    for name, (back, noticed) in results.items():
        rows.append([name, f"{statistics.median(back):.2f}", f"{max(back):.2f}",
                     f"{base / statistics.median(back):.1f}x",
                     f"{statistics.median(noticed):.2f}"])
    print(f"RTSP camera down {args.outage:g} s, then SIGSTOPped; read_timeout_s "
          f"{args.read_timeout:g}; {args.runs} runs each, alternating")
    print(table(["settings", "frames again after s (median)", "max", "speed-up",
                 "hang noticed after s (median)"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
