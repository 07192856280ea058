"""MQTT publishing: a bounded outbox, the outcome of every message, status with a Last Will.

Contract:

* :meth:`Publisher.publish` is called by the pipeline with one frame's messages (mask +
  meta; ``frame_id`` given) or with extra messages (preview frames; no id) and never
  blocks: they go into a bounded outbox; when it is full the OLDEST item is dropped
  (the frame's ledger reason: ``outbox_full``), so a broker outage costs bounded memory
  and the newest masks go out first after it.
* One sender thread hands the outbox to paho while connected, at most ``outbox_size``
  frames' worth of messages awaiting their outcome at once. paho's network thread
  (``connect_async`` + ``loop_start``) runs the callbacks. Each message's outcome comes
  back in ``on_publish`` (callback API 2): QoS 0 when written to the socket, QoS 1 at
  PUBACK, QoS 2 at PUBCOMP, with the broker's reason code. A frame is settled in the
  ledger when every message of it has an outcome: acknowledged if the broker accepted
  them all, ``broker_refused`` if it refused any (reason code >= 0x80), else the client's
  reason (``outbox_full`` for paho's queue, ``connection_lost`` for a QoS 0 message the
  connection took with it). QoS 1/2 messages unacknowledged at a disconnect stay with
  paho, which sends them again after the reconnect.
* Refusals are counted by reason (``publish_failures_total{reason}``); the first is
  logged once with reason and topic, later ones at most once a minute. After
  ``mqtt.degraded_after`` frames refused in a row the status is ``degraded`` (retained
  topic, ``/metrics``, ``on_status``) until a frame is accepted again.
* The session is MQTT 5 with clean start off and ``SessionExpiryInterval`` =
  ``mqtt.session_expiry_s``, so a broker that persists sessions resumes it after a restart.
* ``<prefix>/status`` is retained: the broker's Last Will sets ``offline`` when the agent
  vanishes, and every (re)connect publishes the current state — ``online``, ``degraded``,
  or ``offline`` while the source is lost (:meth:`set_available`). Only a successful
  CONNACK marks the client connected; a refused login is logged once, with its cause.
* :meth:`close` flushes what it can within a time limit, publishes ``offline``, waits
  for it, disconnects cleanly (so the broker does not fire the will as well), and drops
  every frame still unsettled as ``shutdown``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgeseg import mqtt_contract as contract
from edgeseg.agent import broker
from edgeseg.agent.config import MqttConfig
from edgeseg.agent.messages import Message
from edgeseg.agent.metrics import AgentMetrics
from edgeseg.agent.queues import Closed, DropOldestQueue

log = logging.getLogger("edgeseg.agent.publisher")

REFUSAL_LOG_INTERVAL_S = 60.0


@dataclass
class Outgoing:
    """One outbox item: a frame's messages (frame_id set) or extra ones (None)."""

    messages: list[Message]
    frame_id: int | None = None
    waiting: int = 0
    refused: str | None = None  # the broker's reason, if it refused any message
    lost: str | None = None  # the ledger reason, if the client lost a message


