"""The agent's counters and latency histograms, and their Prometheus text page.

Contract: every metric is thread-safe (one lock each; the hot path is an add under it).
Where frames end up is not counted here but in :class:`~edgeseg.agent.ledger.Ledger`
(``metrics.ledger``), whose totals the page includes.
:meth:`AgentMetrics.render` returns the Prometheus text exposition format 0.0.4;
:class:`MetricsServer` serves it at ``/metrics`` from a daemon thread, bound to
127.0.0.1 unless configured otherwise. No client library: the format is a few lines.
"""

from __future__ import annotations

import http.server
import threading

from edgeseg.agent.ledger import Ledger

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


class Counter:
    kind = "counter"

    def __init__(self, name: str, help_: str, **labels: str) -> None:
        self.name, self.help, self.labels = name, help_, labels
        self._lock = threading.Lock()
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self.value += amount

    def samples(self) -> list[str]:
        return [f"{self.name}{_labels(self.labels)} {self.value:g}"]


class Gauge(Counter):
    kind = "gauge"

    def set(self, value: float) -> None:
        with self._lock:
            self.value = float(value)


class CounterFamily:
    """Counters of one name told apart by one label whose values appear as they occur."""

    kind = "counter"

    def __init__(self, name: str, help_: str, label: str) -> None:
        self.name, self.help, self.label = name, help_, label
        self._lock = threading.Lock()
        self._values: dict[str, float] = {}

    def inc(self, label_value: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[label_value] = self._values.get(label_value, 0.0) + amount

    def value(self, label_value: str) -> float:
        with self._lock:
            return self._values.get(label_value, 0.0)

    def items(self) -> list[tuple[str, float]]:
        with self._lock:
            return sorted(self._values.items())

    def total(self) -> float:
        with self._lock:
            return sum(self._values.values())

    def samples(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f'{self.name}{_labels({self.label: v.replace(chr(34), "")})} {n:g}'
                for v, n in items]


class Histogram:
    kind = "histogram"

    def __init__(self, name: str, help_: str, buckets=_LATENCY_BUCKETS, **labels: str) -> None:
        self.name, self.help, self.labels, self.buckets = name, help_, labels, buckets
        self._lock = threading.Lock()
        self._counts = [0] * len(buckets)
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        with self._lock:
            self.count += 1
            self.sum += value
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    self._counts[i] += 1

    def samples(self) -> list[str]:
        with self._lock:
            out = [f"{self.name}_bucket{_labels({**self.labels, 'le': f'{b:g}'})} {c}"
                   for b, c in zip(self.buckets, self._counts, strict=True)]
            out.append(f"{self.name}_bucket{_labels({**self.labels, 'le': '+Inf'})} {self.count}")
            out.append(f"{self.name}_sum{_labels(self.labels)} {self.sum:g}")
            out.append(f"{self.name}_count{_labels(self.labels)} {self.count}")
        return out


class AgentMetrics:
    STAGES = ("queue", "inference", "postprocess", "total")
    STATES = ("online", "offline", "degraded")

    def __init__(self) -> None:
        p = "edgeseg_agent_"
        self.ledger = Ledger()
        self.source_frames = Counter(p + "source_frames_total",
                                     "Frames the capture thread read and handed on.")
        self.frames_processed = Counter(p + "frames_processed_total",
                                        "Frames whose mask came back from the server.")
        self.latency = {s: Histogram(p + "stage_latency_seconds",
                                     "Per-stage latency (total = capture to acknowledged).",
                                     stage=s)
                        for s in self.STAGES}
        self.publishes = Counter(p + "publishes_total", "MQTT messages handed to the client.")
        self.publish_failures = CounterFamily(
            p + "publish_failures_total", "MQTT messages not accepted, by reason (the "
            "broker's reason code, or the client's).", "reason")
        self.inference_errors = Counter(p + "inference_errors_total", "Predict calls that failed.")
        self.source_reconnects = Counter(p + "source_reconnects_total",
                                         "Attempts to (re)open the source.")
        self.mqtt_reconnects = Counter(p + "mqtt_connects_total", "Connections to the broker.")
        self.source_up = Gauge(p + "source_up", "1 while the source delivers frames.")
        self.mqtt_connected = Gauge(p + "mqtt_connected", "1 while connected to the broker.")
        self.in_flight = Gauge(p + "requests_in_flight", "Predict calls awaiting a reply.")
        self.status = {s: Gauge(p + "status", "1 for the agent's current <prefix>/status "
                                "(online, offline, degraded).", status=s) for s in self.STATES}
        self.set_status("online")

    @property
    def frames_captured(self) -> Counter:
        """What the capture thread counts as it hands frames on (capture.py's name)."""
        return self.source_frames

    def set_status(self, state: str) -> None:
        for name, gauge in self.status.items():
            gauge.set(1 if name == state else 0)

    def _all(self) -> list:
        out = []
        for value in vars(self).values():
            if isinstance(value, Ledger):
                continue
            out += list(value.values()) if isinstance(value, dict) else [value]
        return out

    def render(self) -> str:
        lines: list[str] = self.ledger.samples()
        seen: set[str] = set()
        for metric in self._all():
            if metric.name not in seen:
                seen.add(metric.name)
                lines += [f"# HELP {metric.name} {metric.help}",
                          f"# TYPE {metric.name} {metric.kind}"]
            lines += metric.samples()
        return "\n".join(lines) + "\n"


class MetricsServer:
    """``GET /metrics`` on (host, port); port 0 picks a free one (see ``.port``)."""

    def __init__(self, metrics: AgentMetrics, host: str = "127.0.0.1", port: int = 0) -> None:
        render = metrics.render

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's spelling)
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
