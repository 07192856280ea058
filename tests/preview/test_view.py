"""``edgeseg view``: MQTT messages become preview updates."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from edgeseg import mqtt_contract as contract
from edgeseg.labels import VOC_CLASSES, voc_palette
from edgeseg.preview.hub import PreviewHub
from edgeseg.view import MaskViewer


def meta_payload(frame_id: int, h: int, w: int) -> bytes:
    return json.dumps({
        "schema": contract.META_SCHEMA_ID, "device_id": "dev", "camera": "cam",
        "frame_id": frame_id, "capture_time": 1.0, "publish_time": 1.1, "width": w,
        "height": h, "model": {"name": "deeplab", "version": 1, "signature": "serving_default"},
        "latency_ms": {"queue": 1.0, "inference": 10.0, "postprocess": 1.5, "total": 12.5},
        "classes": []}).encode()


def test_mask_over_its_frame_and_over_black_without_one():
    hub = PreviewHub(VOC_CLASSES, voc_palette(21))
    viewer = MaskViewer(hub, "edgeseg/dev/cam/")
    assert viewer.topics() == ["edgeseg/dev/cam/mask", "edgeseg/dev/cam/meta",
                               "edgeseg/dev/cam/frame"]
    mask = np.zeros((40, 60), np.uint8)
    mask[:, 30:] = 15
    viewer.on_message("edgeseg/dev/cam/mask", contract.encode_mask(mask), "1")
    _, jpeg = hub.jpeg(1.0)
    shown = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert shown[20, 5].max() < 10 and abs(int(shown[20, 50, 2]) - 192) < 10

    frame = np.full((40, 60, 3), 200, np.uint8)
    viewer.on_message("edgeseg/dev/cam/frame", cv2.imencode(".jpg", frame)[1].tobytes(), "2")
    viewer.on_message("edgeseg/dev/cam/meta", meta_payload(2, 40, 60), "2")
    viewer.on_message("edgeseg/dev/cam/mask", contract.encode_mask(mask), "2")
    _, jpeg = hub.jpeg(0.5)
    shown = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert abs(int(shown[20, 5, 0]) - 200) < 8  # the frame shows through the background
    assert hub.stats()["latency_ms"]["total"] == 12.5
    assert viewer.errors == 0


def test_bad_payloads_are_counted_not_fatal():
    hub = PreviewHub(VOC_CLASSES, voc_palette(21))
    viewer = MaskViewer(hub, "p")
    viewer.on_message("p/mask", b"not a png", None)
    viewer.on_message("p/frame", b"\x00\x01", None)
    viewer.on_message("p/meta", b"{", None)
    assert viewer.errors == 3 and hub.seq == 0


def test_edgeseg_view_with_a_real_broker(mosquitto):
    """`edgeseg view` as a process: masks and a frame published by a plain paho client
    show up on its snapshot endpoint."""
    import subprocess
    import sys
    import urllib.request

    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from tests.services import free_port, wait_port, wait_until

    broker = mosquitto
    port = free_port()
    view = subprocess.Popen([sys.executable, "-m", "edgeseg", "view", "--mqtt", broker.address,
                             "--topic-prefix", "edgeseg/dev/cam", "--preview-port", str(port)],
                            cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    try:
        wait_port(port, 30)
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("frame_id", "7")]
        frame = np.full((40, 60, 3), 200, np.uint8)
        mask = np.zeros((40, 60), np.uint8)
        mask[:, 30:] = 15

        def shown() -> list[np.ndarray]:
            client.publish("edgeseg/dev/cam/frame", cv2.imencode(".jpg", frame)[1].tobytes(),
                           qos=1, properties=props).wait_for_publish(5)
            client.publish("edgeseg/dev/cam/mask", contract.encode_mask(mask), qos=1,
                           properties=props).wait_for_publish(5)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/snapshot.jpg?opacity=1",
                                            timeout=5) as reply:  # loopback
                    data = reply.read()
            except urllib.error.HTTPError:
                return []  # 503 until the first mask arrived
            return [cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)]

        (image,) = wait_until(shown, 20, interval=0.3, what="a mask on the view's snapshot")
        assert image.shape == (40, 60, 3)
        assert abs(int(image[20, 5, 0]) - 200) < 10            # the published frame
        assert abs(int(image[20, 50, 2]) - 192) < 10           # person, fully opaque
    finally:
        client.loop_stop()
        client.disconnect()
        view.terminate()
        view.wait(10)
