"""Prometheus metrics: a small thread-safe registry and its text exposition.

Contract: :class:`Registry` holds counters, gauges and histograms with labels; recording is
cheap and thread-safe; :meth:`Registry.render` writes the Prometheus text format (0.0.4),
one ``# HELP``/``# TYPE`` pair per metric, label values escaped, histogram buckets
cumulative with ``+Inf``, ``_sum`` and ``_count``. Gauges may be computed at scrape time by
a collector callback. :func:`parse_monitoring_config` reads TF Serving's
``--monitoring_config_file`` (``prometheus_config { enable, path }``).

The serving metrics (:data:`SERVING`), recorded once per transport where statuses are
mapped (grpc_api._call, rest_api._route) and by the manager:

- ``edgeseg_serving_requests_total{transport,api,model,version,signature,status}``
- ``edgeseg_serving_request_latency_seconds{transport,api,model}`` (histogram)
- ``edgeseg_serving_model_load_seconds{model}`` (histogram of successful loads)
- ``edgeseg_serving_model_versions{model,state}`` (gauge, at scrape time)
- ``edgeseg_serving_batch_size`` (histogram) and ``edgeseg_serving_batch_queue_depth``
  (gauge), with --enable_batching
- ``edgeseg_serving_open_connections{transport}`` (REST), ``edgeseg_serving_active_requests
  {transport}`` (running on a worker) and ``edgeseg_serving_queued_requests{transport}``
  (admitted, waiting for a worker): gauges read at scrape time from each transport's
  ``stats()`` (:meth:`ServingMetrics.watch_transport`)
- ``edgeseg_serving_rejections_total{transport,reason}``: calls and connections refused or
  dropped by the front doors' limits (http_server.py, grpc_admission.py name the reasons)
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from edgeseg.errors import InvalidArgument
from edgeseg.serving import textproto

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0)
LOAD_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
DEFAULT_PATH = "/monitoring/prometheus/metrics"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(str(v))}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str]) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self._lock = threading.Lock()

    def _header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str]) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[tuple[str, ...], float] = {}

    def inc(self, *labels: str, by: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + by

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self._header() + [f"{self.name}{_labels(self.label_names, k)} {_number(v)}"
                                 for k, v in items]


class Gauge(_Metric):
    """Values computed by ``collect()`` at scrape time: an iterable of (labels, value)."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, labels: Sequence[str],
                 collect: Callable[[], Iterable[tuple[tuple[str, ...], float]]]) -> None:
        super().__init__(name, help_text, labels)
        self.collect = collect

    def render(self) -> list[str]:
        return self._header() + [f"{self.name}{_labels(self.label_names, k)} {_number(v)}"
                                 for k, v in sorted(self.collect())]


@dataclass
class _Series:
    counts: list[int]
    total: float = 0.0
    count: int = 0


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, labels: Sequence[str],
                 buckets: Sequence[float]) -> None:
        super().__init__(name, help_text, labels)
        self.buckets = tuple(sorted(buckets))
        self._series: dict[tuple[str, ...], _Series] = {}

    def observe(self, value: float, *labels: str) -> None:
        with self._lock:
            series = self._series.setdefault(labels, _Series([0] * len(self.buckets)))
            index = bisect.bisect_left(self.buckets, value)
            if index < len(self.buckets):
                series.counts[index] += 1
            series.total += value
            series.count += 1

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, _Series(list(s.counts), s.total, s.count))
                           for k, s in self._series.items())
        lines = self._header()
        for labels, series in items:
            running = 0
            for bound, count in zip(self.buckets, series.counts, strict=True):
                running += count
                le = _labels(self.label_names, labels, f'le="{_number(bound)}"')
                lines.append(f"{self.name}_bucket{le} {running}")
            inf = _labels(self.label_names, labels, 'le="+Inf"')
            lines.append(f"{self.name}_bucket{inf} {series.count}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, labels)} "
                         f"{_number(series.total)}")
            lines.append(f"{self.name}_count{_labels(self.label_names, labels)} {series.count}")
        return lines


class Registry:
    def __init__(self) -> None:
        self._metrics: list[_Metric] = []

    def add(self, metric: _Metric) -> _Metric:
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        return "\n".join(line for m in self._metrics for line in m.render()) + "\n"


