"""The Prometheus registry and the monitoring config, on tables."""

from __future__ import annotations

import pytest
from tensorflow_serving.apis import inference_pb2, predict_pb2

from edgeseg.errors import InvalidArgument
from edgeseg.serving.metrics import (
    DEFAULT_PATH,
    Counter,
    Gauge,
    Histogram,
    Registry,
    parse_monitoring_config,
    spec_labels,
)

from .conftest import tfs_data


def test_text_exposition():
    registry = Registry()
    counter = registry.add(Counter("c_total", "Things.", ("model", "status")))
    counter.inc("m", "OK")
    counter.inc("m", "OK")
    counter.inc('we"ird\n', "NOT_FOUND")
    histogram = registry.add(Histogram("h_seconds", "Time.", ("model",), (0.1, 1.0)))
    for value in (0.05, 0.5, 5.0):
        histogram.observe(value, "m")
    registry.add(Gauge("g", "Now.", ("state",), lambda: [(("AVAILABLE",), 2)]))
    assert registry.render().splitlines() == [
        "# HELP c_total Things.",
        "# TYPE c_total counter",
        'c_total{model="m",status="OK"} 2',
        'c_total{model="we\\"ird\\n",status="NOT_FOUND"} 1',
        "# HELP h_seconds Time.",
        "# TYPE h_seconds histogram",
        'h_seconds_bucket{model="m",le="0.1"} 1',
        'h_seconds_bucket{model="m",le="1"} 2',
        'h_seconds_bucket{model="m",le="+Inf"} 3',
        'h_seconds_sum{model="m"} 5.55',
        'h_seconds_count{model="m"} 3',
        "# HELP g Now.",
        "# TYPE g gauge",
        'g{state="AVAILABLE"} 2',
    ]


def test_tf_servings_monitoring_config():
    assert parse_monitoring_config(tfs_data("monitoring_config.txt").read_text()) == DEFAULT_PATH


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", None), ("prometheus_config { enable: false }", None),
     ("prometheus_config { enable: true }", DEFAULT_PATH),
     ('prometheus_config { enable: true path: "/m" }', "/m")],
)
def test_monitoring_configs(text, expected):
    assert parse_monitoring_config(text) == expected


@pytest.mark.parametrize("text", ["prometheus { }", 'prometheus_config { enable: true path: "m" }'])
def test_bad_monitoring_configs(text):
    with pytest.raises(InvalidArgument):
        parse_monitoring_config(text)


def test_spec_labels_prefer_the_version_that_answered():
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "m"
    assert spec_labels(request, None) == ("m", "", "")
    response = predict_pb2.PredictResponse()
    response.model_spec.name = "m"
    response.model_spec.version.value = 7
    response.model_spec.signature_name = "serving_default"
    assert spec_labels(request, response) == ("m", "7", "serving_default")
    multi = inference_pb2.MultiInferenceRequest()
    multi.tasks.add().model_spec.name = "k"
    assert spec_labels(multi, inference_pb2.MultiInferenceResponse()) == ("k", "", "")
