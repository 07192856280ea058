"""The agent's loops joined by bounded queues — capture -> inference -> encode -> publish.

    Capture ──frames(1, drop oldest)──> InferenceLoop ──results(N, drop oldest)──> encode
        ──> Publisher.outbox(M, drop oldest) ──> paho

Contract: :class:`Pipeline` builds the parts from one :class:`AgentConfig` and owns their
lifecycle. :meth:`run` blocks until :meth:`stop` is called (SIGTERM), the file source
ends, ``max_frames`` masks were encoded, or a loop dies of a bug (exit status 1 then);
then it shuts down in data order — capture
stops, in-flight Predict calls finish (bounded by the deadline), queued masks are
encoded and flushed, ``offline`` is published — and returns 0. Every queue is bounded.
Every frame is entered in the ledger (:mod:`edgeseg.agent.ledger`) as it enters the frame
slot and settled once — acknowledged by the broker, or dropped with the reason of the
stage that dropped it; at exit what is left is dropped as ``shutdown`` and the totals are
logged as one line. Masks go out in frame order: a pipelined reply that arrives after a
newer frame's mask was published is dropped (reason ``stale``). This module only wires:
replies arrive decoded (:mod:`~edgeseg.agent.inference`), messages are built by
:mod:`~edgeseg.agent.messages`, and policy lives in the parts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.agent.broker import read_password
from edgeseg.agent.capture import Capture, Frame
from edgeseg.agent.config import AgentConfig
from edgeseg.agent.inference import InferenceLoop, Result
from edgeseg.agent.ledger import LedgerFile
from edgeseg.agent.messages import Encoded, Message, build_messages
from edgeseg.agent.metrics import AgentMetrics, MetricsServer
from edgeseg.agent.preview import FrameTap, PreviewTap
from edgeseg.agent.publisher import Publisher
from edgeseg.agent.queues import Closed, DropOldestQueue
from edgeseg.agent.sources import redact
from edgeseg.agent.watchdog import Watchdog
from edgeseg.errors import EdgesegError, InvalidArgument

# observer(frame, class_map, meta): see Pipeline.add_observer
Observer = Callable[[Frame, np.ndarray, dict[str, Any]], None]

log = logging.getLogger("edgeseg.agent")


def read_labels(path: Path | None) -> list[str]:
    if path is None:
        return []
    try:
        return [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]
    except OSError as exc:
        raise InvalidArgument(f"labels_file: cannot read {path}: {exc.strerror}") from None


class Pipeline:
    def __init__(self, cfg: AgentConfig, env: dict[str, str] | None = None) -> None:
        self.cfg = cfg
        self.metrics = m = AgentMetrics()
        self.stop_event = threading.Event()
        self.labels = read_labels(cfg.labels_file)
        self.watchdog = Watchdog(cfg.health.stall_s, env)
        self.ledger = ledger = m.ledger
        self.ledger_file = LedgerFile(cfg.health.ledger_file) if cfg.health.ledger_file else None
        if self.ledger_file is not None:
            ledger.listeners.append(self.ledger_file)
        self.frames: DropOldestQueue[Frame] = DropOldestQueue(
            1, on_put=lambda f: ledger.enter(f.id),
            on_drop=lambda f: ledger.drop(f.id, "capture_overwritten"))
        self.results: DropOldestQueue[Result] = DropOldestQueue(
            cfg.result_queue, on_drop=lambda r: ledger.drop(r.frame.id, "result_overwritten"))
        self.publisher = Publisher(cfg.mqtt, cfg.topic_prefix,
                                   cfg.mqtt.client_id or f"edgeseg-{cfg.device_id}-{cfg.camera}",
                                   m, read_password(cfg.mqtt, env), on_status=self._mqtt_status)
        self.capture = Capture(cfg.source, self.frames, self.stop_event, m,
                               on_state=self._source_state, on_frame=self.watchdog.frame_seen)
        self.inference = InferenceLoop(cfg.server, self.frames, self.results, m)
        self.metrics_server: MetricsServer | None = None
        self.encoded = 0
        self.last_frame_id = -1
        self.failed = False
        self._observers: list[Observer] = []
        self._encoder = threading.Thread(target=self._encode_loop, name="encode", daemon=True)
        self.preview: PreviewTap | None = None
        if cfg.preview.port is not None:
            self.preview = PreviewTap(cfg.preview, self.labels, cfg.topic_prefix)
            self.add_observer(self.preview)
        if cfg.preview.publish_frames_fps:
            self.add_observer(FrameTap(cfg.preview.publish_frames_fps, cfg.topic_prefix,
                                       self.publisher))

    def _source_state(self, up: bool) -> None:
        self.publisher.set_available(up)
        # redacted: sd_notify STATUS= is readable by every local user (systemctl status)
        self.watchdog.status("publishing masks" if up
                           else f"source {redact(self.cfg.source.uri)} lost")

    def _mqtt_status(self, state: str, why: str) -> None:
        self.watchdog.status(f"degraded: {why}" if state == "degraded" else "publishing masks")

    def _acknowledged(self, messages: list[Message]) -> None:
        captured = messages[0].captured_mono
        if captured is not None:
            self.metrics.latency["total"].observe(time.monotonic() - captured)
        self.watchdog.mask_published()

    def _encode_loop(self) -> None:
        try:
            self._encode_all()
        except Exception:
            log.exception("agent: the encode loop failed")
            self.failed = True
            self.stop_event.set()

    def _encode_all(self) -> None:
        while True:
            try:
                result = self.results.get(timeout=0.5)
            except Closed:
                return
            if result is None:
                continue
            if self.cfg.max_frames and self.encoded >= self.cfg.max_frames:
                self.ledger.drop(result.frame.id, "shutdown")  # after the last wanted frame
                continue
            if result.frame.id <= self.last_frame_id:
                # pipelined replies can come back out of order; a mask older than one
                # already published would move subscribers back in time
                self.ledger.drop(result.frame.id, "stale")
                continue
            self.last_frame_id = result.frame.id
            try:
                encoded = build_messages(self.cfg, result.frame, result.class_map,
                                         result.version, self.labels)
            except EdgesegError as exc:
                log.error("agent: dropping a reply: %s", exc.message)
                self.ledger.drop(result.frame.id, "inference_error")
                continue
            for stage in ("queue", "inference", "postprocess"):
                self.metrics.latency[stage].observe(result.frame.timings.get(stage, 0.0))
            self.publisher.publish(encoded.messages, result.frame.id)
            self._notify_observers(result.frame, encoded)
            self.encoded += 1
            if self.cfg.max_frames and self.encoded >= self.cfg.max_frames:
                log.info("agent: %d masks encoded (max_frames); stopping", self.encoded)
                self.stop_event.set()

    def add_observer(self, observer: Observer) -> None:
        """Call ``observer(frame, class_map, meta)`` for every mask handed to MQTT — the seam
        for a live preview. It runs on the encode thread: it must return at once (copy into
        its own drop-oldest slot and do the work elsewhere); an exception is logged."""
        self._observers.append(observer)

    def _notify_observers(self, frame: Frame, encoded: Encoded) -> None:
        for observer in self._observers:
            try:
                observer(frame, encoded.class_map, encoded.meta)
            except Exception:  # a preview bug must not stop the agent
                log.exception("agent: observer %r failed", observer)

    def start(self) -> None:
        hc = self.cfg.health
        if hc.metrics_port is not None:
            self.metrics_server = MetricsServer(self.metrics, hc.metrics_host, hc.metrics_port)
            self.metrics_server.start()
            log.info("agent: metrics on http://%s:%d/metrics", hc.metrics_host,
                     self.metrics_server.port)
        if self.preview is not None:
            self.preview.start()
        self.watchdog.start()
        self.publisher.start(on_acknowledged=self._acknowledged)
        self.inference.start()
        self._encoder.start()
        self.capture.start()

    def stop(self) -> None:
        """Ask run() to finish; safe from a signal handler or any thread."""
        self.stop_event.set()

    def run(self) -> int:
        """0 after a stop, the end of a file or max_frames; 1 if a loop died of a bug (so
        systemd's Restart=on-failure restarts the agent)."""
        self.start()
        while not self.stop_event.is_set() and self._encoder.is_alive():
            self._encoder.join(0.2)
        self.shutdown()
        failed = self.failed or self.capture.failed or self.inference.failed
        return 1 if failed else 0

    def shutdown(self) -> None:
        self.stop_event.set()
        self.capture.join(self.cfg.source.read_timeout_s + 1)
        self.inference.join(self.cfg.server.deadline_s + 2)
        self._encoder.join(5)
        self.watchdog.stopping()
        self.publisher.close(timeout=5.0)
        if self.preview is not None:
            self.preview.close()
        self.inference.close()
        totals = self.ledger.close("shutdown")  # what no stage settled in time
        if self.ledger_file is not None:
            self.ledger_file.close()
        if self.metrics_server is not None:
            self.metrics_server.close()
        log.info("agent: stopped; %s", totals.line())
