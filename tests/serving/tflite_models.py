"""Small real TFLite flatbuffers for the model.tflite tests, made with TensorFlow's converter.

- :func:`signed_model`: LiteRT-native SignatureDefs (what tf.lite.TFLiteConverter writes):
  ``serving_default`` (x [-1,64] float -> y = 0.5x + 2, and z: a chain of matmuls so that
  one invoke takes a few ms and concurrent requests overlap) and ``double`` (x -> 2x), each
  in its own subgraph.
- :func:`with_legacy_signature_defs`: TF Serving's own way, SignatureDefs serialized into the
  flatbuffer's ``signature_defs_metadata`` (its ``*_tflite_with_sigdef`` test models).
- :func:`custom_op_model`: uses ``BesselI0e`` as a custom op, which LiteRT does not have.
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
import tensorflow as tf
from ai_edge_litert import schema_py_generated as schema
from flatbuffers import flexbuffers

WIDTH = 64


class _Signed(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        self.w = tf.constant(rng.normal(0, 0.1, (WIDTH, WIDTH)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, WIDTH], tf.float32, name="x")])
    def serve(self, x):
        z = x
        for _ in range(12):
            z = tf.tanh(tf.matmul(z, self.w))
        return {"y": x * 0.5 + 2.0, "z": z}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def double(self, x):
        return {"doubled": x * 2.0}


def signed_model(path: Path) -> Path:
    module = _Signed()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.serve.get_concrete_function(), module.double.get_concrete_function()], module)
    data = converter.convert()
    # the converter names signatures after the functions; TF Serving's default key is needed
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    for sig in model.signatureDefs:
        if sig.signatureKey == b"serve":
            sig.signatureKey = b"serving_default"
    return _write(model, path)


def with_legacy_signature_defs(data: bytes, signature_defs: dict, path: Path) -> Path:
    """``data`` with SignatureDef protos stored as TF Serving's SetSignatureDefMap does."""
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    blob = flexbuffers.Dumps({k: v.SerializeToString() for k, v in signature_defs.items()})
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(blob, dtype=np.uint8)
    model.buffers.append(buffer)
    meta = schema.MetadataT()
    meta.name = "signature_defs_metadata"
    meta.buffer = len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), meta]
    return _write(model, path)


class _Custom(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([2], tf.float32, name="x")])
    def f(self, x):
        return {"y": tf.math.special.bessel_i0e(x)}


def custom_op_model(path: Path) -> Path:
    module = _Custom()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.f.get_concrete_function()], module)
    converter.allow_custom_ops = True
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(converter.convert())
    return path


def _write(model, path: Path) -> Path:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(builder.Output()))
    return path
