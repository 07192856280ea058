"""A real `edgeseg serve` on TF Serving's own test models gives TF Serving's answers.

Expected values are those of TF Serving's tensorflow_model_server_test.py and testdata:
half_plus_two is y = 0.5x + 2 (regress_x_to_y2: 0.5x + 3), half_plus_three y = 0.5x + 3.
"""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from .conftest import tfs_data
from .tfs_requests import example, predict_request, rpc_error, status_request

CLASSIFY, REGRESS = "tensorflow/serving/classify", "tensorflow/serving/regress"


# --- one model from flags, as `tensorflow_model_server --model_base_path=...` -----------

@pytest.fixture(scope="module")
def single(serve, tmp_path_factory):
    socket_path = tmp_path_factory.mktemp("sock") / "serve.sock"
    server = serve(f"--model_base_path={tfs_data('saved_model_half_plus_two_cpu')}",
                   f"--grpc_socket_path={socket_path}")
    server.socket_path = socket_path
    return server


def test_predict(single):
    response = single.predict.Predict(predict_request("default", [[1.0], [2.0], [5.0]]),
                                      timeout=30)
    assert list(response.outputs["y"].float_val) == [2.5, 3.0, 4.5]  # typed fields, as TFS
    assert tf.make_ndarray(response.outputs["y"]).shape == (3, 1)
    spec = response.model_spec
    assert (spec.name, spec.version.value, spec.signature_name) == ("default", 123,
                                                                    "serving_default")


def test_predict_as_tf_servings_own_test_sends_it(single):
    # tensorflow_model_server_test.py sends x as shape [1] although the signature says
    # [-1,1]: the graph takes it, and so must we.
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "default"
    request.inputs["x"].dtype = tf.float32.as_datatype_enum
    request.inputs["x"].float_val.append(2.0)
    request.inputs["x"].tensor_shape.dim.add(size=1)
    response = single.predict.Predict(request, timeout=30)
    assert list(response.outputs["y"].float_val) == [3.0]
    response = single.predict.Predict(predict_request("default", [2.0, 3.0, 4.0]), timeout=30)
    assert list(response.outputs["y"].float_val) == [3.0, 3.5, 4.0]


def test_predict_other_signature_and_output_filter(single):
    request = predict_request("default", [[4.0]], signature="regress_x2_to_y3", key="inputs")
    request.output_filter.append("outputs")
    response = single.predict.Predict(request, timeout=30)
    assert list(response.outputs["outputs"].float_val) == [5.0]
    assert response.model_spec.signature_name == "regress_x2_to_y3"


def test_classify(single):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "classify_x_to_y"
    request.input.example_list.examples.extend([example(2.0), example(4.0)])
    response = single.predict.Classify(request, timeout=30)
    scores = [[c.score for c in cl.classes] for cl in response.result.classifications]
    assert scores == [[3.0], [4.0]]
    assert response.model_spec.version.value == 123


@pytest.mark.parametrize(("signature", "expected"),
                         [("regress_x_to_y", 3.0), ("regress_x_to_y2", 4.0)])
def test_regress(single, signature, expected):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = signature
    request.input.example_list.examples.append(example(2.0))
    response = single.predict.Regress(request, timeout=30)
    assert [r.value for r in response.result.regressions] == [expected]
    assert response.model_spec.signature_name == signature


def test_regress_with_context(single):
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "regress_x_to_y"
    request.input.example_list_with_context.context.CopyFrom(example(2.0))
    request.input.example_list_with_context.examples.add()  # takes x from the context
    request.input.example_list_with_context.examples.append(example(6.0))  # its own x wins
    response = single.predict.Regress(request, timeout=30)
    assert [r.value for r in response.result.regressions] == [3.0, 5.0]


