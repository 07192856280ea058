"""``edgeseg view``: the preview page for a remote MQTT subscriber.

Subscribes to one camera's ``<prefix>/mask`` and ``<prefix>/meta`` (and to
``<prefix>/frame``, low-rate JPEG frames the agent publishes with ``--publish-frames``)
and serves the same page as the agent's ``--preview-port``. Without frames the mask is
drawn over black. Frames and masks are paired by the ``frame_id`` user property; a
mask whose own frame has not arrived is drawn over the newest frame of its size.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

from edgeseg import mqtt_contract as contract
from edgeseg.errors import EdgesegError
from edgeseg.labels import VOC_CLASSES, read_labels, voc_palette
from edgeseg.preview.hub import PreviewHub
from edgeseg.preview.server import PreviewServer

log = logging.getLogger("edgeseg.view")


def user_property(message: Any, key: str) -> str | None:
    props = getattr(message, "properties", None)
    for name, value in getattr(props, "UserProperty", None) or []:
        if name == key:
            return value
    return None


class MaskViewer:
    """Turns MQTT messages into hub updates (transport-free, so it is unit-testable)."""

    def __init__(self, hub: PreviewHub, prefix: str) -> None:
        self.hub = hub
        self.topic_names = contract.Topics(prefix)
        self.prefix = self.topic_names.prefix
        self.frame: np.ndarray | None = None
        self.frame_id: str | None = None
        self.meta: dict[str, Any] = {}
        self.errors = 0

    def topics(self) -> list[str]:
        return self.topic_names.filters(contract.MASK, contract.META, contract.FRAME)

    def on_message(self, topic: str, payload: bytes, frame_id: str | None) -> None:
        try:
            _, kind = contract.Topics.parse(topic)
            if kind == contract.FRAME:
                self.frame, self.frame_id = contract.decode_frame(payload), frame_id
            elif kind == contract.META:
                self.meta = contract.decode_meta(payload)
            elif kind == contract.MASK:
                self._show(contract.decode_mask(payload), frame_id)
        except EdgesegError as exc:
            self.errors += 1
            log.warning("ignoring a bad message on %s: %s", topic, exc)

    def _show(self, class_map: np.ndarray, frame_id: str | None) -> None:
        frame = self.frame
        if frame is None or frame.shape[:2] != class_map.shape:
            frame = np.zeros((*class_map.shape, 3), np.uint8)
        info = {"latency_ms": self.meta.get("latency_ms", {}), "frame_id": frame_id,
                "model": self.meta.get("model")}
        self.hub.update(frame, class_map, info)


def main(argv: list[str]) -> int:
    from edgeseg.agent import broker

    p = argparse.ArgumentParser(prog="edgeseg view", description=__doc__.split("\n\n")[0])
    broker.add_arguments(p)
    p.add_argument("--topic-prefix", required=True, help="the camera's prefix, e.g. "
                   "edgeseg/jetson-1/front")
    p.add_argument("--preview-port", type=int, default=8080)
    p.add_argument("--preview-host", default="127.0.0.1")
    p.add_argument("--labels", help="class names file (default: PASCAL VOC)")
    p.add_argument("--max-fps", type=float, default=10.0)
    args = p.parse_args(argv)
    client, cfg = broker.client_for_args(args)
    names = read_labels(args.labels) if args.labels else list(VOC_CLASSES)
    hub = PreviewHub(names, voc_palette(max(len(names), 1)), max_fps=args.max_fps)
    viewer = MaskViewer(hub, args.topic_prefix)

    def on_connect(c: mqtt.Client, *_: Any) -> None:
        for topic in viewer.topics():
            c.subscribe(topic, qos=0)

    def on_message(_c: mqtt.Client, _u: Any, m: mqtt.MQTTMessage) -> None:
        # paho hands bytes (bytes() of bytes is the same object: no copy)
        viewer.on_message(m.topic, bytes(m.payload), user_property(m, "frame_id"))

    client.on_connect = on_connect
    client.on_message = on_message
    broker.connect(client, cfg)  # a refused login or TLS failure: one line, exit 1
    server = PreviewServer(hub, args.preview_host, args.preview_port,
                           title=args.topic_prefix).start()
    done = threading.Event()
    # before the ready line: whoever waits for it may SIGTERM us at once
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(f"edgeseg view: preview at {server.url} for {args.topic_prefix} on {args.mqtt}",
          flush=True)
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        client.loop_stop()
        client.disconnect()
        server.stop()
    return 0