class Publisher:
    def __init__(self, cfg: MqttConfig, prefix: str, client_id: str, metrics: AgentMetrics,
                 password: str | None = None,
                 on_status: Callable[[str, str], None] | None = None) -> None:
        self.cfg, self.prefix, self.metrics = cfg, prefix, metrics
        self.ledger = metrics.ledger
        self.status_topic = contract.Topics(prefix).status
        self.outbox: DropOldestQueue[Outgoing] = DropOldestQueue(
            cfg.outbox_size, on_drop=lambda item: self._lost_all(item, "outbox_full"))
        self.available = True
        self.degraded = False
        self.connected = threading.Event()
        self.on_status = on_status or (lambda state, why: None)
        self._lock = threading.Lock()
        self._tracked: dict[int, tuple[Outgoing, Message]] = {}  # mid -> awaiting outcome
        self._early: dict[int, ReasonCode] = {}  # outcomes that beat publish() returning the mid
        self._generation = 0  # connections lost so far
        self._refused_frames = 0  # frames refused in a row
        self._refusals_unlogged = 0
        self._refusal_logged_at: float | None = None
        self._login_problem: str | None = None
        self._closed = False
        self._on_acknowledged: Callable[[list[Message]], None] | None = None
        self._client = self._make_client(client_id, password)
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)

    def _make_client(self, client_id: str, password: str | None) -> mqtt.Client:
        client = broker.make_client(self.cfg, client_id, password)
        client.will_set(self.status_topic, contract.Status.OFFLINE.payload,
                        qos=self.cfg.qos_status, retain=True)
        # paho's queue is bounded by the sender instead (_wait_for_room): a full paho queue
        # would refuse a message of a frame whose other message it took
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def start(self, on_acknowledged: Callable[[list[Message]], None] | None = None) -> None:
        self._on_acknowledged = on_acknowledged
        host, port = broker.split_address(self.cfg.address)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.cfg.session_expiry_s
        self._client.connect_async(host, port, keepalive=self.cfg.keepalive_s,
                                   clean_start=False, properties=props)
        self._client.loop_start()
        self._sender.start()

    # -- paho's network thread --

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, _properties: Properties | None) -> None:
        if reason_code.is_failure:
            problem = broker.refusal(self.cfg.address, reason_code)
            level = logging.DEBUG if problem == self._login_problem else logging.ERROR
            log.log(level, "mqtt: %s; retrying", problem)
            self._login_problem = problem
            return
        self._login_problem = None
        self.metrics.mqtt_reconnects.inc()
        self.metrics.mqtt_connected.set(1)
        log.info("mqtt: connected to %s", self.cfg.address)
        self._publish_status(client)
        self.connected.set()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        problem = f"cannot reach the MQTT broker at {self.cfg.address}"
        level = logging.DEBUG if problem == self._login_problem else logging.WARNING
        log.log(level, "mqtt: %s; retrying", problem)
        self._login_problem = problem

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any,
                       _flags: mqtt.DisconnectFlags, reason_code: ReasonCode,
                       _properties: Properties | None) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        self.metrics.mqtt_connected.set(0)
        with self._lock:
            self._generation += 1
            lost = [(mid, entry) for mid, entry in self._tracked.items() if entry[1].qos == 0]
            for mid, _ in lost:
                del self._tracked[mid]
        for _, (item, msg) in lost:  # never written: paho forgets QoS 0 packets on reconnect
            self._outcome(item, msg, lost="connection_lost")
        if self._closed:
            log.info("mqtt: disconnected from %s", self.cfg.address)
        elif was_connected:
            log.warning("mqtt: disconnected from %s (%s); reconnecting", self.cfg.address,
                        reason_code)
        elif self._login_problem is None:  # e.g. mutual TLS without a client certificate
            self._login_problem = (f"the broker at {self.cfg.address} closed the connection "
                                   f"before accepting a session ({reason_code})")
            log.error("mqtt: %s; if it requires a client certificate, check mqtt.tls "
                      "(cert_file, key_file), else the broker's log; retrying",
                      self._login_problem)
        else:  # the refused login was logged by _on_connect, with its cause
            log.debug("mqtt: connection closed before a session (%s)", reason_code)

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int,
                    reason_code: ReasonCode, _properties: Properties) -> None:
        with self._lock:
            entry = self._tracked.pop(mid, None)
            if entry is None:
                self._early[mid] = reason_code
                return
        self._outcome(*entry, reason_code=reason_code)

    # -- message outcomes (either thread) --

    def _send_message(self, item: Outgoing, msg: Message) -> None:
        with self._lock:
            generation = self._generation
        info = self._client.publish(msg.topic, msg.payload, msg.qos, msg.retain,
                                    msg.properties())
        self.metrics.publishes.inc()
        kept = info.rc == mqtt.MQTT_ERR_SUCCESS or (
            info.rc == mqtt.MQTT_ERR_NO_CONN and msg.qos > 0)  # paho sends it after reconnect
        if not kept:
            lost = "outbox_full" if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE else "connection_lost"
            log.debug("mqtt: publish to %s failed: %s", msg.topic, mqtt.error_string(info.rc))
            self._outcome(item, msg, lost=lost)
            return
        with self._lock:
            if info.mid in self._early:
                early = self._early.pop(info.mid)
            elif msg.qos == 0 and generation != self._generation:
                early = None  # the connection went before the packet was written
            else:
                self._tracked[info.mid] = (item, msg)
                return
        if early is None:
            self._outcome(item, msg, lost="connection_lost")
        else:
            self._outcome(item, msg, reason_code=early)

    def _outcome(self, item: Outgoing, msg: Message, reason_code: ReasonCode | None = None,
                 lost: str | None = None) -> None:
        refused = lost is None and reason_code is not None and reason_code.is_failure
        if lost is not None:
            self.metrics.publish_failures.labels(lost).inc()
        elif refused and reason_code is not None:  # refused implies a reason code
            self.metrics.publish_failures.labels(str(reason_code)).inc()
            self._log_refusal(msg.topic, reason_code)
        with self._lock:  # outcomes of one frame's messages may come from two threads
            if lost is not None:
                item.lost = item.lost or lost
            elif refused:
                item.refused = item.refused or str(reason_code)
            item.waiting -= 1
            if item.waiting > 0:
                return
        self._settle(item)

    def _lost_all(self, item: Outgoing, reason: str) -> None:
        """Every message of an item that never reached paho (outbox drop, shutdown)."""
        self.metrics.publish_failures.labels(reason).inc(len(item.messages))
        if item.frame_id is not None:
            self.ledger.drop(item.frame_id, reason)

    def _settle(self, item: Outgoing) -> None:
        if item.frame_id is None:
            return
        if item.refused is not None:
            self.ledger.drop(item.frame_id, "broker_refused")
            self._frame_refused(item)
        elif item.lost is not None:
            self.ledger.drop(item.frame_id, item.lost)
        else:
            self.ledger.acknowledge(item.frame_id)
            self._frame_accepted()
            if self._on_acknowledged is not None:
                self._on_acknowledged(item.messages)

    # -- refusals and the degraded status --

    def _log_refusal(self, topic: str, reason_code: ReasonCode) -> None:
        now = time.monotonic()
        with self._lock:
            due = (self._refusal_logged_at is None
                   or now - self._refusal_logged_at >= REFUSAL_LOG_INTERVAL_S)
            if not due:
                self._refusals_unlogged += 1
                return
            first, more = self._refusal_logged_at is None, self._refusals_unlogged
            self._refusal_logged_at, self._refusals_unlogged = now, 0
        if first:
            log.warning("mqtt: the broker refused a publish to %s: %s (reason code %d); "
                        "refused frames are dropped and counted (broker_refused), repeats "
                        "are logged at most once a minute", topic, reason_code,
                        reason_code.value)
        else:
            log.warning("mqtt: the broker refused %d more publishes, latest to %s: %s",
                        more + 1, topic, reason_code)

    def _frame_refused(self, item: Outgoing) -> None:
        with self._lock:
            self._refused_frames += 1
            newly = not self.degraded and self._refused_frames >= self.cfg.degraded_after
            if newly:
                self.degraded = True
        if newly:
            why = (f"the broker refused the last {self._refused_frames} frames "
                   f"({item.refused} on {item.messages[0].topic})")
            log.error("mqtt: status degraded: %s", why)
            self._status_changed(why)

    def _frame_accepted(self) -> None:
        with self._lock:
            self._refused_frames = 0
            recovered = self.degraded
            self.degraded = False
        if recovered:
            log.warning("mqtt: the broker accepts the agent's frames again; status online")
            self._status_changed("the broker accepts frames again")

    def state(self) -> str:
        if not self.available:
            return contract.Status.OFFLINE.value
        status = contract.Status.DEGRADED if self.degraded else contract.Status.ONLINE
        return status.value

    def _status_changed(self, why: str) -> None:
        state = self.state()
        self.metrics.set_status(state)
        if self.connected.is_set():
            self._publish_status(self._client)
        self.on_status(state, why)

    def _publish_status(self, _client: mqtt.Client) -> None:
        msg = Message(self.status_topic, contract.Status(self.state()).payload,
                      self.cfg.qos_status, True, contract.CONTENT_TYPES[contract.STATUS])
        self._send_message(Outgoing([msg], waiting=1), msg)

    # -- the pipeline's side --

    def publish(self, messages: list[Message], frame_id: int | None = None) -> None:
        self.outbox.put(Outgoing(messages, frame_id))

    def set_available(self, up: bool) -> None:
        """Status online/offline as the source comes and goes (retained; re-sent on connect)."""
        if up == self.available:
            return
        self.available = up
        self.metrics.set_status(self.state())
        if self.connected.is_set():
            self._publish_status(self._client)

    def unsettled(self) -> int:
        """Messages handed to paho whose outcome has not come back."""
        with self._lock:
            return len(self._tracked)

    def _send_loop(self) -> None:
        while True:
            if not self.connected.wait(0.2):
                if self.outbox.closed:
                    return  # closing while the broker is away: close() counts what is left
                continue
            try:
                item = self.outbox.get(timeout=0.2)
            except Closed:
                return
            if item is not None and not self.connected.is_set():
                # taken just as the connection went (the wait above passed before it did):
                # published now, its QoS 0 messages would be lost; it waits for the next one
                self.outbox.put_back(item)
            elif item is not None:
                self._wait_for_room(len(item.messages))
                item.waiting = len(item.messages)
                for msg in item.messages:
                    self._send_message(item, msg)

    def _wait_for_room(self, count: int) -> None:
        """Hold the sender while paho has outbox_size frames' worth of messages without an
        outcome (a broker slower than the camera, or one that went away): frames then wait
        in the outbox, whose drop-oldest rule is the one bound."""
        limit = max(2, self.cfg.outbox_size * 2)
        while self.unsettled() + count > limit and not self._closed:
            time.sleep(0.005)

    def close(self, timeout: float = 5.0) -> None:
        """Flush (within ``timeout``), publish offline, disconnect; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        self.outbox.close()
        while time.monotonic() < deadline:
            if not self.connected.is_set() and len(self.outbox) == 0:
                break
            if not self._sender.is_alive() and self.unsettled() == 0:
                break
            self._sender.join(0.05)
        self.available = False
        self.metrics.set_status(contract.Status.OFFLINE.value)
        if self.connected.is_set():
            self._publish_status(self._client)
            while self.unsettled() and time.monotonic() < deadline:
                time.sleep(0.02)
        self._client.disconnect()
        self._client.loop_stop()
        self.metrics.mqtt_connected.set(0)
        self._sender.join(1.0)
        for item in self.outbox.take_all():
            self._lost_all(item, "shutdown")
        with self._lock:
            left, self._tracked = list(self._tracked.values()), {}
        for item, msg in left:
            self._outcome(item, msg, lost="shutdown")
        failed = self.metrics.publish_failures
        reasons = ", ".join(f"{r}={n:g}" for (r,), n in failed.items()) or "none"
        log.info("mqtt: closed; %d messages sent, %d not accepted (%s)",
                 self.metrics.publishes.value, failed.total(), reasons)
