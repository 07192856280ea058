"""The MQTT contract (edgeseg.mqtt_contract): topic names and payload codecs on tables,
and docs/mqtt.md checked against the shipped schema."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeseg import mqtt_contract as contract
from edgeseg.errors import InvalidArgument
from edgeseg.json_schema import schema_errors

REPO = Path(__file__).resolve().parents[1]

# -- Topics --


@pytest.mark.parametrize("prefix, kind, topic", [
    ("edgeseg/jetson-01/door", "mask", "edgeseg/jetson-01/door/mask"),
    ("edgeseg/jetson-01/door/", "meta", "edgeseg/jetson-01/door/meta"),  # trailing / ignored
    ("site", "status", "site/status"),
    ("edgeseg/+/+", "frame", "edgeseg/+/+/frame"),  # a filter for subscribing
])
def test_topic_names(prefix, kind, topic):
    topics = contract.Topics(prefix)
    assert topics.of(kind) == topic == getattr(topics, kind)
    assert contract.Topics.parse(topic) == (prefix.rstrip("/"), kind)
    assert topics.wildcard == prefix.rstrip("/") + "/+"


def test_the_wire_names_docs_mqtt_gives():
    topics = contract.Topics("p")
    assert (topics.mask, topics.meta, topics.status, topics.frame) == (
        "p/mask", "p/meta", "p/status", "p/frame")
    assert topics.filters(contract.MASK, contract.META, contract.STATUS) == [
        "p/mask", "p/meta", "p/status"]
    assert dict(contract.CONTENT_TYPES) == {"mask": "image/png", "meta": "application/json",
                                            "status": "text/plain", "frame": "image/jpeg"}
    assert contract.PUBLISHED == ("mask", "meta", "status")
    assert [s.payload for s in contract.Status] == [b"online", b"degraded", b"offline"]


@pytest.mark.parametrize("prefix", ["", "/", "edgeseg/#"])
def test_bad_prefixes_name_what_was_expected(prefix):
    with pytest.raises(InvalidArgument, match="expected a non-empty prefix"):
        contract.Topics(prefix)


@pytest.mark.parametrize("topic", ["mask", "edgeseg/d/c/masks", "edgeseg/d/c/", "/status2"])
def test_parse_refuses_other_topics(topic):
    with pytest.raises(InvalidArgument, match="expected <prefix>/<kind> with kind one of "
                                              "mask, meta, status, frame"):
        contract.Topics.parse(topic)


def test_of_refuses_unknown_kinds():
    with pytest.raises(InvalidArgument, match="unknown topic kind 'masks'"):
        contract.Topics("p").of("masks")


# -- status --


@pytest.mark.parametrize("payload, status", [
    (b"online", contract.Status.ONLINE), (b"degraded", contract.Status.DEGRADED),
    (b"offline", contract.Status.OFFLINE),
])
def test_status_round_trip(payload, status):
    assert contract.decode_status(payload) is status and status.payload == payload


@pytest.mark.parametrize("payload", [b"", b"ONLINE", b"up", b"\xff\xfe"])
def test_bad_status_names_the_values(payload):
    with pytest.raises(InvalidArgument, match="expected one of online, degraded, offline"):
        contract.decode_status(payload)


# -- mask --


@pytest.mark.parametrize("class_map", [
    np.zeros((1, 1), np.uint8),
    np.arange(256, dtype=np.uint8).reshape(16, 16),
    np.random.default_rng(1).integers(0, 21, (48, 64), dtype=np.uint8),
])
def test_mask_png_round_trip_is_lossless(class_map):
    png = contract.encode_mask(class_map)
    assert png.startswith(b"\x89PNG")
    assert (contract.decode_mask(png) == class_map).all()


@pytest.mark.parametrize("bad", [np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.int64)])
def test_encode_refuses_non_class_maps(bad):
    with pytest.raises(InvalidArgument, match="2-D uint8 class map"):
        contract.encode_mask(bad)


@pytest.mark.parametrize("payload, match", [
    (b"GIF89a", "not a PNG .*expected an 8-bit single-channel PNG"),
    (b"", "not a PNG"),
    (cv2.imencode(".png", np.zeros((2, 2, 3), np.uint8))[1].tobytes(),
     r"single-channel, got uint8 \(2, 2, 3\)"),
    (cv2.imencode(".png", np.zeros((2, 2), np.uint16))[1].tobytes(),
     "single-channel, got uint16"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "single-channel, got an unreadable PNG"),
])
def test_decode_mask_refuses_what_is_not_an_8_bit_grey_png(payload, match):
    with pytest.raises(InvalidArgument, match=match):
        contract.decode_mask(payload)


def test_class_fractions():
    m = np.array([[0, 0, 15, 15], [0, 0, 0, 1]], np.uint8)
    assert contract.class_fractions(m, ["background", "aeroplane"]) == [
        {"id": 0, "name": "background", "fraction": 0.625},
        {"id": 1, "name": "aeroplane", "fraction": 0.125},
        {"id": 15, "name": "class_15", "fraction": 0.25},
    ]


# -- meta --


def good_meta() -> dict:
    return {"schema": "edgeseg.meta/1", "device_id": "d", "camera": "c", "frame_id": 3,
            "capture_time": 1.5, "publish_time": 1.6, "width": 4, "height": 2,
            "model": {"name": "deeplab", "version": None, "signature": "serving_default"},
            "latency_ms": {"queue": 1, "inference": 2.5, "postprocess": 0.1, "total": 4},
            "classes": [{"id": 0, "name": "background", "fraction": 1.0}]}


def test_build_meta_round_trips_through_the_schema():
    class_map = np.array([[0, 15, 15, 15], [0, 0, 0, 0]], np.uint8)
    meta = contract.build_meta(
        device_id="d", camera="c", frame_id=7, capture_time=1.0000004, publish_time=2.5,
        class_map=class_map, model="deeplab", version=2, signature="serving_default",
        latency_s={"queue": 0.001, "inference": 0.0625}, classes=contract.class_fractions(
            class_map, ["background"]))
    payload = contract.encode_meta(meta)
    assert b" " not in payload  # compact, as published
    assert contract.decode_meta(payload) == meta
    assert (meta["schema"], meta["width"], meta["height"]) == ("edgeseg.meta/1", 4, 2)
    assert meta["capture_time"] == 1.0
    assert meta["latency_ms"] == {"queue": 1.0, "inference": 62.5, "postprocess": 0.0,
                                  "total": 0.0}  # a stage not measured is 0
    assert [c["id"] for c in meta["classes"]] == [0, 15]


@pytest.mark.parametrize("change, problem", [
    (lambda m: m.pop("frame_id"), "missing 'frame_id'"),
    (lambda m: m.update(frame_id=-1), "$.frame_id: -1 < minimum 0"),
    (lambda m: m.update(width="4"), "$.width: expected integer"),
    (lambda m: m.update(extra=1), "unexpected key 'extra'"),
    (lambda m: m["model"].update(version="1"), "$.model.version: expected integer/null"),
    (lambda m: m.update(schema="edgeseg.meta/2"), "$.schema: must be 'edgeseg.meta/1'"),
])
def test_decode_meta_names_the_broken_field(change, problem):
    meta = good_meta()
    change(meta)
    with pytest.raises(InvalidArgument, match="meta breaks the schema edgeseg.meta/1") as info:
        contract.decode_meta(json.dumps(meta).encode())
    assert problem in info.value.message


@pytest.mark.parametrize("payload", [b"", b"{", b"\xff", b"[1]", b"null"])
def test_decode_meta_refuses_what_is_not_a_json_object(payload):
    with pytest.raises(InvalidArgument, match="(not JSON.*expected a UTF-8 JSON object|"
                                              r"\$: expected object)"):
        contract.decode_meta(payload)


def test_user_properties():
    assert contract.user_properties(42, 1795800000.25, 4) == (
        ("frame_id", "42"), ("timestamp", "1795800000.250000"), ("model_version", "4"))
    assert dict(contract.user_properties(0, 1.0, None))["model_version"] == ""


# -- frame --


def test_frame_round_trip_and_bad_frames():
    image = np.full((8, 12, 3), 120, np.uint8)
    jpeg = contract.encode_frame(image)
    assert jpeg.startswith(b"\xff\xd8")
    assert np.abs(contract.decode_frame(jpeg).astype(int) - 120).max() < 4
    with pytest.raises(InvalidArgument, match="frame payload of 2 bytes is not an image; "
                                              "expected a JPEG"):
        contract.decode_frame(b"\x00\x01")


# -- the page that specifies it --


def test_schema_file_is_valid_json_schema_shape():
    schema = contract.meta_schema()
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert set(schema["required"]) == set(schema["properties"])
    assert schema["properties"]["schema"]["const"] == contract.META_SCHEMA_ID


def test_docs_schema_is_the_shipped_file():
    doc = (REPO / "docs" / "mqtt.md").read_text()
    block = doc.split("### Schema", 1)[1].split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(block) == contract.meta_schema()


def test_docs_example_meta_validates():
    doc = (REPO / "docs" / "mqtt.md").read_text()
    example = doc.split("## `<prefix>/meta`", 1)[1].split("```json\n", 1)[1].split("\n```")[0]
    assert schema_errors(json.loads(example), contract.meta_schema()) == []


def test_docs_topic_table_is_the_contract():
    doc = (REPO / "docs" / "mqtt.md").read_text()
    for kind in contract.PUBLISHED:
        row = next(line for line in doc.splitlines() if line.startswith(f"| `<prefix>/{kind}`"))
        assert f"`{contract.CONTENT_TYPES[kind]}`" in row
