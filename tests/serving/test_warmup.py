"""Warmup on a real server: TF Serving's counter model counts the replayed requests."""

from __future__ import annotations

import shutil

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2, predict_pb2, prediction_log_pb2

from .conftest import tfs_data
from .tfs_requests import status_request


def warm_counter(base, signatures):
    """saved_model_counter as base/1 with one warmup Predict per signature name given."""
    shutil.copytree(tfs_data("saved_model_counter/00000123"), base / "1")
    (base / "1" / "assets.extra").mkdir()
    with tf.io.TFRecordWriter(str(base / "1/assets.extra/tf_serving_warmup_requests")) as out:
        for name in signatures:
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = name
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            out.write(log.SerializeToString())
    return base


@pytest.fixture(scope="module")
def warm(serve, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    good = warm_counter(root / "counter", ["incr_counter"] * 3)
    bad = warm_counter(root / "bad", ["incr_counter", "nope"])
    config = root / "models.config"
    config.write_text(f"""model_config_list {{
      config {{ name: "counter" base_path: "{good}" }}
      config {{ name: "bad" base_path: "{bad}" }}
    }}""")
    return serve(f"--model_config_file={config}", "--max_num_load_retries=0")


def counter(server, signature="get_counter"):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "counter"
    request.model_spec.signature_name = signature
    return server.predict.Predict(request, timeout=30).outputs["output"].float_val[0]


def test_warmup_requests_ran_before_the_version_served(warm):
    assert counter(warm) == 3.0  # the three warmup increments, before any client call
    assert counter(warm, "incr_counter") == 4.0


def test_a_failing_warmup_record_fails_the_load(warm):
    (status,) = warm.models.GetModelStatus(status_request("bad"), timeout=30).model_version_status
    assert status.state == get_model_status_pb2.ModelVersionStatus.END
    assert "warmup record 2" in status.status.error_message
    assert 'Serving signature key "nope" not found.' in status.status.error_message
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "bad"
    with pytest.raises(grpc.RpcError) as err:
        warm.predict.Predict(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
