"""`edgeseg serve --prefer_tflite_model`: real server processes serving model.tflite with
LiteRT, checked with the official tensorflow_serving.apis stubs and over REST.

Expected answers are TF Serving's: half_plus_two is y = 0.5x + 2 (its TFLite test model has
no SignatureDefs; TF Serving generates serving_default from the tensor names x and y).
half_plus_three (0.5x + 3) is used as the SavedModel beside a half_plus_two model.tflite, so
each answer says which runtime gave it.
"""

from __future__ import annotations

import shutil
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from edgeseg.errors import Status

from .conftest import SHARED, free_port, rest_call, tfs_data
from .tflite_models import custom_op_model, signed_model

CORAL = SHARED / "models" / "deeplab" / "deeplabv3_mnv2_pascal_quant.tflite"
PHOTO = SHARED / "models" / "images" / "astronaut.png"


def _request(name: str, x, key: str = "x", version: int | None = None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    request.inputs[key].CopyFrom(tf.make_tensor_proto(x))
    return request


def _status(server, name: str):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    response = server.models.GetModelStatus(request, timeout=30)
    return {s.version: (s.state, s.status.error_code, s.status.error_message)
            for s in response.model_version_status}


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Base paths: hpt (TF Serving's TFLite model), both (SavedModel 0.5x+3 AND model.tflite
    0.5x+2 in one folder), broken (1 good, 2 corrupt, 3 an op LiteRT lacks), signed."""
    root = tmp_path_factory.mktemp("tflite-models")
    hpt = tfs_data("saved_model_half_plus_two_tflite") / "00000123" / "model.tflite"
    both = root / "both" / "123"
    shutil.copytree(tfs_data("saved_model_half_plus_three") / "00000123", both)
    shutil.copy(hpt, both / "model.tflite")
    for version in ("1", "2"):
        (root / "broken" / version).mkdir(parents=True)
    shutil.copy(hpt, root / "broken" / "1" / "model.tflite")
    (root / "broken" / "2" / "model.tflite").write_bytes(hpt.read_bytes()[:200])
    custom_op_model(root / "broken" / "3" / "model.tflite")
    signed_model(root / "signed" / "1" / "model.tflite")
    root.joinpath("hpt").symlink_to(hpt.parent.parent)
    return root


def _config(path, models: list[tuple[str, str, str]]) -> str:
    entries = "".join(f'  config {{ name: "{n}" base_path: "{b}" {extra} }}\n'
                      for n, b, extra in models)
    path.write_text(f"model_config_list {{\n{entries}}}\n")
    return str(path)


@pytest.fixture(scope="module")
def lite(serve, tree):
    """--prefer_tflite_model=true, one pool of two interpreters."""
    models = [("default", tree / "hpt", ""), ("both", tree / "both", ""),
              ("both_saved_model", tree / "both", "prefer_tflite_model: false"),
              ("broken", tree / "broken", "model_version_policy { all {} }"),
              ("signed", tree / "signed", "")]
    if CORAL.is_file():
        (tree / "coral" / "1").mkdir(parents=True)
        shutil.copy(CORAL, tree / "coral" / "1" / "model.tflite")
        models.append(("coral", tree / "coral", ""))
    port = free_port()
    server = serve("--prefer_tflite_model=true", "--num_tflite_pools=1",
                   "--num_tflite_interpreters_per_pool=2", "--max_num_load_retries=0",
                   f"--rest_api_port={port}",
                   f"--model_config_file={_config(tree / 'lite.config', models)}")
    server.url = server.serve_rest(port)
    return server


@pytest.fixture(scope="module")
def plain(serve, tree):
    """No flag: model.tflite only where the model's config asks for it."""
    models = [("both", tree / "both", ""),
              ("both_lite", tree / "both", "prefer_tflite_model: true")]
    return serve(f"--model_config_file={_config(tree / 'plain.config', models)}")


def test_half_plus_two_answers_over_grpc_as_tf_serving(lite):
    # tensorflow_model_server_test.py's testPredictOnTfLite: x = [2.0] of shape [1]
    response = lite.predict.Predict(_request("default", np.float32([2.0])), timeout=30)
    assert list(response.outputs["y"].float_val) == [3.0]
    assert response.outputs["y"].dtype == tf.float32.as_datatype_enum
    spec = response.model_spec
    assert (spec.name, spec.version.value, spec.signature_name) == ("default", 123,
                                                                    "serving_default")
    response = lite.predict.Predict(_request("default", np.float32([[1], [2], [5]])), timeout=30)
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [[2.5], [3.0], [4.5]]


def test_half_plus_two_answers_over_rest(lite):
    assert rest_call(f"{lite.url}/default:predict", {"instances": [[1.0], [2.0], [5.0]]}) == (
        200, {"predictions": [[2.5], [3.0], [4.5]]})
    assert rest_call(f"{lite.url}/default:predict", {"inputs": {"x": [[4.0]]}}) == (
        200, {"outputs": [[4.0]]})
    status, body = rest_call(f"{lite.url}/default:predict", {"inputs": {"q": [[4.0]]}})
    assert (status, body) == (400, {"error": "inputs: the signature has no input 'q'; it takes x"})


def test_metadata_lists_the_generated_signature_as_tf_serving_does(lite):
    info = {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "1", "name": ""}] * 2,
                                                  "unknown_rank": False}}
    expected = {"model_spec": {"name": "default", "signature_name": "", "version": "123"},
                "metadata": {"signature_def": {"signature_def": {"serving_default": {
                    "inputs": {"x": {**info, "name": "x"}},
                    "outputs": {"y": {**info, "name": "y"}},
                    "method_name": "tensorflow/serving/predict", "defaults": {}}}}}}
    assert rest_call(f"{lite.url}/default/metadata") == (200, expected)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "default"
    response = lite.predict.GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert list(signatures.signature_def) == ["serving_default"]
    assert signatures.signature_def["serving_default"].inputs["x"].name == "x"


