"""What ``edgeseg agent`` publishes over MQTT, in code: topics, payload codecs, content types.

docs/mqtt.md is the specification; this module is its one reading, shared by both halves —
the agent builds its messages with it, ``edgeseg subscribe``, ``edgeseg view`` and the
preview decode with it. Every topic name and content type is spelled here and nowhere else.

Topics under one camera's prefix (:class:`Topics`):

* ``<prefix>/mask``   PNG, 8-bit single channel, frame size, pixel value = class id.
* ``<prefix>/meta``   JSON object, schema ``edgeseg/agent/meta.schema.json`` (``edgeseg.meta/1``).
* ``<prefix>/status`` ``online`` / ``degraded`` / ``offline`` (ASCII), retained; ``offline``
  is also the Last Will.
* ``<prefix>/frame``  low-rate JPEG camera frames for ``edgeseg view`` (``--publish-frames``).

Contract: everything here is pure and transport-free (no paho): topic strings in, topic
strings out; bytes in, arrays/dicts out. A payload or topic that breaks the specification
raises :class:`~edgeseg.errors.InvalidArgument` naming what was expected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from importlib import resources
from typing import Any

import cv2
import numpy as np

from edgeseg.errors import InvalidArgument
from edgeseg.json_schema import schema_errors

# -- topics --

MASK, META, STATUS, FRAME = "mask", "meta", "status", "frame"
KINDS = (MASK, META, STATUS, FRAME)
PUBLISHED = (MASK, META, STATUS)  # always published, each with its own QoS; FRAME is opt-in

CONTENT_TYPES: Mapping[str, str] = {
    MASK: "image/png",
    META: "application/json",
    STATUS: "text/plain",
    FRAME: "image/jpeg",
}


@dataclass(frozen=True)
class Topics:
    """The topic names under one prefix (e.g. ``edgeseg/jetson-01/door``).

    A prefix with MQTT wildcards (``edgeseg/+/+``) gives topic *filters* for subscribing;
    one without them gives the topics the agent publishes to. A trailing ``/`` is ignored.
    """

    prefix: str

    def __post_init__(self) -> None:
        prefix = self.prefix.rstrip("/")
        if not prefix or "#" in prefix:
            raise InvalidArgument(f"MQTT topic prefix {self.prefix!r}: expected a non-empty "
                                  "prefix such as edgeseg/<device>/<camera> ('+' allowed, '#' not)")
        object.__setattr__(self, "prefix", prefix)

    def of(self, kind: str) -> str:
        if kind not in KINDS:
            raise InvalidArgument(f"unknown topic kind {kind!r}; expected one of {KINDS}")
        return f"{self.prefix}/{kind}"

    @property
    def mask(self) -> str:
        return self.of(MASK)

    @property
    def meta(self) -> str:
        return self.of(META)

    @property
    def status(self) -> str:
        return self.of(STATUS)

    @property
    def frame(self) -> str:
        return self.of(FRAME)

    @property
    def wildcard(self) -> str:
        """One filter for every topic of the prefix (``<prefix>/+``)."""
        return f"{self.prefix}/+"

    def filters(self, *kinds: str) -> list[str]:
        return [self.of(kind) for kind in kinds]

    @staticmethod
    def parse(topic: str) -> tuple[str, str]:
        """``(prefix, kind)`` of a received topic, e.g. ``("edgeseg/d/c", "mask")``."""
        prefix, _, kind = topic.rpartition("/")
        if not prefix or kind not in KINDS:
            raise InvalidArgument(f"topic {topic!r}: expected <prefix>/<kind> with kind one of "
                                  f"{', '.join(KINDS)}")
        return prefix, kind


# -- <prefix>/status --

class Status(str, Enum):
    """The retained ``<prefix>/status`` values."""

    ONLINE = "online"  # connected, the camera delivers frames
    DEGRADED = "degraded"  # the broker refuses the agent's frames
    OFFLINE = "offline"  # camera lost, agent stopped, or (as the Last Will) agent vanished

    @property
    def payload(self) -> bytes:
        return self.value.encode("ascii")


def decode_status(payload: bytes) -> Status:
    text = payload.decode("ascii", "replace")
    try:
        return Status(text)
    except ValueError:
        raise InvalidArgument(f"status payload {text[:40]!r}: expected one of "
                              f"{', '.join(s.value for s in Status)}") from None


# -- <prefix>/mask --

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode_mask(class_map: np.ndarray) -> bytes:
    """PNG of a 2-D uint8 class map (lossless; pixel value = class id)."""
    if class_map.ndim != 2 or class_map.dtype != np.uint8:
        raise InvalidArgument(f"a mask must be a 2-D uint8 class map, got {class_map.dtype} "
                              f"{class_map.shape}")
    ok, png = cv2.imencode(".png", class_map, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise InvalidArgument("PNG encoding of the mask failed")
    return png.tobytes()


def decode_mask(payload: bytes) -> np.ndarray:
    """The class map (H, W) uint8 from a ``<prefix>/mask`` payload."""
    if not payload.startswith(_PNG_SIGNATURE):
        raise InvalidArgument(f"mask payload is not a PNG (starts {bytes(payload[:8])!r}); "
                              "expected an 8-bit single-channel PNG")
    image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 2 or image.dtype != np.uint8:
        got = "an unreadable PNG" if image is None else f"{image.dtype} {image.shape}"
        raise InvalidArgument(f"mask PNG must be 8-bit single-channel, got {got}")
    return image


def class_fractions(class_map: np.ndarray, names: Sequence[str]) -> list[dict[str, Any]]:
    """[{id, name, fraction}] for each class present, by id (fractions sum to 1)."""
    counts = np.bincount(class_map.ravel(), minlength=256)
    total = float(class_map.size)
    return [
        {"id": i, "name": names[i] if i < len(names) else f"class_{i}",
         "fraction": round(float(counts[i]) / total, 6)}
        for i in map(int, np.flatnonzero(counts))
    ]


# -- <prefix>/meta --

META_SCHEMA_ID = "edgeseg.meta/1"
LATENCY_STAGES = ("queue", "inference", "postprocess", "total")


def meta_schema() -> dict[str, Any]:
    text = resources.files("edgeseg.agent").joinpath("meta.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def build_meta(*, device_id: str, camera: str, frame_id: int, capture_time: float,
               publish_time: float, class_map: np.ndarray, model: str, version: int | None,
               signature: str, latency_s: Mapping[str, float], classes: list[dict[str, Any]]
               ) -> dict[str, Any]:
    """The ``<prefix>/meta`` object of one mask (``latency_s``: seconds by stage;
    ``classes``: :func:`class_fractions` of the map)."""
    return {
        "schema": META_SCHEMA_ID,
        "device_id": device_id,
        "camera": camera,
        "frame_id": frame_id,
        "capture_time": round(capture_time, 6),
        "publish_time": round(publish_time, 6),
        "width": int(class_map.shape[1]),
        "height": int(class_map.shape[0]),
        "model": {"name": model, "version": version, "signature": signature},
        "latency_ms": {k: round(latency_s.get(k, 0.0) * 1000, 3) for k in LATENCY_STAGES},
        "classes": classes,
    }


def encode_meta(meta: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as published."""
    return json.dumps(meta, separators=(",", ":")).encode()