class ServingMetrics:
    """The server's metrics; the manager gauge is attached once a core exists."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.requests = self.registry.add(Counter(
            "edgeseg_serving_requests_total", "Requests answered, by outcome.",
            ("transport", "api", "model", "version", "signature", "status")))
        self.latency = self.registry.add(Histogram(
            "edgeseg_serving_request_latency_seconds", "Time to answer a request.",
            ("transport", "api", "model"), LATENCY_BUCKETS))
        self.load_seconds = self.registry.add(Histogram(
            "edgeseg_serving_model_load_seconds", "Time to load a version, warmup included.",
            ("model",), LOAD_BUCKETS))
        self.batch_size = self.registry.add(Histogram(
            "edgeseg_serving_batch_size", "Rows per batched model run (--enable_batching).",
            (), BATCH_BUCKETS))

        self.rejections = self.registry.add(Counter(
            "edgeseg_serving_rejections_total",
            "Calls and connections refused or dropped by a limit, by reason.",
            ("transport", "reason")))
        self._transports: dict[str, Callable[[], tuple[int | None, int, int]]] = {}
        for index, (name, help_text) in enumerate((
                ("open_connections", "Open client connections."),
                ("active_requests", "Requests running on a worker thread."),
                ("queued_requests", "Requests admitted and waiting for a worker thread."))):
            self.registry.add(Gauge(f"edgeseg_serving_{name}", help_text, ("transport",),
                                    lambda index=index: self._transport_stats(index)))

    def watch_transport(self, transport: str,
                        stats: Callable[[], tuple[int | None, int, int]]) -> None:
        """``stats()`` -> (open connections or None when unknown, running, queued)."""
        self._transports[transport] = stats

    def _transport_stats(self, index: int) -> list[tuple[tuple[str, ...], float]]:
        values = [((name,), stats()[index]) for name, stats in list(self._transports.items())]
        return [(labels, value) for labels, value in values if value is not None]

    def reject(self, transport: str, reason: str) -> None:
        self.rejections.inc(transport, reason)

    def observe_request(self, transport: str, api: str, model: str, version: str,
                        signature: str, status: str, seconds: float) -> None:
        self.requests.inc(transport, api, model, version, signature, status)
        self.latency.observe(seconds, transport, api, model)

    def watch_batch_queues(self, collect: Callable[[], Iterable[tuple[tuple[str, ...], float]]]
                           ) -> None:
        self.registry.add(Gauge("edgeseg_serving_batch_queue_depth",
                                "Batches waiting to run (--enable_batching).", (), collect))

    def watch_versions(self, collect: Callable[[], Iterable[tuple[tuple[str, ...], float]]]
                       ) -> None:
        self.registry.add(Gauge("edgeseg_serving_model_versions",
                                "Versions known per model, by lifecycle state.",
                                ("model", "state"), collect))


SERVING = ServingMetrics()


def _field(message: object, name: str) -> object | None:
    descriptor = getattr(message, "DESCRIPTOR", None)
    if descriptor is None or name not in descriptor.fields_by_name:
        return None
    return getattr(message, name)


def spec_labels(request: object, response: object) -> tuple[str, str, str]:
    """(model, version, signature) of a call: from the reply's model_spec when it has one
    (the version that answered), else from the request's."""
    spec = _field(response, "model_spec") if response is not None else None
    if spec is None:
        results = _field(response, "results") if response is not None else None
        spec = results[0].model_spec if results else None
    asked = _field(request, "model_spec")
    if asked is None:
        tasks = _field(request, "tasks")
        asked = tasks[0].model_spec if tasks else None
    spec = spec if spec is not None and spec.name else asked
    if spec is None:
        return "", "", ""
    version = str(spec.version.value) if spec.HasField("version") else ""
    return spec.name, version, spec.signature_name


def _monitoring_config_class() -> type:
    def build(fdp: Any) -> None:
        prometheus = fdp.message_type.add(name="PrometheusConfig")
        prometheus.field.add(name="enable", number=1, type=8, label=1)
        prometheus.field.add(name="path", number=2, type=9, label=1)
        monitoring = fdp.message_type.add(name="MonitoringConfig")
        monitoring.field.add(name="prometheus_config", number=1, type=11, label=1,
                             type_name=".edgeseg.serving.PrometheusConfig")

    return textproto.message_class("MonitoringConfig",
                                   "edgeseg/serving/monitoring_config.proto", build)


def parse_monitoring_config(text: str, origin: str = "monitoring config") -> str | None:
    """The metrics path to serve, or None when Prometheus export is not enabled."""
    message = textproto.parse(_monitoring_config_class(), text, origin)
    if not message.prometheus_config.enable:
        return None
    path = message.prometheus_config.path or DEFAULT_PATH
    if not path.startswith("/"):
        raise InvalidArgument(f"{origin}: prometheus_config.path must start with /, got {path!r}")
    return path
