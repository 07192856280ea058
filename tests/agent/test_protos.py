"""The agent's TF-free wire messages are byte-compatible with TF Serving's official ones."""

import subprocess
import sys

import numpy as np
import pytest

from edgeseg.agent import protos
from edgeseg.agent.config import ServerConfig
from edgeseg.agent.inference import build_request, input_size_from_metadata
from edgeseg.agent.tensors import from_tensor

predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2")
get_model_metadata_pb2 = pytest.importorskip("tensorflow_serving.apis.get_model_metadata_pb2")


@pytest.mark.parametrize("signature", ["serving_default", "predict_encoded"])
def test_request_bytes_parse_with_official_classes_and_back(signature):
    image = np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    cfg = ServerConfig(model="deeplab", signature=signature, version=7)
    ours = build_request(image, cfg, None)
    official = predict_pb2.PredictRequest.FromString(ours.SerializeToString())
    assert official.model_spec.name == "deeplab"
    assert official.model_spec.version.value == 7
    assert official.model_spec.signature_name == signature
    assert official.SerializeToString() == ours.SerializeToString()
    if signature == "serving_default":
        import tensorflow as tf

        sent = tf.make_ndarray(official.inputs["images"])
        assert sent.shape == (1, 6, 8, 3) and sent.dtype == np.uint8
        assert (sent[0] == image[:, :, ::-1]).all()  # BGR frame -> RGB tensor


def test_official_response_parses_with_ours():
    import tensorflow as tf

    official = predict_pb2.PredictResponse()
    official.model_spec.name = "deeplab"
    official.model_spec.version.value = 3
    mask = np.arange(12, dtype=np.int64).reshape(1, 3, 4)
    official.outputs["segmentation_map"].CopyFrom(tf.make_tensor_proto(mask))
    ours = protos.PredictResponse.FromString(official.SerializeToString())
    assert ours.model_spec.version.value == 3
    assert (from_tensor(ours.outputs["segmentation_map"]) == mask).all()


def test_official_metadata_gives_fixed_input_size():
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2 as gmm

    sigmap = gmm.SignatureDefMap()
    inp = sigmap.signature_def["serving_default"].inputs["images"]
    for n in (-1, 65, 97, 3):
        inp.tensor_shape.dim.add(size=n)
    assert isinstance(inp, meta_graph_pb2.TensorInfo)
    reply = gmm.GetModelMetadataResponse()
    reply.metadata["signature_def"].Pack(sigmap)
    ours = protos.GetModelMetadataResponse.FromString(reply.SerializeToString())
    assert input_size_from_metadata(ours, "serving_default") == (65, 97)
    assert input_size_from_metadata(ours, "predict_encoded") is None


def test_agent_modules_do_not_import_tensorflow():
    code = ("import sys, edgeseg.agent.pipeline, edgeseg.agent.command, edgeseg.masks, "
            "edgeseg.mqtt_contract, edgeseg.subscribe, edgeseg.view; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
