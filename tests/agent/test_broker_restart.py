"""A REAL Mosquitto with persistence restarted under a publishing agent: no acknowledged
mask is lost (issue 16.3), and every frame still in flight is delivered or counted."""

import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgeseg.agent.config import AgentConfig
from edgeseg.agent.pipeline import Pipeline

from .conftest import Mosquitto, mosquitto_binary, synthetic_frames, wait_until, write_clip
from .fake_model_server import serve

PERSISTENCE = "persistence true\nautosave_interval 60\n"


class PersistentSubscriber:
    """MQTT 5, clean start off, a session that outlives the broker's restart, QoS 1."""

    def __init__(self, port: int, topic: str) -> None:
        self.frame_ids: list[int] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="restart-sub",
                                  protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 0.5)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=5, clean_start=False, properties=props)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        assert subscribed.wait(5), "no SUBACK"

    def _on_message(self, _c, _u, msg) -> None:
        frame_id = dict(msg.properties.UserProperty)["frame_id"]
        with self.lock:
            self.frame_ids.append(int(frame_id))

    def received(self) -> set[int]:
        with self.lock:
            return set(self.frame_ids)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_broker_restart_with_persistence_loses_no_acknowledged_mask(tmp_path):
    if mosquitto_binary() is None:
        pytest.skip("Debian's mosquitto is not installed (make system-deps installs it)")
    broker = Mosquitto(tmp_path, PERSISTENCE)
    broker.start()
    server, _fake, port = serve(0)
    clip = write_clip(tmp_path / "c.avi", synthetic_frames(40, (48, 64)))
    cfg = AgentConfig.model_validate({
        "device_id": "d1", "camera": "restart", "source": {"uri": str(clip), "loop": True},
        "server": {"address": f"127.0.0.1:{port}"},
        "mqtt": {"address": broker.address, "qos_mask": 1, "outbox_size": 16,
                 "keepalive_s": 3, "reconnect_min_s": 0.5, "reconnect_max_s": 1}})
    sub = PersistentSubscriber(broker.port, "edgeseg/d1/restart/mask")
    pipeline = Pipeline(cfg, env={})
    acked: list[int] = []
    pipeline.ledger.listeners.append(
        lambda frame_id, outcome: outcome == "acknowledged" and acked.append(frame_id))
    runner = threading.Thread(target=pipeline.run)
    try:
        runner.start()
        wait_until(lambda: len(acked) >= 10, 20, what="masks before the restart")
        broker.stop()  # SIGTERM: Mosquitto writes sessions and queued messages to disk
        before = len(acked)
        time.sleep(1.0)  # ~25 frames captured while the broker is away; the outbox holds 16
        broker.start()
        wait_until(pipeline.publisher.connected.is_set, 15, what="the agent reconnected")
        reconnected_at = pipeline.metrics.source_frames.value  # frame ids below: the outage
        wait_until(lambda: len(acked) >= before + 20, 30, what="masks after the restart")
    finally:
        pipeline.stop()
        runner.join(30)
        server.stop(0)
    try:
        totals = pipeline.ledger.snapshot()
        assert totals.in_flight == 0 and totals.balanced and totals.errors == 0
        # every acknowledged mask, before, across and after the restart, reaches the
        # subscriber whose session the broker kept
        wait_until(lambda: set(acked) <= sub.received(), 15,
                   what="every acknowledged mask at the persistent subscriber")
        # the outage's frames: the newest outbox_size of them delivered after the
        # reconnect, the older ones counted
        assert totals.dropped["outbox_full"] >= 1
        outage = [f for f in acked[before:] if f < reconnected_at]
        assert len(outage) >= 8, "the outbox's frames were not delivered after the restart"
        assert pipeline.metrics.mqtt_reconnects.value >= 2
    finally:
        sub.close()
        broker.stop()
