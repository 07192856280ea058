"""Real services for tests: free loopback ports, Debian's Mosquitto, a plain paho subscriber.

Everything binds to 127.0.0.1 on free ports; callers stop what they start (the fixtures in
tests/conftest.py do it even when a test fails).
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from edgeseg.demo import find_mosquitto


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _stop(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def mosquitto_binary() -> str | None:
    return find_mosquitto()


class Mosquitto:
    """Debian's mosquitto on a free loopback port; stop/start keep the port.

    ``extra`` lines are appended to the config; with ``persistence true`` among them the
    state directory is ``workdir``, so a stop (SIGTERM: Mosquitto saves its state) and a
    start is a broker restart that keeps sessions and queued QoS 1/2 messages.
    """

    def __init__(self, workdir: Path, extra: str = "") -> None:
        self.port = free_port()
        self.conf = workdir / "mosquitto.conf"
        # as root, Mosquitto would switch to user mosquitto, who cannot write its state
        # into pytest's 0700 folders
        user = f"user {getpass.getuser()}\n" if os.geteuid() == 0 else ""
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                             f"persistence_location {workdir}/\n{user}{extra}\n")
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("a") as log:
            self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)],
                                         stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port)

    def stop(self) -> None:
        _stop(self.proc)


class Recorder:
    """Records every message under a prefix with its MQTT 5 properties and arrival time;
    ``subscribed`` is set once the broker has acknowledged the subscription (SUBACK)."""

    def __init__(self, broker_port: int, prefix: str = "edgeseg/#") -> None:
        self.messages: list[dict] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(prefix, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", broker_port, keepalive=5)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg) -> None:
        props = getattr(msg, "properties", None)
        record = {"topic": msg.topic, "payload": msg.payload, "retain": bool(msg.retain),
                  "received": time.time(),
                  "content_type": getattr(props, "ContentType", None),
                  "user": dict(getattr(props, "UserProperty", []) or [])}
        with self.lock:
            self.messages.append(record)

    def of(self, kind: str) -> list[dict]:
        with self.lock:
            return [m for m in self.messages if m["topic"].endswith("/" + kind)]

    def statuses(self) -> list[str]:
        return [m["payload"].decode() for m in self.of("status")]

    def metas(self) -> list[dict]:
        return [json.loads(m["payload"]) for m in self.of("meta")]

    def close(self) -> None:
        self.client.disconnect()  # first, so the network thread wakes up and ends at once
        self.client.loop_stop()