def test_multi_inference(single):
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("regress_x_to_y", REGRESS), ("classify_x_to_y", CLASSIFY)):
        task = request.tasks.add(method_name=method)
        task.model_spec.name = "default"
        task.model_spec.signature_name = signature
    request.input.example_list.examples.append(example(2.0))
    response = single.predict.MultiInference(request, timeout=30)
    regress, classify = response.results
    assert regress.regression_result.regressions[0].value == 3.0
    assert classify.classification_result.classifications[0].classes[0].score == 3.0
    assert [(r.model_spec.signature_name, r.model_spec.version.value)
            for r in response.results] == [("regress_x_to_y", 123), ("classify_x_to_y", 123)]


def test_metadata_is_tf_servings(single):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "default"
    request.metadata_field.append("signature_def")
    response = single.predict.GetModelMetadata(request, timeout=30)
    got = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(got)
    expected_json = json.loads(tfs_data("half_plus_two_model_metadata.json").read_text())
    expected = json_format.ParseDict(expected_json["metadata"]["signature_def"],
                                     get_model_metadata_pb2.SignatureDefMap())
    assert got == expected
    spec = response.model_spec
    assert (spec.name, spec.version.value, spec.signature_name) == ("default", 123, "")
    assert expected_json["model_spec"] == {"name": "default", "signature_name": "",
                                           "version": "123"}


def test_status(single):
    response = single.models.GetModelStatus(status_request("default"), timeout=30)
    (version,) = response.model_version_status
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert (version.version, version.state) == (123, available)
    assert version.HasField("status") and version.status.error_code == 0


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        (predict_request("nope", [[1.0]]), grpc.StatusCode.NOT_FOUND,
         "Servable not found for request: Latest(nope)"),
        (predict_request("default", [[1.0]], version=9), grpc.StatusCode.NOT_FOUND,
         "Servable not found for request: Specific(default, 9)"),
        (predict_request("default", [[1.0]], signature="nope"),
         grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found.'),
        (predict_request("default", [[1.0]], label="stable"), grpc.StatusCode.INVALID_ARGUMENT,
         "Unrecognized servable version label: stable"),
        (predict_request("default", [[1.0]], key="z"), grpc.StatusCode.INVALID_ARGUMENT,
         "Sent extra: {z}. Missing but required: {x}."),
    ],
    ids=["model", "version", "signature", "label", "name"],
)
def test_errors_are_tf_servings_and_the_server_keeps_serving(single, request_, code, message):
    err = rpc_error(single.predict.Predict, request_)
    assert err.code() == code
    assert message in err.details()
    assert single.predict.Predict(predict_request("default", [[2.0]]), timeout=30).outputs[
        "y"].float_val[0] == 3.0


def test_wrong_dtype_names_input_and_expected(single):
    request = predict_request("default", [[1.0]])
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.int32([[1]])))
    err = rpc_error(single.predict.Predict, request)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'x': expected dtype DT_FLOAT, got DT_INT32" in err.details()


