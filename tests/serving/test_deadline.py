"""A gRPC client's deadline is the run's timeout (issue 13, item 3).

The real 513x513 DeepLab export behind `edgeseg serve`: a Predict whose deadline is shorter
than the model's run gets DEADLINE_EXCEEDED, and the server's own metrics count it as
DEADLINE_EXCEEDED (a run left to finish would be counted OK: the client's giving up alone
does not stop a session run), and the next request is answered. The same for Classify,
Regress and MultiInference on models.py's slow model (DeepLab has no tf.Example
signatures), whose run spins for minutes unless the session cancels it.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    predict_pb2,
    regression_pb2,
)

from edgeseg.serving.loader import timeout_step
from tests.services import wait_until

from .conftest import EDGESEG, REPO, free_port
from .models import slow_model

SIZE = 513
LONG_RUN = 100_000_000  # the slow model's spins: minutes of running unless cancelled
CLASSIFY, REGRESS = "tensorflow/serving/classify", "tensorflow/serving/regress"


def _serve_monitored(serve, work, name: str, base_path):
    """``edgeseg serve`` of one model with Prometheus metrics at ``server.metrics_url``."""
    (work / "monitoring.config").write_text(
        'prometheus_config { enable: true, path: "/metrics" }\n')
    port = free_port()
    server = serve(f"--model_name={name}", f"--model_base_path={base_path}",
                   f"--rest_api_port={port}",
                   f"--monitoring_config_file={work / 'monitoring.config'}")
    server.metrics_url = server.serve_rest(port).replace("/v1/models", "/metrics")
    return server


@pytest.fixture(scope="module")
def deeplab(serve, tmp_path_factory):
    work = tmp_path_factory.mktemp("deadline")
    subprocess.run([*EDGESEG, "export", "deeplabv3", "--output", str(work / "deeplab"),
                    "--input-size", str(SIZE), "--quiet"], cwd=REPO, check=True,
                   capture_output=True, timeout=600)
    return _serve_monitored(serve, work, "deeplab", work / "deeplab")


@pytest.fixture(scope="module")
def slow(serve, tmp_path_factory):
    work = tmp_path_factory.mktemp("slow")
    slow_model(work / "slow" / "1")
    return _serve_monitored(serve, work, "slow", work / "slow")


def _request() -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "deeplab"
    frame = np.random.default_rng(0).integers(0, 255, (1, SIZE, SIZE, 3), dtype=np.uint8)
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(frame))
    return request


def _deadline_exceeded_count(url: str, api: str = "Predict") -> int:
    with urllib.request.urlopen(url, timeout=30) as response:  # loopback
        lines = response.read().decode().splitlines()
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in lines
               if line.startswith("edgeseg_serving_requests_total{")
               and f'api="{api}"' in line and 'status="DEADLINE_EXCEEDED"' in line)


def test_a_deadline_shorter_than_the_run_is_deadline_exceeded_and_the_server_serves_on(
        deeplab):
    request = _request()
    runs = []
    for _ in range(3):  # warm, and how long one run takes here, now
        start = time.perf_counter()
        deeplab.predict.Predict(request, timeout=120)
        runs.append(time.perf_counter() - start)
    deadline = max(0.02, min(runs) / 4)
    with pytest.raises(grpc.RpcError) as err:
        deeplab.predict.Predict(request, timeout=deadline)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # the server stopped the run itself: it counted DEADLINE_EXCEEDED, not OK
    wait_until(lambda: _deadline_exceeded_count(deeplab.metrics_url) == 1, 30, 0.1,
               "the server to count the request DEADLINE_EXCEEDED")
    response = deeplab.predict.Predict(request, timeout=120)
    assert tf.make_ndarray(response.outputs["segmentation_map"]).shape == (1, SIZE, SIZE)
    assert deeplab.proc.poll() is None


def test_timeouts_round_up_to_a_few_cached_runners():
    assert [timeout_step(t) for t in (0, 1, 100, 1000)] == [0, 1, 102, 1024]
    assert all(timeout_step(t) >= t for t in range(1, 5000))
    assert len({timeout_step(t) for t in range(1, 60_000)}) < 100


def _example(n: int) -> tf.train.Example:
    return tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[7.0])),
        "n": tf.train.Feature(int64_list=tf.train.Int64List(value=[n]))}))


def _classify(n: int) -> classification_pb2.ClassificationRequest:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name, request.model_spec.signature_name = "slow", "classify"
    request.input.example_list.examples.append(_example(n))
    return request


def _regress(n: int) -> regression_pb2.RegressionRequest:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = "slow", "regress"
    request.input.example_list.examples.append(_example(n))
    return request


def _multi_inference(n: int) -> inference_pb2.MultiInferenceRequest:
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("regress", REGRESS), ("classify", CLASSIFY)):
        task = request.tasks.add(method_name=method)
        task.model_spec.name, task.model_spec.signature_name = "slow", signature
    request.input.example_list.examples.append(_example(n))
    return request


@pytest.mark.parametrize(("api", "request_"), [
    ("Classify", _classify), ("Regress", _regress), ("MultiInference", _multi_inference)])
def test_classify_and_regress_past_their_deadline_are_cancelled_and_the_server_serves_on(
        slow, api, request_):
    call = getattr(slow.predict, api)
    answered = call(request_(10), timeout=60)  # warm
    with pytest.raises(grpc.RpcError) as err:
        call(request_(LONG_RUN), timeout=0.5)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # the server stopped the run itself (it would spin for minutes): DEADLINE_EXCEEDED
    wait_until(lambda: _deadline_exceeded_count(slow.metrics_url, api) == 1, 30, 0.1,
               f"the server to count the {api} DEADLINE_EXCEEDED")
    assert call(request_(10), timeout=60) == answered
    assert slow.proc.poll() is None
