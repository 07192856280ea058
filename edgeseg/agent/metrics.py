"""The agent's metrics, registered in edgeseg/metrics.py's registry, and their page.

Contract: every family is thread-safe (edgeseg/metrics.py). Where frames end up is not
counted here but in :class:`~edgeseg.agent.ledger.Ledger` (``metrics.ledger``); its totals
are collected at scrape time from one :meth:`~edgeseg.agent.ledger.Ledger.snapshot` per
page, so captured = acknowledged + dropped + in flight holds on every page.
:meth:`AgentMetrics.render` returns the Prometheus text exposition format 0.0.4;
:class:`MetricsServer` (edgeseg/metrics.py's) serves it at ``/metrics`` from a daemon
thread, bound to 127.0.0.1 unless configured otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

from edgeseg.agent.ledger import Ledger, Snapshot
from edgeseg.metrics import Collect, Counter, Gauge, Histogram, MetricsServer, Registry

__all__ = ["AgentMetrics", "MetricsServer"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_P = "edgeseg_agent_"


class AgentMetrics:
    STAGES = ("queue", "inference", "postprocess", "total")
    STATES = ("online", "offline", "degraded")

    def __init__(self) -> None:
        self.registry = r = Registry()
        self.ledger = Ledger()
        self._register_ledger()
        self.source_frames = r.add(Counter(_P + "source_frames_total",
                                           "Frames the capture thread read and handed on."))
        self.frames_processed = r.add(Counter(_P + "frames_processed_total",
                                              "Frames whose mask came back from the server."))
        latency = r.add(Histogram(_P + "stage_latency_seconds",
                                  "Per-stage latency (total = capture to acknowledged).",
                                  ("stage",), _LATENCY_BUCKETS))
        self.latency = {s: latency.labels(s) for s in self.STAGES}
        self.publishes = r.add(Counter(_P + "publishes_total",
                                       "MQTT messages handed to the client."))
        self.publish_failures = r.add(Counter(
            _P + "publish_failures_total", "MQTT messages not accepted, by reason (the "
            "broker's reason code, or the client's).", ("reason",)))
        self.inference_errors = r.add(Counter(_P + "inference_errors_total",
                                              "Predict calls that failed."))
        self.source_reconnects = r.add(Counter(_P + "source_reconnects_total",
                                               "Attempts to (re)open the source."))
        self.mqtt_reconnects = r.add(Counter(_P + "mqtt_connects_total",
                                             "Connections to the broker."))
        self.source_up = r.add(Gauge(_P + "source_up", "1 while the source delivers frames."))
        self.mqtt_connected = r.add(Gauge(_P + "mqtt_connected",
                                          "1 while connected to the broker."))
        self.in_flight = r.add(Gauge(_P + "requests_in_flight",
                                     "Predict calls awaiting a reply."))
        status = r.add(Gauge(_P + "status", "1 for the agent's current <prefix>/status "
                             "(online, offline, degraded).", ("status",)))
        self.status = {s: status.labels(s) for s in self.STATES}
        self.set_status("online")

    def _register_ledger(self) -> None:
        r, p = self.registry, _P + "frames_"
        snap = r.per_scrape(self.ledger.snapshot)

        def one(read: Callable[[Snapshot], float]) -> Collect:
            return lambda: [((), read(snap()))]

        r.add(Counter(p + "captured_total", "Frames that entered the pipeline (docs/mqtt.md).",
                      collect=one(lambda s: s.captured)))
        r.add(Counter(p + "acknowledged_total", "Frames whose messages the broker accepted.",
                      collect=one(lambda s: s.acknowledged)))
        r.add(Counter(p + "dropped_total", "Frames dropped, by reason "
                      "(captured = acknowledged + dropped + in flight).", ("reason",),
                      collect=lambda: [((k,), n) for k, n in snap().dropped.items()]))
        r.add(Gauge(p + "in_flight", "Frames captured and not yet acknowledged or dropped.",
                    collect=one(lambda s: s.in_flight)))
        r.add(Counter(_P + "ledger_errors_total", "Frames settled twice or never entered "
                      "(a bug; never double counted).", collect=one(lambda s: s.errors)))

    @property
    def frames_captured(self) -> Counter:
        """What the capture thread counts as it hands frames on (capture.py's name)."""
        return self.source_frames

    def set_status(self, state: str) -> None:
        for name, gauge in self.status.items():
            gauge.set(1 if name == state else 0)

    def render(self) -> str:
        return self.registry.render()
