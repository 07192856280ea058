"""``edgeseg subscribe``: the line each message becomes, then the command against a real
Mosquitto with a plain paho publisher."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeseg import mqtt_contract as contract
from edgeseg.errors import InvalidArgument
from edgeseg.subscribe import describe

from .test_mqtt_contract import good_meta

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("topic, payload, line", [
    ("edgeseg/d/c/mask", contract.encode_mask(np.array([[0, 15, 15, 15]], np.uint8)),
     "edgeseg/d/c/mask 4x1 classes=[0, 15]"),
    ("edgeseg/d/c/meta", json.dumps(good_meta()).encode(),
     "edgeseg/d/c/meta frame=3 total=4.0ms background:1.000"),
    ("edgeseg/d/c/status", b"degraded", "edgeseg/d/c/status degraded"),
], ids=["mask", "meta", "status"])
def test_describe(topic, payload, line):
    assert describe(topic, payload) == (topic.rsplit("/", 1)[1], line)


def test_describe_ignores_frames_and_refuses_bad_payloads():
    assert describe("edgeseg/d/c/frame", b"\xff\xd8") is None
    with pytest.raises(InvalidArgument, match="not a PNG"):
        describe("edgeseg/d/c/mask", b"{}")
    with pytest.raises(InvalidArgument, match="expected one of online"):
        describe("edgeseg/d/c/status", b"gone")


def test_subscribe_prints_masks_published_by_a_plain_client(mosquitto):
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeseg", "subscribe", "--mqtt", mosquitto.address,
         "--count", "2", "--timeout", "20"], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    try:
        png = contract.encode_mask(np.full((2, 4), 15, np.uint8))
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "image/png"
        # the subscriber subscribes at its own pace: publish until it has seen 2 masks
        for _ in range(60):
            pub.publish("edgeseg/d/c/meta", json.dumps(good_meta()), 1).wait_for_publish(5)
            pub.publish("edgeseg/d/c/mask", png, 1, properties=props).wait_for_publish(5)
            try:
                proc.wait(timeout=0.3)
                break
            except subprocess.TimeoutExpired:
                continue
        out, err = proc.communicate(timeout=10)
    finally:
        pub.loop_stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "edgeseg/d/c/mask 4x2 classes=[15]" in out
    assert "frame=3" in out
