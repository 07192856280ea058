import logging
import threading
import time

import cv2
import pytest

from edgeseg.agent.capture import Capture, parse_source
from edgeseg.agent.config import SourceConfig
from edgeseg.agent.metrics import AgentMetrics
from edgeseg.agent.queues import Closed, DropOldestQueue

from .conftest import synthetic_frames, write_clip


@pytest.mark.parametrize("uri, kind, target, api, live", [
    ("0", "device", 0, cv2.CAP_V4L2, True),
    (" 2 ", "device", 2, cv2.CAP_V4L2, True),
    ("/dev/video3", "device", "/dev/video3", cv2.CAP_V4L2, True),
    ("rtsp://cam.local:554/stream1", "stream", "rtsp://cam.local:554/stream1",
     cv2.CAP_FFMPEG, True),
    ("HTTP://cam/mjpg", "stream", "HTTP://cam/mjpg", cv2.CAP_FFMPEG, True),
    ("nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280 ! nvvidconv ! appsink",
     "gstreamer", "nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280 ! nvvidconv ! appsink",
     cv2.CAP_GSTREAMER, True),
    ("clips/door.mp4", "file", "clips/door.mp4", cv2.CAP_ANY, False),
    ("file:///data/a.avi", "file", "/data/a.avi", cv2.CAP_ANY, False),
    ("/dev/videoX", "file", "/dev/videoX", cv2.CAP_ANY, False),
])
def test_parse_source(uri, kind, target, api, live):
    spec = parse_source(uri)
    assert (spec.kind, spec.target, spec.api, spec.live) == (kind, target, api, live)


def drain(queue, timeout=10.0):
    frames = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            frame = queue.get(0.2)
        except Closed:
            return frames
        if frame is not None:
            frames.append(frame)
    raise AssertionError("queue never closed")


def test_file_is_paced_like_a_camera_and_ends(tmp_path):
    clip = write_clip(tmp_path / "c.avi", synthetic_frames(12), fps=25)
    out = DropOldestQueue(100)
    stop = threading.Event()
    cap = Capture(SourceConfig(uri=str(clip), fps=40), out, stop, AgentMetrics())
    started = time.monotonic()
    cap.start()
    frames = drain(out)
    elapsed = time.monotonic() - started
    assert [f.id for f in frames] == list(range(12))
    assert frames[0].image.shape == (96, 128, 3)
    assert elapsed >= 11 / 40 * 0.9  # paced at the fps cap, not as fast as decoding
    assert cap.ended.is_set()
    gaps = [b.captured_mono - a.captured_mono for a, b in zip(frames, frames[1:], strict=False)]
    assert min(gaps) > 0.015


def test_loop_restarts_the_file(tmp_path):
    clip = write_clip(tmp_path / "c.avi", synthetic_frames(5))
    out = DropOldestQueue(100)
    stop = threading.Event()
    cap = Capture(SourceConfig(uri=str(clip), loop=True, fps=200), out, stop)
    cap.start()
    time.sleep(0.3)
    stop.set()
    frames = drain(out)
    assert len(frames) > 10 and not cap.ended.is_set()


def test_slow_consumer_gets_the_newest_frame_and_drops_are_counted(tmp_path):
    clip = write_clip(tmp_path / "c.avi", synthetic_frames(30))
    metrics = AgentMetrics()
    overwritten = []
    out = DropOldestQueue(1, on_drop=overwritten.append)
    cap = Capture(SourceConfig(uri=str(clip), fps=100), out, threading.Event(), metrics)
    cap.start()
    time.sleep(0.1)
    first = out.get(1)
    cap.join(5)
    last = drain(out)
    assert first.id > 0  # frames it could not take were replaced, not queued
    assert last[-1].id == 29
    assert metrics.frames_captured.value == 30
    assert len(overwritten) >= 30 - 1 - 2 - len(last)


def test_missing_source_backs_off_with_a_clear_log_line(tmp_path, caplog):
    metrics = AgentMetrics()
    states = []
    stop = threading.Event()
    cfg = SourceConfig(uri=str(tmp_path / "nope.avi"), backoff_initial_s=0.05, backoff_max_s=0.4)
    cap = Capture(cfg, DropOldestQueue(1), stop, metrics, on_state=states.append)
    with caplog.at_level(logging.WARNING, "edgeseg.agent.capture"):
        cap.start()
        time.sleep(1.5)
        stop.set()
        cap.join(2)
    attempts = metrics.source_reconnects.value
    # 0.05, 0.1, 0.2, 0.4, 0.4 ... (jittered down to half): a handful, not thousands
    assert 3 <= attempts <= 20, attempts
    assert states == [False]
    assert f"cannot open source '{cfg.uri}'; retrying in" in caplog.text
    assert not cap._thread.is_alive()


def test_stop_interrupts_a_long_backoff(tmp_path):
    stop = threading.Event()
    cfg = SourceConfig(uri=str(tmp_path / "nope.avi"), backoff_initial_s=30, backoff_max_s=30)
    cap = Capture(cfg, DropOldestQueue(1), stop)
    cap.start()
    time.sleep(0.2)
    t = time.monotonic()
    stop.set()
    cap.join(5)
    assert time.monotonic() - t < 1.0


class FakeCamera:
    """A live camera stand-in: frames at `rate` Hz, gone after `frames` of them."""

    def __init__(self, frames: int, rate: float = 200.0) -> None:
        self.left, self.rate = frames, rate
        self.grabs = self.retrieves = 0

    def grab(self) -> bool:
        time.sleep(1 / self.rate)
        self.grabs += 1
        self.left -= 1
        return self.left >= 0

    def retrieve(self):
        import numpy as np

        self.retrieves += 1
        return True, np.zeros((4, 4, 3), np.uint8)

    def get(self, _prop) -> float:
        return 0.0

    def release(self) -> None:
        pass


def test_live_camera_is_drained_but_only_capped_frames_are_decoded(monkeypatch):
    from edgeseg.agent import capture as capture_mod

    cameras = [FakeCamera(100), FakeCamera(100)]
    opened = []

    def fake_open(spec, cfg):
        opened.append(spec.target)
        return cameras[len(opened) - 1] if len(opened) <= len(cameras) else None

    monkeypatch.setattr(capture_mod, "open_capture", fake_open)
    states, stop = [], threading.Event()
    out = DropOldestQueue(1000)
    cfg = SourceConfig(uri="/dev/video7", fps=20, backoff_initial_s=0.05, backoff_max_s=0.1)
    cap = Capture(cfg, out, stop, AgentMetrics(), on_state=states.append)
    cap.start()
    wait = time.monotonic() + 10
    while len(opened) < 3 and time.monotonic() < wait:
        time.sleep(0.05)
    stop.set()
    cap.join(2)
    first = cameras[0]
    assert first.grabs == 101  # every frame taken out of the driver's buffer …
    assert 5 <= first.retrieves <= 15  # … but only ~20 fps of 200 decoded and handed on
    assert len(opened) >= 3  # camera gone -> reopened with backoff
    assert states[:3] == [True, False, True]  # status offline while it was gone