def decode_meta(payload: bytes) -> dict[str, Any]:
    """The ``<prefix>/meta`` JSON object, checked against the schema."""
    try:
        meta = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"meta payload is not JSON ({exc}); expected a UTF-8 JSON "
                              f"object of schema {META_SCHEMA_ID}") from None
    problems = schema_errors(meta, meta_schema())
    if problems:
        raise InvalidArgument(f"meta breaks the schema {META_SCHEMA_ID}: " + "; ".join(problems))
    checked: dict[str, Any] = meta  # the schema's top level is an object
    return checked


# -- user properties (MQTT 5) on mask and meta --

def user_properties(frame_id: int, capture_time: float,
                    version: int | None) -> tuple[tuple[str, str], ...]:
    return (("frame_id", str(frame_id)), ("timestamp", f"{capture_time:.6f}"),
            ("model_version", "" if version is None else str(version)))


# -- <prefix>/frame --

def encode_frame(image_bgr: np.ndarray, quality: int = 70) -> bytes:
    ok, jpeg = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InvalidArgument(f"JPEG encoding of a {image_bgr.shape} frame failed")
    return jpeg.tobytes()


def decode_frame(payload: bytes) -> np.ndarray:
    """The BGR image of a ``<prefix>/frame`` payload (JPEG; PNG is read too)."""
    image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise InvalidArgument(f"frame payload of {len(payload)} bytes is not an image; "
                              "expected a JPEG (or PNG)")
    return image

