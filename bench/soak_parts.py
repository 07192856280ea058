"""The soak's moving parts: child processes it starts, kills and samples, and the subscriber.

Contract: :class:`Child` is one service (a command line, a log file); it can be started
again after a stop or a kill, and every start is one *incarnation* (pid, start time).
:class:`Sampler` reads RSS, open file descriptors and threads of every live child from
/proc. :class:`Subscriber` is a plain paho client with a persistent MQTT 5 session that
records every mask's and meta's frame id per camera, duplicates included.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from edgeseg import mqtt_contract as contract
from edgeseg.errors import InvalidArgument


@dataclass
class Child:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen | None = None
    starts: int = 0
    expected_exits: int = 0
    unexpected: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a") as out:
            out.write(f"\n=== start {self.starts + 1} at {time.time():.3f} ===\n")
            out.flush()
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env={**os.environ, **(self.env or {})})
        self.starts += 1

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def check(self) -> None:
        """Record an exit nobody asked for (once per incarnation)."""
        if self.proc is not None and self.proc.poll() is not None:
            self.unexpected.append(f"{self.name} exited with {self.proc.returncode}")
            self.proc = None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Stop on purpose (a scheduled fault or the end of the run)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        self.expected_exits += 1
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode


def proc_sample(pid: int) -> dict[str, int] | None:
    """RSS (kB), open fds and threads of one process, or None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_kb": int(fields["VmRSS"].split()[0]), "fds": fds,
            "threads": int(fields["Threads"].strip())}


class Subscriber:
    """Every mask and meta of ``edgeseg/<device>/+``, recorded by camera and frame id."""

    def __init__(self, port: int, device: str, log: Path) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.lock = threading.Lock()
        self.masks: dict[str, Counter[int]] = defaultdict(Counter)
        self.metas: dict[str, Counter[int]] = defaultdict(Counter)
        self.log = log.open("a")
        self.topic = contract.Topics(f"edgeseg/{device}/+").wildcard
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="soak-subscriber",
                                  protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1.0)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600  # the broker keeps our queue across our absence
        self.client.connect_async("127.0.0.1", port, keepalive=10, clean_start=False,
                                  properties=props)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe(self.topic, qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        try:
            prefix, kind = contract.Topics.parse(msg.topic)
        except InvalidArgument:
            return
        camera = prefix.rsplit("/", 1)[-1]
        if kind not in (contract.MASK, contract.META):
            return
        if kind == contract.META:
            frame_id = int(json.loads(msg.payload)["frame_id"])
        else:
            props = dict(getattr(msg.properties, "UserProperty", []) or [])
            frame_id = int(props.get("frame_id", -1))
        with self.lock:
            (self.masks if kind == contract.MASK else self.metas)[camera][frame_id] += 1
            self.log.write(f"{time.time():.3f} {camera} {kind} {frame_id}\n")

    def count(self) -> int:
        with self.lock:
            return sum(sum(c.values()) for c in self.masks.values())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self.log.close()
