"""``edgeseg view``: MQTT messages become preview updates."""

from __future__ import annotations

import json

import cv2
import numpy as np

from edgeseg import masks
from edgeseg.labels import VOC_CLASSES, voc_palette
from edgeseg.preview.hub import PreviewHub
from edgeseg.view import MaskViewer


def meta_payload(frame_id: int, h: int, w: int) -> bytes:
    return json.dumps({
        "schema": masks.META_SCHEMA_ID, "device_id": "dev", "camera": "cam",
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
    viewer.on_message("edgeseg/dev/cam/mask", masks.encode_mask(mask), "1")
    _, jpeg = hub.jpeg(1.0)
    shown = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert shown[20, 5].max() < 10 and abs(int(shown[20, 50, 2]) - 192) < 10

    frame = np.full((40, 60, 3), 200, np.uint8)
    viewer.on_message("edgeseg/dev/cam/frame", cv2.imencode(".jpg", frame)[1].tobytes(), "2")
    viewer.on_message("edgeseg/dev/cam/meta", meta_payload(2, 40, 60), "2")
    viewer.on_message("edgeseg/dev/cam/mask", masks.encode_mask(mask), "2")
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
