"""Compatibility names for the agent's wire messages, which now live in :mod:`edgeseg.wire`.

The messages are defined once, in ``edgeseg.wire`` (shared by agent and server, TF-free,
byte-checked against ``tensorflow_serving.apis`` in tests/test_wire_messages.py); this
module only keeps the short names older code and tests use.
"""

from __future__ import annotations

from edgeseg.wire.apis import (
    SIGNATURE_DEF_MAP_TYPE_URL as SIGNATURE_DEF_MAP_TYPE,
)
from edgeseg.wire.apis import get_model_metadata_pb2, model_pb2, predict_pb2
from edgeseg.wire.framework import meta_graph_pb2, tensor_pb2, tensor_shape_pb2
from edgeseg.wire.services import GET_MODEL_METADATA_METHOD, PREDICT_METHOD

TensorShapeProto = tensor_shape_pb2.TensorShapeProto
TensorProto = tensor_pb2.TensorProto
TensorInfo = meta_graph_pb2.TensorInfo
SignatureDef = meta_graph_pb2.SignatureDef
ModelSpec = model_pb2.ModelSpec
PredictRequest = predict_pb2.PredictRequest
PredictResponse = predict_pb2.PredictResponse
GetModelMetadataRequest = get_model_metadata_pb2.GetModelMetadataRequest
GetModelMetadataResponse = get_model_metadata_pb2.GetModelMetadataResponse
SignatureDefMap = get_model_metadata_pb2.SignatureDefMap

__all__ = [
    "GET_MODEL_METADATA_METHOD", "PREDICT_METHOD", "SIGNATURE_DEF_MAP_TYPE",
    "GetModelMetadataRequest", "GetModelMetadataResponse", "ModelSpec", "PredictRequest",
    "PredictResponse", "SignatureDef", "SignatureDefMap", "TensorInfo", "TensorProto",
    "TensorShapeProto",
]
