"""The subscriber API (edgeseg.masks): pure codecs on tables, and `edgeseg subscribe`."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeseg import masks
from edgeseg.errors import InvalidArgument

from .conftest import REPO


@pytest.mark.parametrize("class_map", [
    np.zeros((1, 1), np.uint8),
    np.arange(256, dtype=np.uint8).reshape(16, 16),
    np.random.default_rng(1).integers(0, 21, (48, 64), dtype=np.uint8),
])
def test_mask_png_round_trip_is_lossless(class_map):
    png = masks.encode_mask(class_map)
    assert png.startswith(b"\x89PNG")
    assert (masks.decode_mask(png) == class_map).all()


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.int64)])
def test_encode_refuses_non_class_maps(bad):
    with pytest.raises(InvalidArgument):
        masks.encode_mask(bad)


def test_decode_refuses_non_png_and_colour_png():
    import cv2

    with pytest.raises(InvalidArgument, match="not a PNG"):
        masks.decode_mask(b"GIF89a")
    _, colour = cv2.imencode(".png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(InvalidArgument, match="single-channel"):
        masks.decode_mask(colour.tobytes())


def test_class_fractions():
    m = np.array([[0, 0, 15, 15], [0, 0, 0, 1]], np.uint8)
    assert masks.class_fractions(m, ["background", "aeroplane"]) == [
        {"id": 0, "name": "background", "fraction": 0.625},
        {"id": 1, "name": "aeroplane", "fraction": 0.125},
        {"id": 15, "name": "class_15", "fraction": 0.25},
    ]


def good_meta() -> dict:
    return {"schema": "edgeseg.meta/1", "device_id": "d", "camera": "c", "frame_id": 3,
            "capture_time": 1.5, "publish_time": 1.6, "width": 4, "height": 2,
            "model": {"name": "deeplab", "version": None, "signature": "serving_default"},
            "latency_ms": {"queue": 1, "inference": 2.5, "postprocess": 0.1, "total": 4},
            "classes": [{"id": 0, "name": "background", "fraction": 1.0}]}


@pytest.mark.parametrize("change, problem", [
    (lambda m: m, None),
    (lambda m: m.pop("frame_id"), "missing 'frame_id'"),
    (lambda m: m.update(frame_id=-1), "$.frame_id: -1 < minimum 0"),
    (lambda m: m.update(frame_id=True), "$.frame_id: expected integer"),
    (lambda m: m.update(width="4"), "$.width: expected integer"),
    (lambda m: m.update(extra=1), "unexpected key 'extra'"),
    (lambda m: m["model"].update(version="1"), "$.model.version: expected integer/null"),
    (lambda m: m["classes"][0].update(fraction=1.5), "$.classes[0].fraction: 1.5 > maximum"),
    (lambda m: m["latency_ms"].pop("total"), "$.latency_ms: missing 'total'"),
    (lambda m: m.update(schema="edgeseg.meta/2"), "$.schema: must be"),
])
def test_meta_schema_table(change, problem):
    meta = good_meta()
    change(meta)
    errors = masks.schema_errors(meta, masks.meta_schema())
    if problem is None:
        assert errors == []
        assert masks.decode_meta(json.dumps(meta).encode()) == meta
    else:
        assert any(problem in e for e in errors), errors
        with pytest.raises(InvalidArgument, match="meta breaks the schema"):
            masks.decode_meta(json.dumps(meta).encode())


def test_schema_file_is_valid_json_schema_shape():
    schema = masks.meta_schema()
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["required"]) == set(schema["properties"])


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
        png = masks.encode_mask(np.full((2, 4), 15, np.uint8))
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "image/png"
        import time

        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            pub.publish("edgeseg/d/c/meta", json.dumps(good_meta()), 1).wait_for_publish(5)
            pub.publish("edgeseg/d/c/mask", png, 1, properties=props).wait_for_publish(5)
            time.sleep(0.3)
        out, err = proc.communicate(timeout=10)
    finally:
        pub.loop_stop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "edgeseg/d/c/mask 4x2 classes=[15]" in out
    assert "frame=3" in out


def test_docs_schema_is_the_shipped_file():
    doc = (REPO / "docs" / "mqtt.md").read_text()
    block = doc.split("### Schema", 1)[1].split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(block) == masks.meta_schema()


def test_docs_example_meta_validates():
    doc = (REPO / "docs" / "mqtt.md").read_text()
    example = doc.split("## `<prefix>/meta`", 1)[1].split("```json\n", 1)[1].split("\n```")[0]
    assert masks.schema_errors(json.loads(example), masks.meta_schema()) == []


@pytest.mark.parametrize("change", [
    lambda m: m, lambda m: m.pop("frame_id"), lambda m: m.update(extra=1),
    lambda m: m["model"].update(version="1"), lambda m: m["classes"][0].update(fraction=2),
])
def test_hand_validator_agrees_with_jsonschema(change):
    jsonschema = pytest.importorskip("jsonschema")  # a dev extra; the agent does not need it
    schema = masks.meta_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    meta = good_meta()
    change(meta)
    ours = masks.schema_errors(meta, schema) == []
    theirs = jsonschema.Draft202012Validator(schema).is_valid(meta)
    assert ours == theirs
