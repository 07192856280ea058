"""``edgeseg demo --frames N`` end to end, as a user runs it, watched by a plain subscriber."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edgeseg import mqtt_contract as contract
from edgeseg.democlip import frames
from tests.services import free_port, wait_until

REPO = Path(__file__).resolve().parents[1]


def test_demo_clip_moves_like_a_camera():
    import numpy as np

    from exporters.deeplab import synthetic_image

    photo = synthetic_image(300, 400)
    clip = frames([photo, photo[::-1]], 50, size=(120, 160), per_photo=20, fade=4)
    assert len(clip) == 50 and clip[0].shape == (120, 160, 3)
    steps = [np.abs(a.astype(int) - b.astype(int)).mean()
             for a, b in zip(clip[:-1], clip[1:], strict=True)]
    assert min(steps) > 0.05          # always moving
    assert max(steps[:15]) < 12        # smoothly, not jumping


def test_demo_frames_50_reach_a_plain_subscriber(tmp_path, mosquitto, recorder_factory):
    recorder = recorder_factory(mosquitto.port, "edgeseg/demo/cam0/#")
    preview_port = free_port()
    run = subprocess.run(
        [sys.executable, "-m", "edgeseg", "demo", "--workdir", str(tmp_path / "demo"),
         "--frames", "50", "--builtin", "--input-size", "97", "--mqtt", mosquitto.address,
         "--grpc-port", str(free_port()), "--preview-port", str(preview_port)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"live preview:   http://127.0.0.1:{preview_port}/" in run.stdout
    assert "RANDOM weights" in run.stderr  # said plainly
    wait_until(lambda: len(recorder.of("mask")) >= 50, 10, what="50 masks")
    mask_messages = recorder.of("mask")
    assert len(mask_messages) == 50
    class_map = contract.decode_mask(mask_messages[-1]["payload"])
    assert class_map.shape == (480, 640)  # the demo clip's frame size
    wait_until(lambda: recorder.statuses()[-1:] == ["offline"], 10, what="offline")


def test_first_demo_fetches_the_real_model_and_shows_real_classes(
        tmp_path, shared_models, mosquitto, recorder_factory):
    """An empty cache, no test-data folder: the demo fetches the pinned VOC model itself
    (here from a file:// mirror named by $EDGESEG_MODELS_URL), checks it, exports it, and
    the masks of the shipped photos name real VOC classes."""
    import shutil

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(shared_models / "deeplab/deeplabv3_mnv2_pascal_quant.tflite", mirror)
    cache = tmp_path / "cache"
    recorder = recorder_factory(mosquitto.port, "edgeseg/demo/cam0/#")
    run = subprocess.run(
        [sys.executable, "-m", "edgeseg", "demo", "--workdir", str(tmp_path / "demo"),
         "--frames", "12", "--fps", "4", "--mqtt", mosquitto.address,
         "--grpc-port", str(free_port()), "--preview-port", str(free_port())],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "XDG_CACHE_HOME": str(cache),
             "EDGESEG_SHARED": str(tmp_path / "no-shared"),
             "EDGESEG_MODELS_URL": mirror.as_uri()})
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"fetching it from {mirror.as_uri()}/deeplabv3_mnv2_pascal_quant.tflite" in run.stderr
    cached = cache / "edgeseg/models/deeplabv3_mnv2_pascal_quant.tflite"
    assert cached.read_bytes() == (mirror / cached.name).read_bytes()
    assert "exporting the real PASCAL VOC DeepLab-v3" in run.stderr
    assert "RANDOM weights" not in run.stderr
    wait_until(lambda: len(recorder.of("meta")) >= 12, 10, what="12 meta messages")
    names = {c["name"] for meta in recorder.metas() for c in meta["classes"]}
    assert names & {"person", "cat"}, names  # the astronaut, Grace Hopper, Chelsea


def test_offline_demo_says_what_it_would_fetch_in_one_line(tmp_path, monkeypatch, capsys):
    from edgeseg import demo
    from edgeseg.progress import Progress

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGESEG_SHARED", str(tmp_path / "no-shared"))
    monkeypatch.setenv("EDGESEG_MODELS_URL", (tmp_path / "nowhere").as_uri())
    assert demo.find_real_model(Progress(prefix="demo")) is None
    said = [line for line in capsys.readouterr().err.splitlines() if "could not fetch" in line]
    assert len(said) == 1
    assert "edgeseg models fetch deeplabv3-mnv2-voc --from FILE" in said[0]
    assert "350af47fd346" in said[0]  # the pin it would have checked
