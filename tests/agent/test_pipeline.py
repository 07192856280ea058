"""The pipeline in-process: the loops wired together (fake model server in this process,
real Mosquitto). The encode stage on its own is in test_messages.py."""

import json
import threading
import time

import numpy as np
import pytest

from edgeseg.agent.capture import Frame
from edgeseg.agent.config import AgentConfig
from edgeseg.agent.pipeline import Pipeline, read_labels
from edgeseg.errors import InvalidArgument

from .conftest import synthetic_frames, wait_until, write_clip
from .fake_model_server import serve


def config(**tree) -> AgentConfig:
    base = {"device_id": "d1", "camera": "door", "source": {"uri": "x.avi"},
            "server": {"model": "deeplab"}}
    base.update(tree)
    return AgentConfig.model_validate(base)


def test_labels_file(tmp_path):
    f = tmp_path / "labels.txt"
    f.write_text("background\naeroplane\n\n")
    assert read_labels(f) == ["background", "aeroplane"]
    assert read_labels(None) == []
    with pytest.raises(InvalidArgument, match="labels_file"):
        read_labels(tmp_path / "none.txt")


def test_pipeline_runs_to_max_frames_and_observers_see_each_mask(tmp_path, mosquitto,
                                                                 recorder_factory):
    server, fake, port = serve(0)
    clip = write_clip(tmp_path / "c.avi", synthetic_frames(20, (48, 64)))
    cfg = config(source={"uri": str(clip), "loop": True, "fps": 50},
                 server={"address": f"127.0.0.1:{port}"},
                 mqtt={"address": mosquitto.address}, max_frames=6)
    rec = recorder_factory(mosquitto.port)
    seen = []
    pipeline = Pipeline(cfg, env={})
    pipeline.add_observer(lambda frame, class_map, meta: seen.append((frame.id, class_map.shape,
                                                                      meta["frame_id"])))
    pipeline.add_observer(lambda *_: 1 / 0)  # a broken observer does not stop the agent
    done = []
    t = threading.Thread(target=lambda: done.append(pipeline.run()))
    try:
        t.start()
        t.join(30)
    finally:
        pipeline.stop()
        server.stop(0)
    assert done == [0]
    assert len(seen) == 6 and all(s[1] == (48, 64) and s[0] == s[2] for s in seen)
    assert [s[0] for s in seen] == sorted(s[0] for s in seen)
    totals = pipeline.ledger.snapshot()
    assert totals.acknowledged == 6 and totals.in_flight == 0 and totals.balanced
    wait_until(lambda: len(rec.metas()) == 6 and rec.statuses()[-1:] == ["offline"], 5,
               what="6 masks then offline at the subscriber")
    assert len(rec.of("mask")) == 6
    # the bright square of the synthetic clip is the fake model's class 15
    assert all(any(c["id"] == 15 for c in m["classes"]) for m in rec.metas())


def test_a_loop_dying_of_a_bug_makes_run_return_1(tmp_path, mosquitto, monkeypatch):
    from edgeseg.agent import pipeline as pipeline_mod

    def broken(*_args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(pipeline_mod, "build_messages", broken)
    server, fake, port = serve(0)
    clip = write_clip(tmp_path / "c.avi", synthetic_frames(20, (48, 64)))
    cfg = config(source={"uri": str(clip), "loop": True, "fps": 50},
                 server={"address": f"127.0.0.1:{port}"}, mqtt={"address": mosquitto.address})
    pipeline = Pipeline(cfg, env={})
    try:
        assert pipeline.run() == 1  # so systemd's Restart=on-failure takes over
    finally:
        server.stop(0)


def test_out_of_order_replies_are_dropped_as_stale():
    from edgeseg.agent.inference import Result

    pipeline = Pipeline(config(), env={})  # nothing started: the outbox just fills
    for frame_id in (2, 1, 3, 0):
        frame = Frame(frame_id, np.zeros((2, 2, 3), np.uint8), time.time(), time.monotonic())
        pipeline.ledger.enter(frame_id)
        pipeline.results.put(Result(frame, np.zeros((2, 2), np.uint8), 4))
    pipeline.results.close()
    pipeline._encode_all()
    sent = [json.loads(pipeline.publisher.outbox.get(0).messages[1].payload)["frame_id"]
            for _ in range(len(pipeline.publisher.outbox))]
    assert sent == [2, 3]
    totals = pipeline.ledger.snapshot()
    assert totals.dropped["stale"] == 2 and totals.in_flight == 2  # 2 and 3 in the outbox


def test_a_lost_camera_status_never_shows_its_password(monkeypatch):
    """sd_notify STATUS= is what `systemctl status` shows every local user."""
    pipeline = Pipeline(config(source={"uri": "rtsp://cam:s3cret@10.0.0.9/stream"}), env={})
    said = []
    monkeypatch.setattr(pipeline.watchdog, "status", said.append)
    monkeypatch.setattr(pipeline.publisher, "set_available", lambda up: None)
    pipeline._source_state(False)
    assert said == ["source rtsp://cam:***@10.0.0.9/stream lost"]
