"""A DeepLab export from `edgeseg export` behind `edgeseg serve`, called as the tutorial does.

The tutorial's client: signature `predict_images`, a float32 image [1, h, w, 3], int32
`height` and `width` of shape [1], and `segmentation_map` read as int64 [1, h, w].
One export (input size 65, random weights, fixed seed) is served twice from one base path:
`deeplab` with {serve} and `deeplab_int8` with {serve_quantized}; answers must equal the
same signature run in-process on the same meta-graph.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from edgeseg.serving.loader import Loader

from .conftest import EDGESEG, REPO, free_port, rest_call

HEIGHT, WIDTH = 48, 80


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "deeplab"
    subprocess.run([*EDGESEG, "export", "deeplabv3", "--output", str(base), "--version", "1",
                    "--input-size", "65", "--seed", "7", "--quiet"],
                   cwd=REPO, check=True, capture_output=True, timeout=600)
    return base


@pytest.fixture(scope="module")
def deeplab(serve, export, tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "deeplab.config"
    config.write_text(f"""model_config_list {{
      config {{ name: "deeplab" base_path: "{export}" }}
      config {{ name: "deeplab_int8" base_path: "{export}" saved_model_tags: "serve_quantized" }}
    }}""")
    port = free_port()
    server = serve(f"--model_config_file={config}", f"--rest_api_port={port}")
    server.url = server.serve_rest(port)
    return server


def image():
    return np.random.default_rng(0).uniform(0, 255, (1, HEIGHT, WIDTH, 3)).astype(np.float32)


def tutorial_request(name):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = "predict_images"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(image(), shape=[1, HEIGHT, WIDTH, 3]))
    request.inputs["height"].CopyFrom(tf.make_tensor_proto(HEIGHT, shape=[1], dtype=tf.int32))
    request.inputs["width"].CopyFrom(tf.make_tensor_proto(WIDTH, shape=[1], dtype=tf.int32))
    return request


def in_process(export, tag):
    model = Loader(export / "1", [tag]).load()
    try:
        signature = model.signature_defs["predict_images"]
        feeds = {signature.inputs["images"].name: image(),
                 signature.inputs["height"].name: np.int32([HEIGHT]),
                 signature.inputs["width"].name: np.int32([WIDTH])}
        return model.run(feeds, [signature.outputs["segmentation_map"].name])[0]
    finally:
        model.close()


@pytest.mark.parametrize(("name", "tag"), [("deeplab", "serve"),
                                           ("deeplab_int8", "serve_quantized")])
def test_tutorial_client(deeplab, export, name, tag):
    response = deeplab.predict.Predict(tutorial_request(name), timeout=120)
    seg = response.outputs["segmentation_map"]
    assert seg.dtype == tf.int64.as_datatype_enum
    mask = np.asarray(seg.int64_val, dtype=np.int64).reshape(1, HEIGHT, WIDTH)  # as tutorial
    assert np.array_equal(tf.make_ndarray(seg), mask)
    assert mask.min() >= 0 and mask.max() < 21
    assert np.array_equal(mask, in_process(export, tag))
    assert (response.model_spec.name, response.model_spec.version.value) == (name, 1)


def test_quantized_graph_is_a_different_graph(deeplab):
    float_map, int8_map = (
        tf.make_ndarray(deeplab.predict.Predict(tutorial_request(n), timeout=120)
                        .outputs["segmentation_map"])
        for n in ("deeplab", "deeplab_int8")
    )
    assert not np.array_equal(float_map, int8_map)


def test_uint8_serving_default(deeplab):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "deeplab"
    frame = np.random.default_rng(1).integers(0, 255, (2, HEIGHT, WIDTH, 3), dtype=np.uint8)
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(frame))
    response = deeplab.predict.Predict(request, timeout=120)
    seg = tf.make_ndarray(response.outputs["segmentation_map"])
    assert seg.dtype == np.uint8 and seg.shape == (2, HEIGHT, WIDTH)
    assert response.model_spec.signature_name == "serving_default"


def test_encoded_jpeg(deeplab):
    import cv2

    frame = np.random.default_rng(2).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    ok, jpeg = cv2.imencode(".jpg", frame)
    assert ok
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "deeplab"
    request.model_spec.signature_name = "predict_encoded"
    request.inputs["images"].CopyFrom(tf.make_tensor_proto([jpeg.tobytes()]))
    response = deeplab.predict.Predict(request, timeout=120)
    seg = tf.make_ndarray(response.outputs["segmentation_map"])
    assert seg.shape == (1, HEIGHT, WIDTH) and seg.max() < 21


def test_a_shape_the_model_cannot_take_names_the_input(deeplab):
    import grpc

    request = tutorial_request("deeplab")
    request.inputs["images"].CopyFrom(tf.make_tensor_proto(image()[0]))  # [h,w,3], no batch
    with pytest.raises(grpc.RpcError) as err:
        deeplab.predict.Predict(request, timeout=120)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"input 'images': expected shape [1,-1,-1,3], got [{HEIGHT},{WIDTH},3]" in (
        err.value.details())
    assert deeplab.predict.Predict(tutorial_request("deeplab"), timeout=120).outputs[
        "segmentation_map"].int64_val  # and it keeps serving


def test_rest_b64_jpeg_to_predict_encoded(deeplab):
    import base64

    import cv2

    frame = np.random.default_rng(3).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", frame)[1].tobytes()
    body = {"signature_name": "predict_encoded",
            "instances": [{"b64": base64.b64encode(jpeg).decode()}]}
    status, answer = rest_call(f"{deeplab.url}/deeplab:predict", body)
    assert status == 200, answer
    (mask,) = answer["predictions"]
    mask = np.array(mask)
    assert mask.shape == (HEIGHT, WIDTH) and 0 <= mask.min() and mask.max() < 21
