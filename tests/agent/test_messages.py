"""The encode stage (edgeseg.agent.messages): one frame's mask and meta as docs/mqtt.md says."""

import time

import numpy as np
import pytest

from edgeseg import mqtt_contract as contract
from edgeseg.agent.capture import Frame
from edgeseg.agent.config import AgentConfig
from edgeseg.agent.messages import build_messages
from edgeseg.errors import InvalidArgument


def config(**tree) -> AgentConfig:
    base = {"device_id": "d1", "camera": "door", "source": {"uri": "x.avi"},
            "server": {"model": "deeplab"}}
    base.update(tree)
    return AgentConfig.model_validate(base)


def frame(**timings) -> Frame:
    return Frame(42, np.zeros((2, 4, 3), np.uint8), 1795800000.25, time.monotonic() - 0.1,
                 dict(timings))


def test_build_messages_follows_docs_mqtt():
    f = frame(queue=0.01, inference=0.05, postprocess=0.002)  # decode time from inference
    class_map = np.array([[0, 0, 0, 15], [0, 0, 0, 15]], np.uint8)
    enc = build_messages(config(), f, class_map, 4, ["background"])
    mask_msg, meta_msg = enc.messages
    assert mask_msg.topic == "edgeseg/d1/door/mask" and meta_msg.topic == "edgeseg/d1/door/meta"
    assert (mask_msg.qos, meta_msg.qos) == (1, 1)  # acknowledged masks survive a restart
    assert not mask_msg.retain and not meta_msg.retain
    assert (contract.decode_mask(mask_msg.payload) == class_map).all()
    meta = contract.decode_meta(meta_msg.payload)
    assert meta == enc.meta and enc.class_map is class_map
    assert (meta["frame_id"], meta["width"], meta["height"]) == (42, 4, 2)
    assert meta["model"] == {"name": "deeplab", "version": 4, "signature": "serving_default"}
    assert meta["classes"] == [{"id": 0, "name": "background", "fraction": 0.75},
                               {"id": 15, "name": "class_15", "fraction": 0.25}]
    latency = meta["latency_ms"]
    assert latency["inference"] == 50.0 and latency["total"] >= 100
    assert latency["postprocess"] >= 2.0  # decoding plus encoding
    assert f.timings["total"] * 1000 == pytest.approx(latency["total"], abs=0.001)
    for msg in enc.messages:
        assert dict(msg.user_properties) == {"frame_id": "42", "timestamp": "1795800000.250000",
                                             "model_version": "4"}
    assert mask_msg.properties().ContentType == "image/png"
    assert meta_msg.properties().ContentType == "application/json"


def test_qos_and_prefix_come_from_the_config():
    cfg = config(mqtt={"topic_prefix": "site/a", "qos_mask": 0, "qos_meta": 2})
    enc = build_messages(cfg, frame(), np.zeros((2, 4), np.uint8), None, [])
    assert [(m.topic, m.qos) for m in enc.messages] == [("site/a/mask", 0), ("site/a/meta", 2)]
    assert dict(enc.messages[0].user_properties)["model_version"] == ""
    assert enc.meta["model"]["version"] is None


def test_a_map_that_is_not_a_class_map_is_refused():
    with pytest.raises(InvalidArgument, match="2-D uint8 class map"):
        build_messages(config(), frame(), np.zeros((2, 4), np.int32), 1, [])