def test_errors_are_the_saved_model_ones(lite):
    with pytest.raises(grpc.RpcError) as err:
        lite.predict.Predict(_request("default", np.int32([[1]])), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'x': expected dtype DT_FLOAT, got DT_INT32" in err.value.details()
    request = _request("default", np.float32([[1]]))
    request.model_spec.signature_name = "nope"
    with pytest.raises(grpc.RpcError) as err:
        lite.predict.Predict(request, timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details() == 'Serving signature key "nope" not found.'


def test_a_folder_with_both_files_serves_what_the_flag_or_config_says(lite, plain):
    def y(server, name):
        response = server.predict.Predict(_request(name, np.float32([[2.0]])), timeout=30)
        return list(response.outputs["y"].float_val)

    assert y(plain, "both") == [4.0]  # no flag: saved_model.pb (half_plus_three)
    assert y(lite, "both") == [3.0]  # --prefer_tflite_model: model.tflite (half_plus_two)
    assert y(lite, "both_saved_model") == [4.0]  # config: prefer_tflite_model: false
    assert y(plain, "both_lite") == [3.0]  # config: prefer_tflite_model: true


def test_broken_versions_report_their_error_and_the_rest_keeps_serving(lite):
    states = _status(lite, "broken")
    assert states[1] == (30, 0, "")  # AVAILABLE
    state, code, message = states[2]
    assert (state, code) == (50, Status.DATA_LOSS) and "truncated or corrupt" in message
    state, code, message = states[3]
    assert (state, code) == (50, Status.UNIMPLEMENTED) and "op BesselI0e" in message
    response = lite.predict.Predict(_request("broken", np.float32([[6.0]])), timeout=30)
    assert (list(response.outputs["y"].float_val), response.model_spec.version.value) == (
        [5.0], 1)
    assert _status(lite, "default")[123][0] == 30


def test_four_clients_on_two_interpreters_get_their_own_answers(lite):
    errors: list[str] = []
    channel_stub = lite.predict

    def client(k: int) -> None:
        for i in range(12):
            # 256 rows: each invoke runs the matmul chain long enough for requests to overlap
            x = (np.full((256, 64), 1000 * k + i, np.float32)
                 + np.arange(256, dtype=np.float32)[:, None] / 256)
            try:
                response = channel_stub.Predict(_request("signed", x), timeout=60)
                y = tf.make_ndarray(response.outputs["y"])
                if not np.array_equal(y, 0.5 * x + 2):
                    errors.append(f"client {k} request {i}: got {y[:, 0]} for {x[:, 0]}")
            except grpc.RpcError as exc:
                errors.append(f"client {k}: {exc.code()} {exc.details()}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []


def test_the_coral_flatbuffer_gives_litert_s_own_class_map(lite):
    if not CORAL.is_file() or not PHOTO.is_file():
        pytest.skip(f"Coral DeepLab or photos not found under {SHARED / 'models'}")
    import cv2
    from ai_edge_litert.interpreter import Interpreter

    frame = cv2.resize(cv2.imread(str(PHOTO))[:, :, ::-1], (513, 513))[None].copy()
    response = lite.predict.Predict(
        _request("coral", frame, key="MobilenetV2/MobilenetV2/input"), timeout=120)
    served = tf.make_ndarray(response.outputs["ArgMax"])
    interpreter = Interpreter(model_path=str(CORAL))  # builtin op resolver, XNNPACK
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], frame)
    interpreter.invoke()
    direct = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert served.shape == direct.shape == (1, 513, 513)
    np.testing.assert_array_equal(served, direct)
    assert 15 in np.unique(served)  # VOC "person": the astronaut is found
