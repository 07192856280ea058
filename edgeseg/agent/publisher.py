"""MQTT publishing: a bounded outbox, retained status with a Last Will, automatic reconnects.

Contract:

* :meth:`Publisher.publish` is called by the pipeline with one frame's messages (mask +
  meta) and never blocks: they go into a bounded outbox; when it is full the OLDEST
  frame's messages are dropped and counted (metric ``frames_dropped{reason="outbox"}``),
  so a broker outage costs bounded memory and the newest masks go out first after it.
* One sender thread moves the outbox to paho while connected. paho's network thread
  (``connect_async`` + ``loop_start``, which retries the first connection too) runs
  the callbacks; paho's own queue is capped as well.
* ``<prefix>/status`` is retained: the broker's Last Will sets ``offline`` when the agent
  vanishes, and every (re)connect publishes the current state — ``online`` while the
  source delivers frames, ``offline`` while it is lost (:meth:`set_available`). A failed
  connect is never taken for a connection (Frigate's bug): only a successful CONNACK
  marks the client connected.
* :meth:`close` flushes what it can within a time limit, publishes ``offline``, waits
  for it, and disconnects cleanly (so the broker does not fire the will as well).
* Passwords come from a file or the environment (:func:`read_password`), never argv.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgeseg.agent.config import MqttConfig
from edgeseg.agent.queues import Closed, DropOldestQueue
from edgeseg.errors import InvalidArgument

log = logging.getLogger("edgeseg.agent.publisher")

ONLINE, OFFLINE = b"online", b"offline"


@dataclass
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool = False
    content_type: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    captured_mono: float | None = None  # for the capture-to-publish latency

    def properties(self) -> Properties | None:
        if not self.content_type and not self.user_properties:
            return None
        props = Properties(PacketTypes.PUBLISH)
        if self.content_type:
            props.ContentType = self.content_type
        if self.user_properties:
            props.UserProperty = list(self.user_properties)
        return props


def read_password(cfg: MqttConfig, env: dict[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    if cfg.password_env:
        if cfg.password_env not in env:
            raise InvalidArgument(f"mqtt.password_env: ${cfg.password_env} is not set")
        return env[cfg.password_env]
    if cfg.password_file:
        try:
            return cfg.password_file.read_text("utf-8").splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise InvalidArgument(f"mqtt.password_file: cannot read {cfg.password_file}: "
                                  f"{getattr(exc, 'strerror', None) or 'empty'}") from None
    return None


class Publisher:
    def __init__(self, cfg: MqttConfig, prefix: str, client_id: str, metrics,
                 password: str | None = None) -> None:
        self.cfg, self.prefix, self.metrics = cfg, prefix, metrics
        self.status_topic = f"{prefix}/status"
        self.outbox: DropOldestQueue[list[Message]] = DropOldestQueue(
            cfg.outbox_size, on_drop=lambda item: metrics.drop("outbox"))
        self.available = True
        self.connected = threading.Event()
        self._last_info: mqtt.MQTTMessageInfo | None = None
        self._closed = False
        self._on_published = None  # optional callback after a frame's messages went to paho
        self._client = self._make_client(client_id, password)
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)

    def _make_client(self, client_id: str, password: str | None) -> mqtt.Client:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)
        client.will_set(self.status_topic, OFFLINE, qos=self.cfg.qos_status, retain=True)
        if self.cfg.username:
            client.username_pw_set(self.cfg.username, password)
        if self.cfg.tls is not None:
            tls = self.cfg.tls
            client.tls_set(ca_certs=str(tls.ca_file) if tls.ca_file else None,
                           certfile=str(tls.cert_file) if tls.cert_file else None,
                           keyfile=str(tls.key_file) if tls.key_file else None)
        client.reconnect_delay_set(max(1, int(self.cfg.reconnect_min_s)),
                                   max(1, int(self.cfg.reconnect_max_s)))
        client.max_queued_messages_set(self.cfg.outbox_size * 2)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        return client

    def start(self, on_published=None) -> None:
        self._on_published = on_published
        host, _, port = self.cfg.address.rpartition(":")
        self._client.connect_async(host.strip("[]"), int(port), keepalive=self.cfg.keepalive_s,
                                   clean_start=True)
        self._client.loop_start()
        self._sender.start()

    # -- paho's network thread --

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.warning("mqtt: broker %s refused the connection: %s", self.cfg.address,
                        reason_code)
            return
        self.metrics.mqtt_reconnects.inc()
        self.metrics.mqtt_connected.set(1)
        log.info("mqtt: connected to %s", self.cfg.address)
        self._publish_status(client)
        self.connected.set()

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected.clear()
        self.metrics.mqtt_connected.set(0)
        if self._closed:
            log.info("mqtt: disconnected from %s", self.cfg.address)
        else:
            log.warning("mqtt: disconnected from %s (%s); reconnecting", self.cfg.address,
                        reason_code)

    def _publish_status(self, client) -> mqtt.MQTTMessageInfo:
        payload = ONLINE if self.available else OFFLINE
        msg = Message(self.status_topic, payload, self.cfg.qos_status, True, "text/plain")
        return client.publish(msg.topic, msg.payload, msg.qos, msg.retain, msg.properties())

    # -- the pipeline's side --

    def publish(self, messages: list[Message]) -> None:
        self.outbox.put(messages)

    def set_available(self, up: bool) -> None:
        """Status online/offline as the source comes and goes (retained; re-sent on connect)."""
        if up == self.available:
            return
        self.available = up
        if self.connected.is_set():
            self._publish_status(self._client)

    def _send_loop(self) -> None:
        while True:
            if not self.connected.wait(0.2):
                if self.outbox.closed:
                    return  # closing while the broker is away: what is left is lost
                continue
            try:
                messages = self.outbox.get(timeout=0.2)
            except Closed:
                return
            if messages is not None:
                self._send(messages)

    def _send(self, messages: list[Message]) -> None:
        ok = True
        for msg in messages:
            info = self._client.publish(msg.topic, msg.payload, msg.qos, msg.retain,
                                        msg.properties())
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                ok = False
                self.metrics.publish_failures.inc()
                log.debug("mqtt: publish to %s failed: %s", msg.topic, mqtt.error_string(info.rc))
            self._last_info = info
        if ok and self._on_published is not None:
            self._on_published(messages)

    def close(self, timeout: float = 5.0) -> None:
        """Flush (within ``timeout``), publish offline, disconnect; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        self.outbox.close()
        while self._sender.is_alive() and time.monotonic() < deadline:
            if not self.connected.is_set() and len(self.outbox) == 0:
                break
            self._sender.join(0.05)
        self.available = False
        if self.connected.is_set():
            for info in (self._last_info, self._publish_status(self._client)):
                if info is not None and info.rc == mqtt.MQTT_ERR_SUCCESS:
                    try:
                        info.wait_for_publish(max(0.1, deadline - time.monotonic()))
                    except (RuntimeError, ValueError):
                        pass
        self._client.disconnect()
        self._client.loop_stop()
        self.metrics.mqtt_connected.set(0)
