import logging
import re
import socket
import threading
import time

import cv2
import pytest

from edgeseg.agent.capture import Capture, parse_source
from edgeseg.agent.config import SourceConfig
from edgeseg.agent.metrics import AgentMetrics
from edgeseg.agent.queues import Closed, DropOldestQueue
from edgeseg.agent.sources import SourceUnavailable, probe, redact
from edgeseg.errors import InvalidArgument

from .conftest import free_port, synthetic_frames, wait_until, write_clip


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
    ("csi://1", "gstreamer", "nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM),"
     "width=1920,height=1080,framerate=30/1 ! nvvidconv ! video/x-raw,format=BGRx ! "
     "videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1",
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
    cap = Capture(SourceConfig(uri=str(clip), pace=40), out, stop, AgentMetrics())
    started = time.monotonic()
    cap.start()
    frames = drain(out)
    elapsed = time.monotonic() - started
    assert [f.id for f in frames] == list(range(12))
    assert frames[0].image.shape == (96, 128, 3)
    assert elapsed >= 11 / 40 * 0.9  # played at the pace, not as fast as decoding
    assert cap.ended.is_set()
    gaps = [b.captured_mono - a.captured_mono for a, b in zip(frames, frames[1:], strict=False)]
    assert min(gaps) > 0.015


def test_loop_restarts_the_file(tmp_path):
    clip = write_clip(tmp_path / "c.avi", synthetic_frames(5))
    out = DropOldestQueue(100)
    stop = threading.Event()
    cap = Capture(SourceConfig(uri=str(clip), loop=True, pace=200), out, stop)
    cap.start()
    wait_until(lambda: len(out) > 10, 10, what="the 5-frame file played more than twice")
    stop.set()
    frames = drain(out)
    assert len(frames) > 10 and not cap.ended.is_set()


def test_slow_consumer_gets_the_newest_frame_and_drops_are_counted(tmp_path):
    clip = write_clip(tmp_path / "c.avi", synthetic_frames(30))
    metrics = AgentMetrics()
    overwritten = []
    out = DropOldestQueue(1, on_drop=overwritten.append)
    cap = Capture(SourceConfig(uri=str(clip), pace=100), out, threading.Event(), metrics)
    cap.start()
    wait_until(lambda: overwritten, 5, what="a frame replaced before the consumer takes one")
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
        time.sleep(1.5)  # a known span: the attempts made in it are the backoff under test
        stop.set()
        cap.join(2)
    attempts = metrics.source_reconnects.value
    # 0.05, 0.1, 0.2, 0.4, 0.4 ... (jittered down to half): a handful, not thousands
    assert 3 <= attempts <= 20, attempts
    assert states == [False]
    lines = [r.getMessage() for r in caplog.records]
    # one line for the whole outage, naming the cause; the attempts are at DEBUG
    assert len(lines) == 1, lines
    assert f"cannot open source '{cfg.uri}'; retrying in" in lines[0]
    assert lines[0].endswith(f"{cfg.uri}: no such file")
    assert not cap._thread.is_alive()


def test_stop_interrupts_a_long_backoff(tmp_path):
    stop = threading.Event()
    cfg = SourceConfig(uri=str(tmp_path / "nope.avi"), backoff_initial_s=30, backoff_max_s=30)
    states: list[bool] = []
    cap = Capture(cfg, DropOldestQueue(1), stop, on_state=states.append)
    cap.start()
    wait_until(lambda: states == [False], 5, what="the first failed open (the backoff begins)")
    t = time.monotonic()
    stop.set()
    cap.join(5)
    assert time.monotonic() - t < 1.0


class FakeCamera:
    """A live camera stand-in (a unit-test fake; the real RTSP and MJPEG cameras are in
    test_rtsp_camera.py): frames at `rate` Hz, gone after `frames` of them; with `hang`,
    its last grab blocks until `unhang` is set instead of failing (a SIGSTOPped camera)."""

    def __init__(self, frames: int, rate: float = 200.0, hang: bool = False) -> None:
        self.left, self.rate, self.hang = frames, rate, hang
        self.grabs = self.retrieves = 0
        self.released = threading.Event()
        self.unhang = threading.Event()

    def grab(self) -> bool:
        time.sleep(1 / self.rate)
        self.grabs += 1
        self.left -= 1
        if self.left < 0 and self.hang:
            self.unhang.wait(30)
        return self.left >= 0

    def retrieve(self):
        import numpy as np

        self.retrieves += 1
        return True, np.zeros((4, 4, 3), np.uint8)

    def get(self, _prop) -> float:
        return 0.0

    def release(self) -> None:
        self.released.set()


def fake_capture(monkeypatch, cameras, **cfg):
    """A Capture of /dev/video7 whose opens return `cameras` in turn, then fail."""
    from edgeseg.agent import capture as capture_mod

    opened = []

    def fake_open(spec, _cfg):
        opened.append(time.monotonic())
        if len(opened) > len(cameras):
            raise SourceUnavailable("Connection refused")
        return cameras[len(opened) - 1]

    monkeypatch.setattr(capture_mod, "probe", lambda spec, timeout: None)
    monkeypatch.setattr(capture_mod, "diagnose", lambda spec, timeout: None)
    states, stop = [], threading.Event()
    out = DropOldestQueue(1000)

    def on_state(up):
        states.append(up)
        on_state.at.append(time.monotonic())

    on_state.at = []
    cap = Capture(SourceConfig(uri="/dev/video7", **cfg), out, stop, AgentMetrics(),
                  on_state=on_state)
    cap.state_times = on_state.at
    cap.opener = fake_open
    return cap, opened, states, stop, out


def test_live_camera_is_drained_but_only_capped_frames_are_decoded(monkeypatch):
    cameras = [FakeCamera(100), FakeCamera(100)]
    cap, opened, states, stop, _out = fake_capture(
        monkeypatch, cameras, max_fps=20, backoff_initial_s=0.05, backoff_max_s=0.1)
    cap.start()
    wait_until(lambda: len(opened) >= 3, 10, what="three opens")
    stop.set()
    cap.join(2)
    first = cameras[0]
    assert first.grabs == 101  # every frame taken out of the driver's buffer …
    assert 5 <= first.retrieves <= 15  # … but only ~20 fps of 200 decoded and handed on
    assert states[:3] == [True, False, True]  # status offline while it was gone


def test_a_hung_camera_is_noticed_within_read_timeout(monkeypatch, caplog):
    hung = FakeCamera(20, rate=100, hang=True)
    cap, opened, states, stop, _out = fake_capture(
        monkeypatch, [hung, FakeCamera(10_000, rate=100)], read_timeout_s=0.5,
        backoff_initial_s=0.05, backoff_max_s=0.1)
    with caplog.at_level(logging.INFO, "edgeseg.agent.capture"):
        cap.start()
        wait_until(lambda: hung.left < 0, 5, what="the camera to hang")
        hung_at = time.monotonic()
        wait_until(lambda: states[:3] == [True, False, True], 5, what="the second camera")
        noticed = cap.state_times[1] - hung_at
        stop.set()
        cap.join(2)
    assert noticed <= 0.5 + 0.3, noticed  # read_timeout_s plus one poll
    lost = [r.getMessage() for r in caplog.records if " lost: " in r.getMessage()]
    assert len(lost) == 1 and "no frame for 0.5 s (read_timeout_s): the camera hangs" in lost[0]
    assert not hung.released.is_set()
    hung.unhang.set()  # the SIGSTOPped camera continues: the given-up reader releases it
    wait_until(hung.released.is_set, 2, what="the hung capture released")


def test_an_outage_is_one_line_at_its_start_and_one_at_its_end(monkeypatch, caplog):
    cameras = [FakeCamera(30, rate=100), FakeCamera(10_000, rate=100)]
    cap, _opened, states, stop, _out = fake_capture(
        monkeypatch, cameras, backoff_initial_s=0.05, backoff_max_s=0.1)
    calls, refused_until = [], []

    def opener(spec, cfg):  # camera 1; then refused for 0.6 s; then camera 2
        calls.append(time.monotonic())
        if len(calls) == 1:
            return cameras[0]
        if not refused_until:
            refused_until.append(time.monotonic() + 0.6)
        if time.monotonic() < refused_until[0]:
            raise SourceUnavailable("127.0.0.1:8554: Connection refused")
        return cameras[1]

    cap.opener = opener
    with caplog.at_level(logging.INFO, "edgeseg.agent.capture"):
        cap.start()
        wait_until(lambda: states == [True, False, True], 10, what="the camera back")
        stop.set()
        cap.join(2)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 2, lines
    assert "lost: the stream ended; reconnecting" in lines[0]
    back = re.search(r"back after a ([\d.]+) s outage \((\d+) reconnect attempt\(s\), "
                     r"~(\d+) frames lost at ([\d.]+) fps; "
                     r"last failure: 127.0.0.1:8554: Connection refused\)", lines[1])
    assert back, lines[1]
    took, attempts, lost, rate = (float(x) for x in back.groups())
    assert 0.5 <= took <= 3 and attempts >= 2 and 40 <= rate <= 110
    assert lost == pytest.approx(took * rate, rel=0.1)  # the line rounds took and rate


def test_fps_is_a_deprecated_alias_with_one_meaning_per_kind(tmp_path, caplog):
    clip = write_clip(tmp_path / "c.avi", synthetic_frames(3))
    with caplog.at_level(logging.WARNING, "edgeseg.agent.capture"):
        on_file = Capture(SourceConfig(uri=str(clip), fps=7), DropOldestQueue(1),
                          threading.Event())
        live = Capture(SourceConfig(uri="rtsp://127.0.0.1:9/x", fps=7), DropOldestQueue(1),
                       threading.Event())
    assert (on_file.pace, on_file.max_fps) == (7, None)
    assert (live.pace, live.max_fps) == (None, 7)
    assert "deprecated: it means pace (the playback rate) here" in caplog.text
    assert "deprecated: it means max_fps (a cap) here" in caplog.text


def test_pace_is_refused_for_a_live_source():
    with pytest.raises(InvalidArgument, match="source.pace: only a video file can be paced"):
        Capture(SourceConfig(uri="rtsp://u:secret@cam/x", pace=5), DropOldestQueue(1),
                threading.Event())


def test_a_file_played_at_its_pace_and_capped_by_max_fps(tmp_path):
    clip = write_clip(tmp_path / "c.avi", synthetic_frames(40))
    out = DropOldestQueue(100)
    cap = Capture(SourceConfig(uri=str(clip), pace=100, max_fps=25), out, threading.Event())
    cap.start()
    frames = drain(out)
    # 40 frames at 100 fps take ~0.4 s, of which a 25-fps cap hands on ~10
    assert 8 <= len(frames) <= 13, len(frames)


def test_probe_names_the_real_cause():
    port = free_port()  # nothing listens there
    why = probe(parse_source(f"rtsp://127.0.0.1:{port}/cam"), 1.0)
    assert why == f"127.0.0.1:{port}: Connection refused"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert probe(parse_source(f"http://127.0.0.1:{listener.getsockname()[1]}/"), 1) is None
    assert probe(parse_source("/nonexistent/clip.mp4"), 1) == "/nonexistent/clip.mp4: no such file"


def test_redact_hides_a_password_in_log_lines():
    assert redact("rtsp://admin:s3cret@cam:554/x") == "rtsp://admin:***@cam:554/x"
    assert redact("rtsp://cam/x") == "rtsp://cam/x"


@pytest.mark.parametrize("uri", ["csi://x", "csi://0/path", "csi://0?width=0", "csi://0?gain=2"])
def test_bad_csi_shorthand_is_refused(uri):
    with pytest.raises(InvalidArgument, match="csi://"):
        parse_source(uri)


def test_csi_shorthand_takes_size_and_rate():
    spec = parse_source("csi://0?width=1280&height=720&fps=60")
    assert "sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=60/1" \
        in spec.target


def test_capture_flags_reach_the_source_config():
    from edgeseg.agent.command import build_parser, load_config

    args = build_parser().parse_args([
        "--source", "rtsp://cam/x", "--max-fps", "12", "--read-timeout", "2.5",
        "--open-timeout", "4", "--source-backoff-initial", "0.1", "--source-backoff-max", "3"])
    src = load_config(args).source
    assert (src.max_fps, src.read_timeout_s, src.open_timeout_s) == (12, 2.5, 4)
    assert (src.backoff_initial_s, src.backoff_max_s) == (0.1, 3)
    args = build_parser().parse_args(["--source", "a.mp4", "--pace", "7"])
    assert load_config(args).source.pace == 7


@pytest.mark.parametrize("fields, message", [
    ({"fps": 5, "pace": 5}, "fps is deprecated: give pace and/or max_fps instead"),
    ({"backoff_initial_s": 2, "backoff_max_s": 1}, "must not exceed backoff_max_s"),
    ({"max_fps": 0}, "greater than 0"),
])
def test_bad_source_settings_name_the_key(fields, message):
    from edgeseg.agent.config import load

    with pytest.raises(InvalidArgument, match=message):
        load(None, {"source.uri": "0", **{f"source.{k}": v for k, v in fields.items()}})


def test_recovery_defaults_are_low():
    cfg = SourceConfig(uri="rtsp://cam/x")
    assert cfg.backoff_max_s <= 1.0 and cfg.backoff_initial_s <= 0.25


def test_opencv_and_ffmpeg_speak_only_at_debug(agent_factory):
    port = free_port()  # nothing listens: every open is refused
    quiet = agent_factory("--source", f"http://127.0.0.1:{port}/cam.mjpg", "--mqtt",
                          f"127.0.0.1:{free_port()}")
    loud = agent_factory("--source", f"http://127.0.0.1:{port}/cam.mjpg", "--mqtt",
                         f"127.0.0.1:{free_port()}", "--log-level", "DEBUG")
    wait_until(lambda: loud.text().count("still unavailable") >= 2, 30, what="retries")
    wait_until(lambda: "cannot open source" in quiet.text(), 10, what="the first line")
    ffmpeg_says = f"Connection to tcp://127.0.0.1:{port} failed"
    assert ffmpeg_says in loud.text()  # FFmpeg's own line, at DEBUG
    assert f"127.0.0.1:{port}: Connection refused" in quiet.text()  # the cause, in ours
    wait_until(lambda: loud.text().count("still unavailable") >= 4, 30, what="more retries")
    assert ffmpeg_says not in quiet.text() and "VIDEOIO" not in quiet.text()
    assert quiet.text().count("edgeseg.agent.capture") == 1  # one line for the outage


def test_quiet_opencv_works_with_opencv_wheels_before_cv2_utils_logging(monkeypatch):
    """opencv-python-headless 4.11 (what numpy-1 stacks such as TF 2.17 resolve) has no
    cv2.utils.logging, only cv2.setLogLevel(int)."""
    import types

    import cv2

    from edgeseg.agent import sources

    levels = []
    monkeypatch.setattr(cv2, "utils", types.SimpleNamespace(), raising=False)
    monkeypatch.setattr(cv2, "setLogLevel", levels.append, raising=False)
    monkeypatch.delenv("OPENCV_FFMPEG_LOGLEVEL", raising=False)
    sources.quiet_opencv(False)
    sources.quiet_opencv(True)
    assert levels == [0, 5]  # silent, then debug
