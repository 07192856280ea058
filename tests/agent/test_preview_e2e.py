"""The agent's live preview and published frames, with the real server and broker."""

from __future__ import annotations

import urllib.request

import cv2
import numpy as np

from .conftest import free_port, wait_until, write_clip
from .test_e2e import agent_args, clip_frames


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as reply:  # loopback
        return reply.read()


def preview_metric(port: int) -> float:
    for line in get(f"http://127.0.0.1:{port}/metrics").decode().splitlines():
        if line.startswith("edgeseg_preview_jpeg_encoded_total "):
            return float(line.split()[1])
    raise AssertionError("no edgeseg_preview_jpeg_encoded_total on the preview's /metrics")


def test_preview_encodes_only_for_viewers_and_frames_are_published(
        tmp_path, mosquitto, shared_real_server, agent_factory, recorder_factory):
    clip = write_clip(tmp_path / "clip.avi", clip_frames(40, (120, 160)), fps=20)
    rec = recorder_factory(mosquitto.port, "edgeseg/dev/cam/#")
    port = free_port()
    agent = agent_factory(*agent_args(shared_real_server, mosquitto, clip, "--loop",
                                      "--fps", "10", "--preview-port", str(port),
                                      "--publish-frames", "2"))
    try:
        wait_until(lambda: len(rec.of("mask")) >= 5, 60, what="masks published")
        # nobody watched yet: masks flow, no preview JPEG was encoded
        assert preview_metric(port) == 0
        snapshot = get(f"http://127.0.0.1:{port}/snapshot.jpg")
        image = cv2.imdecode(np.frombuffer(snapshot, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (120, 160, 3)
        assert preview_metric(port) >= 1
        assert b"edgeseg preview" in get(f"http://127.0.0.1:{port}/")
        frames = rec.of("frame")
        assert frames, "no JPEG frames on <prefix>/frame"
        first = frames[0]
        assert first["payload"][:2] == b"\xff\xd8"
        assert len(frames) < len(rec.of("mask"))  # low rate: 2 per second against ~10 masks
    finally:
        agent.proc.terminate()
        assert agent.proc.wait(30) == 0, agent.text()
