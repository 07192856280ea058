"""``edgeseg demo --frames N`` end to end, as a user runs it, watched by a plain subscriber."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edgeseg import masks
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
    class_map = masks.decode_mask(mask_messages[-1]["payload"])
    assert class_map.shape == (480, 640)  # the demo clip's frame size
    wait_until(lambda: recorder.statuses()[-1:] == ["offline"], 10, what="offline")
