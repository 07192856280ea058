"""The agent's side of the live preview and of ``edgeseg view``'s frames.

Both hang off :meth:`Pipeline.add_observer`, which runs on the encode thread and must
return at once: :class:`PreviewTap` only hands references to the preview hub (encoding
happens in viewer threads, and only while someone watches); :class:`FrameTap` encodes a
JPEG at most ``publish_frames_fps`` times a second and queues it in the publisher's
bounded outbox (QoS 0: a lost preview frame is not worth a retry).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from edgeseg import mqtt_contract as contract
from edgeseg.agent.capture import Frame
from edgeseg.agent.config import PreviewConfig
from edgeseg.agent.messages import Message
from edgeseg.agent.publisher import Publisher
from edgeseg.errors import InvalidArgument
from edgeseg.labels import default_class_names, voc_palette
from edgeseg.preview.hub import PreviewHub
from edgeseg.preview.server import PreviewServer

log = logging.getLogger("edgeseg.agent")


class PreviewTap:
    def __init__(self, cfg: PreviewConfig, labels: list[str], title: str) -> None:
        names = labels or default_class_names(21)
        self.hub = PreviewHub(names, voc_palette(max(256, len(names))), max_fps=cfg.max_fps)
        self.server = PreviewServer(self.hub, cfg.host, cfg.port or 0, title=title)

    def start(self) -> None:
        self.server.start()
        log.info("agent: live preview on %s", self.server.url)

    def __call__(self, frame: Frame, class_map: np.ndarray, meta: dict[str, Any]) -> None:
        self.hub.update(frame.image, class_map,
                        {"frame_id": frame.id, "latency_ms": meta.get("latency_ms", {}),
                         "model": meta.get("model")})

    def close(self) -> None:
        self.server.stop()


class FrameTap:
    def __init__(self, fps: float, prefix: str, publisher: Publisher, quality: int = 70) -> None:
        self.period = 1.0 / fps
        self.topic = contract.Topics(prefix).frame
        self.publisher = publisher
        self.quality = quality
        self.last = 0.0
        self.published = 0

    def __call__(self, frame: Frame, class_map: np.ndarray, meta: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self.last < self.period:
            return
        try:
            jpeg = contract.encode_frame(frame.image, self.quality)
        except InvalidArgument:
            return  # a frame OpenCV cannot encode: skip it, the next one will do
        self.last = now
        self.published += 1
        self.publisher.publish([Message(self.topic, jpeg, 0, False,
                                        contract.CONTENT_TYPES[contract.FRAME],
                                        (("frame_id", str(frame.id)),))])
