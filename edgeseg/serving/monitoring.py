"""TF Serving's ``--monitoring_config_file``: where (and whether) Prometheus text is served.

Contract: :func:`parse_monitoring_config` reads a ``MonitoringConfig`` text proto
(``prometheus_config { enable, path }``) and returns the REST path of the metrics page,
:data:`DEFAULT_PATH` when enabled without one, or None when export is off. A path that
does not start with ``/`` or an unknown field is an :class:`~edgeseg.errors.InvalidArgument`
naming the file. What the page holds is serving/metrics.py's.
"""

from __future__ import annotations

from typing import Any

from edgeseg.errors import InvalidArgument
from edgeseg.serving import textproto
from edgeseg.wire.schema import MessageClass

DEFAULT_PATH = "/monitoring/prometheus/metrics"


def _monitoring_config_class() -> MessageClass:
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
