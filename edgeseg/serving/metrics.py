"""The model server's metrics, registered in edgeseg/metrics.py's registry, and how a call
is labelled.

Contract: :data:`SERVING` is the one :class:`ServingMetrics` of the process. Requests are
recorded once per transport where statuses are mapped (grpc_api._call, rest_api Routes),
loads by the manager, batches by the batching wrapper; gauges are read at scrape time from
collectors that command.py and the transports attach (``watch_*``; attaching again
replaces the collector). rest_api.py serves ``SERVING.registry`` at the path
monitoring.py parses from ``--monitoring_config_file``.

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

import functools
from collections.abc import Callable
from typing import Any

from edgeseg.metrics import Collect, Counter, Gauge, Histogram, Registry

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0)
LOAD_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_PREFIX = "edgeseg_serving_"

Stats = Callable[[], tuple[int | None, int, int]]


class ServingMetrics:
    """The server's families; the scrape-time gauges are attached once their source exists."""

    def __init__(self) -> None:
        self.registry = registry = Registry()
        self.requests = registry.add(Counter(
            _PREFIX + "requests_total", "Requests answered, by outcome.",
            ("transport", "api", "model", "version", "signature", "status")))
        self.latency = registry.add(Histogram(
            _PREFIX + "request_latency_seconds", "Time to answer a request.",
            ("transport", "api", "model"), LATENCY_BUCKETS))
        self.load_seconds = registry.add(Histogram(
            _PREFIX + "model_load_seconds", "Time to load a version, warmup included.",
            ("model",), LOAD_BUCKETS))
        self.batch_size = registry.add(Histogram(
            _PREFIX + "batch_size", "Rows per batched model run (--enable_batching).",
            (), BATCH_BUCKETS))
        self.rejections = registry.add(Counter(
            _PREFIX + "rejections_total",
            "Calls and connections refused or dropped by a limit, by reason.",
            ("transport", "reason")))
        self._transports: dict[str, Stats] = {}
        for index, (name, help_text) in enumerate((
                ("open_connections", "Open client connections."),
                ("active_requests", "Requests running on a worker thread."),
                ("queued_requests", "Requests admitted and waiting for a worker thread."))):
            registry.add(Gauge(_PREFIX + name, help_text, ("transport",),
                               functools.partial(self._transport_stats, index)))

    def watch_transport(self, transport: str, stats: Stats) -> None:
        """``stats()`` -> (open connections or None when unknown, running, queued)."""
        self._transports[transport] = stats

    def _transport_stats(self, index: int) -> list[tuple[tuple[str], float]]:
        values = [((name,), stats()[index]) for name, stats in list(self._transports.items())]
        return [(labels, value) for labels, value in values if value is not None]

    def reject(self, transport: str, reason: str) -> None:
        self.rejections.labels(transport, reason).inc()

    def observe_request(self, transport: str, api: str, model: str, version: str,
                        signature: str, status: str, seconds: float) -> None:
        self.requests.labels(transport, api, model, version, signature, status).inc()
        self.latency.labels(transport, api, model).observe(seconds)

    def observe_load(self, model: str, seconds: float) -> None:
        self.load_seconds.labels(model).observe(seconds)

    def watch_batch_queues(self, collect: Collect) -> None:
        self.registry.add(Gauge(_PREFIX + "batch_queue_depth",
                                "Batches waiting to run (--enable_batching).", (), collect),
                          replace=True)

    def watch_versions(self, collect: Collect) -> None:
        self.registry.add(Gauge(_PREFIX + "model_versions",
                                "Versions known per model, by lifecycle state.",
                                ("model", "state"), collect), replace=True)


SERVING = ServingMetrics()


def _field(message: object, name: str) -> object | None:
    descriptor = getattr(message, "DESCRIPTOR", None)
    if descriptor is None or name not in descriptor.fields_by_name:
        return None
    return getattr(message, name)


def spec_labels(request: object, response: object) -> tuple[str, str, str]:
    """(model, version, signature) of a call: from the reply's model_spec when it has one
    (the version that answered), else from the request's."""
    spec: Any = _field(response, "model_spec") if response is not None else None
    if spec is None:
        results: Any = _field(response, "results") if response is not None else None
        spec = results[0].model_spec if results else None
    asked: Any = _field(request, "model_spec")
    if asked is None:
        tasks: Any = _field(request, "tasks")
        asked = tasks[0].model_spec if tasks else None
    spec = spec if spec is not None and spec.name else asked
    if spec is None:
        return "", "", ""
    version = str(spec.version.value) if spec.HasField("version") else ""
    return spec.name, version, spec.signature_name
