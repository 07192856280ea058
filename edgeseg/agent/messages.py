"""One frame's MQTT messages — its ``mask`` and ``meta`` — built with :mod:`edgeseg.mqtt_contract`.

Contract: :func:`build_messages` is the pipeline's encode stage and is pure apart from
the clock: a decoded reply (the class map at the frame's size, the model version) becomes
the PNG mask and the meta object of docs/mqtt.md, as :class:`Message` objects (what the
publisher sends) with the QoS, content type and user properties the config and the
specification give. It fills ``frame.timings`` (``postprocess`` grows by the encoding
time; ``total`` ends now) and raises :class:`~edgeseg.errors.InvalidArgument` for a map
it cannot encode.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgeseg import mqtt_contract as contract
from edgeseg.agent.capture import Frame
from edgeseg.agent.config import AgentConfig


@dataclass
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool = False
    content_type: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    captured_mono: float | None = None  # for the capture-to-acknowledged latency

    def properties(self) -> Properties | None:
        if not self.content_type and not self.user_properties:
            return None
        props = Properties(PacketTypes.PUBLISH)
        if self.content_type:
            props.ContentType = self.content_type
        if self.user_properties:
            props.UserProperty = list(self.user_properties)
        return props


class Encoded(NamedTuple):
    class_map: np.ndarray  # (H, W) uint8 at the frame's size
    meta: dict[str, Any]  # the <prefix>/meta object
    messages: list[Message]  # mask then meta


def build_messages(cfg: AgentConfig, frame: Frame, class_map: np.ndarray, version: int | None,
                   labels: Sequence[str]) -> Encoded:
    started = time.monotonic()
    png = contract.encode_mask(class_map)
    classes = contract.class_fractions(class_map, labels)
    now = time.monotonic()
    frame.timings["postprocess"] = frame.timings.get("postprocess", 0.0) + (now - started)
    meta = contract.build_meta(
        device_id=cfg.device_id, camera=cfg.camera, frame_id=frame.id,
        capture_time=frame.captured_at, publish_time=time.time(), class_map=class_map,
        model=cfg.server.model, version=version, signature=cfg.server.signature,
        latency_s={**frame.timings, "total": now - frame.captured_mono}, classes=classes)
    frame.timings["total"] = now - frame.captured_mono
    topics, q = contract.Topics(cfg.topic_prefix), cfg.mqtt
    props = contract.user_properties(frame.id, frame.captured_at, version)
    kinds = contract.CONTENT_TYPES
    return Encoded(class_map, meta, [
        Message(topics.mask, png, q.qos_mask, False, kinds[contract.MASK], props,
                frame.captured_mono),
        Message(topics.meta, contract.encode_meta(meta), q.qos_meta, False, kinds[contract.META],
                props, frame.captured_mono),
    ])