def test_status_of_unknown_model_and_version(single):
    err = rpc_error(single.models.GetModelStatus, status_request("nope"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = rpc_error(single.models.GetModelStatus, status_request("default", 9))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "Could not find version 9 of model default" in err.details()


def test_metadata_and_multi_inference_errors(single):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "default"
    err = rpc_error(single.predict.GetModelMetadata, request)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "metadata_field" in err.details()
    request.metadata_field.append("graph")
    err = rpc_error(single.predict.GetModelMetadata, request)
    assert "Metadata field graph is not supported" in err.details()
    multi = inference_pb2.MultiInferenceRequest()
    for name in ("default", "other"):
        task = multi.tasks.add(method_name=REGRESS)
        task.model_spec.name = name
        task.model_spec.signature_name = "regress_x_to_y"
    multi.input.example_list.examples.append(example(2.0))
    err = rpc_error(single.predict.MultiInference, multi)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "same model name" in err.details()
    multi.tasks[1].model_spec.name = "default"
    err = rpc_error(single.predict.MultiInference, multi)
    assert "Duplicate evaluation of signature: regress_x_to_y" in err.details()
    empty = classification_pb2.ClassificationRequest()
    empty.model_spec.name = "default"
    empty.model_spec.signature_name = "classify_x_to_y"
    err = rpc_error(single.predict.Classify, empty)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "Input is empty" in err.details()


def test_frames_bigger_than_grpc_default_4mb(single):
    values = np.arange(1920 * 1080 * 3, dtype=np.float32).reshape(-1, 1)  # 24.9 MB each way
    request = predict_request("default", [[0.0]])
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(values))
    response = single.predict.Predict(request, timeout=60)
    y = tf.make_ndarray(response.outputs["y"])
    assert y.shape == values.shape and y[-1, 0] == values[-1, 0] * 0.5 + 2


def test_unix_socket(single):
    with grpc.insecure_channel(f"unix:{single.socket_path}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(predict_request("default", [[2.0]]), timeout=30)
    assert response.outputs["y"].float_val[0] == 3.0


# --- TF Serving's good_model_config.txt ---------------------------------------------------

@pytest.fixture(scope="module")
def good_config(serve, tmp_path_factory):
    text = tfs_data("good_model_config.txt").read_text()
    text = text.replace("${TEST_HALF_PLUS_TWO_DIR}", str(tfs_data("saved_model_half_plus_two_cpu")))
    text = text.replace("${TEST_HALF_PLUS_THREE_DIR}",
                        str(tfs_data("saved_model_half_plus_three")))
    path = tmp_path_factory.mktemp("config") / "good_model_config.txt"
    path.write_text(text)
    return serve(f"--model_config_file={path}")


@pytest.mark.parametrize(("name", "expected"), [("half_plus_two", 3.0), ("half_plus_three", 4.0)])
def test_good_model_config_serves_both(good_config, name, expected):
    response = good_config.predict.Predict(predict_request(name, [[2.0]]), timeout=30)
    assert response.outputs["y"].float_val[0] == expected
    assert response.model_spec.name == name


# --- TF2 export, version policies and labels, a bad model, all in one config --------------

@pytest.fixture(scope="module")
def many(serve, tmp_path_factory):
    two = tfs_data("saved_model_half_plus_two_2_versions")
    config = f"""
    model_config_list {{
      config {{ name: "tf2" base_path: "{tfs_data('saved_model_half_plus_two_tf2_cpu')}" }}
      config {{ name: "latest" base_path: "{two}" }}
      config {{ name: "all" base_path: "{two}" model_version_policy {{ all {{}} }}
               version_labels {{ key: "stable" value: 123 }}
               version_labels {{ key: "canary" value: 124 }} }}
      config {{ name: "specific" base_path: "{two}"
               model_version_policy {{ specific {{ versions: 123 }} }} }}
      config {{ name: "bad" base_path: "{tfs_data('bad_half_plus_two')}" }}
    }}"""
    path = tmp_path_factory.mktemp("config") / "models.config"
    path.write_text(config)
    return serve(f"--model_config_file={path}", "--max_num_load_retries=0")


def test_tf2_export_predict_classify_regress(many):
    response = many.predict.Predict(predict_request("tf2", [2.0]), timeout=30)
    assert list(response.outputs["y"].float_val) == [3.0]
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "tf2"
    request.model_spec.signature_name = "classify_x_to_y"
    request.input.example_list.examples.append(example(2.0))
    result = many.predict.Classify(request, timeout=30).result
    assert result.classifications[0].classes[0].score == 3.0
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "tf2"
    request.model_spec.signature_name = "regress_x_to_y2"
    request.input.example_list.examples.append(example(2.0))
    assert many.predict.Regress(request, timeout=30).result.regressions[0].value == 4.0
    multi = inference_pb2.MultiInferenceRequest()
    for signature, method in (("regress_x_to_y", REGRESS), ("classify_x_to_y", CLASSIFY)):
        task = multi.tasks.add(method_name=method)
        task.model_spec.name = "tf2"
        task.model_spec.signature_name = signature
    multi.input.example_list.examples.append(example(2.0))
    regress, classify = many.predict.MultiInference(multi, timeout=30).results
    assert regress.regression_result.regressions[0].value == 3.0
    assert classify.classification_result.classifications[0].classes[0].score == 3.0
    assert versions_served(many, "tf2") == {123: "AVAILABLE"}


def test_tf2_metadata_matches_tf_serving(many):
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "tf2"
    request.metadata_field.append("signature_def")
    got = get_model_metadata_pb2.SignatureDefMap()
    many.predict.GetModelMetadata(request, timeout=30).metadata["signature_def"].Unpack(got)
    expected_json = json.loads(
        tfs_data("saved_model_half_plus_two_tf2_2_versions_metadata.json").read_text())
    expected = json_format.ParseDict(expected_json["metadata"]["signature_def"],
                                     get_model_metadata_pb2.SignatureDefMap())
    assert set(got.signature_def) == set(expected.signature_def)
    for key in expected.signature_def:  # tensor names are the export's; shapes, dtypes agree
        g, e = got.signature_def[key], expected.signature_def[key]
        assert {k: (v.dtype, v.tensor_shape) for k, v in g.inputs.items()} == {
            k: (v.dtype, v.tensor_shape) for k, v in e.inputs.items()}
        assert g.method_name == e.method_name


def versions_served(server, name):
    response = server.models.GetModelStatus(status_request(name), timeout=30)
    return {s.version: get_model_status_pb2.ModelVersionStatus.State.Name(s.state)
            for s in response.model_version_status}


def test_latest_policy(many):
    assert versions_served(many, "latest") == {124: "AVAILABLE"}
    assert many.predict.Predict(predict_request("latest", [[2.0]]),
                                timeout=30).model_spec.version.value == 124
    err = rpc_error(many.predict.Predict, predict_request("latest", [[2.0]], version=123))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_all_policy_and_labels(many):
    assert versions_served(many, "all") == {123: "AVAILABLE", 124: "AVAILABLE"}
    for kwargs, version in [({}, 124), ({"version": 123}, 123), ({"label": "stable"}, 123),
                            ({"label": "canary"}, 124)]:
        response = many.predict.Predict(predict_request("all", [[2.0]], **kwargs), timeout=30)
        assert response.model_spec.version.value == version, kwargs
        assert response.outputs["y"].float_val[0] == 3.0
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "all"
    request.model_spec.version_label = "stable"
    (status,) = many.models.GetModelStatus(request, timeout=30).model_version_status
    assert status.version == 123


def test_specific_policy(many):
    assert versions_served(many, "specific") == {123: "AVAILABLE"}


def test_bad_model_is_refused_with_a_clear_error_and_the_rest_serve(many):
    (status,) = many.models.GetModelStatus(status_request("bad"), timeout=30).model_version_status
    assert status.state == get_model_status_pb2.ModelVersionStatus.END
    assert status.status.error_code != 0
    assert "no saved_model.pb" in status.status.error_message
    err = rpc_error(many.predict.Predict, predict_request("bad", [[2.0]]))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert many.predict.Predict(predict_request("tf2", [2.0]), timeout=30).outputs[
        "y"].float_val[0] == 3.0


def health(server, service=""):
    stub = health_pb2_grpc.HealthStub(server.channel)
    status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=30).status
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


def test_health_serving_when_every_model_is_available(single):
    assert health(single) == "SERVING"
    assert health(single, "default") == "SERVING"
    err = rpc_error(health_pb2_grpc.HealthStub(single.channel).Check,
                    health_pb2.HealthCheckRequest(service="nope"))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_health_not_serving_while_a_model_has_no_version(many):
    assert health(many) == "NOT_SERVING"
    assert (health(many, "bad"), health(many, "tf2")) == ("NOT_SERVING", "SERVING")
