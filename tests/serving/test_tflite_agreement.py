"""The Coral VOC export behind one server, twice: ``deeplab_int8`` from its
{serve_quantized} meta-graph (int8 emulated in TensorFlow) and ``deeplab_tflite`` from its
``model.tflite`` (LiteRT, the per-model ``prefer_tflite_model`` choice). On every shared
photo both answer Predict through the official stubs, and the class maps agree on >= 99%
of the pixels with TFLite's reference kernels (--tflite_reference_kernels), which
serve_quantized reproduces. XNNPACK rounds differently and is not held to 99% here
(docs/serving.md gives its figures).
"""

from __future__ import annotations

import subprocess

import cv2
import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2

from edgeseg.wire.tensors import decode, encode

from .conftest import EDGESEG, REPO

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "grace_hopper.bmp",
          "bird_segmentation.bmp", "dog_segmentation.bmp")


@pytest.fixture(scope="module")
def both(serve, shared_models, tmp_path_factory):
    base = tmp_path_factory.mktemp("coral") / "deeplab"
    subprocess.run([*EDGESEG, "export",
                    str(shared_models / "deeplab/deeplabv3_mnv2_pascal_quant.tflite"),
                    "--output", str(base), "--quiet"],
                   cwd=REPO, check=True, capture_output=True, timeout=900)
    assert (base / "1" / "model.tflite").is_file()
    config = tmp_path_factory.mktemp("config") / "models.config"
    config.write_text(f"""model_config_list {{
      config {{ name: "deeplab_int8" base_path: "{base}" saved_model_tags: "serve_quantized" }}
      config {{ name: "deeplab_tflite" base_path: "{base}" prefer_tflite_model: true }}
    }}""")
    return serve(f"--model_config_file={config}", "--tflite_reference_kernels=true")


def class_map(server, model: str, rgb: np.ndarray) -> np.ndarray:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs["images"].ParseFromString(encode(rgb[None]).SerializeToString())
    reply = server.predict.Predict(request, timeout=120)
    assert reply.model_spec.name == model
    return decode(reply.outputs["segmentation_map"])[0]


@pytest.mark.slow
@pytest.mark.parametrize("photo", PHOTOS)
def test_model_tflite_agrees_with_serve_quantized(both, shared_models, photo):
    bgr = cv2.imread(str(shared_models / "images" / photo), cv2.IMREAD_COLOR)
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    quantized = class_map(both, "deeplab_int8", rgb)
    tflite = class_map(both, "deeplab_tflite", rgb)
    assert tflite.shape == quantized.shape == rgb.shape[:2]
    agreement = float(np.mean(tflite == quantized))
    assert agreement >= 0.99, f"{photo}: {agreement:.4f}"
    assert len(np.unique(quantized)) > 1  # a real scene, not all background
