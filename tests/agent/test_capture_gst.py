"""GStreamer pipeline sources with the pip OpenCV wheel (built without GStreamer): frames
through PyGObject's appsink, and a clear refusal when neither path exists (issue 14)."""

from __future__ import annotations

import subprocess
import sys
import threading

import cv2
import pytest

from edgeseg.agent import gst
from edgeseg.agent.capture import Capture
from edgeseg.agent.config import SourceConfig
from edgeseg.agent.queues import DropOldestQueue
from edgeseg.errors import FailedPrecondition

from .conftest import REPO, wait_until

PIPELINE = "videotestsrc num-buffers=100 ! videoconvert ! appsink"
# a GStreamer run without the gi module, as on a machine without python3-gi
NO_GI = "import sys; sys.modules['gi'] = None; from edgeseg.cli import main; sys.exit(main())"


def gi_or_skip():
    gst_mod, why = gst._bindings()
    if gst_mod is None:
        pytest.skip(f"GStreamer's Python bindings are missing ({why}): make system-deps venv-gi")


def test_the_pip_wheel_has_no_gstreamer_so_pygobject_reads_pipelines():
    gi_or_skip()
    if gst.opencv_has_gstreamer():
        pytest.skip("this OpenCV has GStreamer: the PyGObject path is not used")
    assert gst.check_pipeline(PIPELINE) == "pygobject"


@pytest.mark.parametrize("caps, bgr", [
    ("video/x-raw,format=RGB,width=130,height=97", (0, 0, 255)),  # 390-byte rows, padded
    ("video/x-raw,format=BGRx,width=64,height=48", (0, 0, 255)),
    ("video/x-raw,format=GRAY8,width=64,height=48", (80, 80, 80)),  # red's luma
])
def test_frames_arrive_as_bgr_arrays_of_the_pipelines_size(caps, bgr):
    gi_or_skip()
    out = DropOldestQueue(100)
    stop = threading.Event()
    cap = Capture(SourceConfig(uri=f"videotestsrc pattern=red num-buffers=5 ! videoconvert ! "
                               f"{caps} ! appsink"), out, stop)
    cap.start()
    frame = wait_until(lambda: out.get(0.2), 10, what="a frame")
    stop.set()
    cap.join(3)
    width, height = (int(x.split("=")[1]) for x in caps.split(",")[2:])
    assert frame.image.shape == (height, width, 3) and frame.image.dtype == "uint8"
    assert tuple(int(v) for v in frame.image[height // 2, width // 2]) == pytest.approx(bgr, abs=6)


def test_an_unknown_element_is_named():
    gi_or_skip()
    with pytest.raises(FailedPrecondition, match='no element "nosuchcamsrc"'):
        gst.check_pipeline("nosuchcamsrc ! appsink")
    with pytest.raises(FailedPrecondition, match="has no appsink"):
        gst.check_pipeline("videotestsrc ! fakesink")


def run_agent(*args, no_gi=False):
    argv = [sys.executable, "-c", NO_GI] if no_gi else [sys.executable, "-m", "edgeseg"]
    return subprocess.run([*argv, "agent", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


@pytest.mark.skipif(gst.opencv_has_gstreamer(), reason="this OpenCV reads pipelines itself")
def test_without_any_gstreamer_the_agent_says_what_to_install(tmp_path):
    for args in (["--validate-config"], ["--max-frames", "1"]):
        out = run_agent("--source", PIPELINE, *args, no_gi=True)
        assert out.returncode != 0, out.stdout
        assert "config OK" not in out.stdout
        line = out.stderr.strip().splitlines()[-1]
        assert f"cv2 {cv2.__version__} is built without GStreamer" in line, out.stderr
        assert "python3-gi gir1.2-gstreamer-1.0" in line and "JetPack" in line
        assert "retrying" not in out.stderr  # told once, not retried forever


def test_validate_config_names_the_backend():
    gi_or_skip()
    out = run_agent("--source", PIPELINE, "--validate-config")
    assert out.returncode == 0, out.stderr
    backend = "gstreamer-opencv" if gst.opencv_has_gstreamer() else "gstreamer-pygobject"
    assert f"({backend})" in out.stdout
    out = run_agent("--source", "videotestsrc ! nosuchconvert ! appsink", "--validate-config")
    assert out.returncode != 0 and 'no element "nosuchconvert"' in out.stderr


def test_a_videotestsrc_pipeline_publishes_masks(mosquitto, fake_server, agent_factory,
                                                 recorder_factory):
    gi_or_skip()
    rec = recorder_factory(mosquitto.port, "edgeseg/dev/gst/#")
    agent = agent_factory("--source", PIPELINE, "--server", fake_server.address, "--mqtt",
                          mosquitto.address, "--device-id", "dev", "--camera", "gst",
                          "--max-frames", "10")
    assert agent.proc.wait(60) == 0, agent.text()
    wait_until(lambda: len(rec.of("mask")) >= 10, 10, what="10 masks")
    meta = rec.metas()[-1]
    assert (meta["width"], meta["height"]) == (320, 240)  # videotestsrc's default size
    assert "(gstreamer-pygobject)" in agent.text() or gst.opencv_has_gstreamer()


def test_without_bindings_capture_refuses_at_once(monkeypatch):
    monkeypatch.setattr(gst, "_bindings", lambda: (None, "No module named 'gi'"))
    monkeypatch.setattr(gst, "opencv_has_gstreamer", lambda: False)
    with pytest.raises(FailedPrecondition, match="sudo apt-get install python3-gi"):
        Capture(SourceConfig(uri=PIPELINE), DropOldestQueue(1), threading.Event())
