"""The signatures of a ``model.tflite``, as SignatureDef messages and tensor bindings.

Contract: :func:`read_signatures` takes a built LiteRT ``Interpreter`` and the flatbuffer's
bytes and returns ``{key: Signature}``: each holds a ``SignatureDef`` (byte-compatible with
``tensorflow.SignatureDef``; what GetModelMetadata answers and what signatures.py checks
requests against) and where its tensors live (subgraph, tensor name -> tensor index).
Three sources, in TF Serving's order of preference:

1. TF Serving's own: serialized SignatureDefs in the flatbuffer's ``signature_defs_metadata``
   (tflite::GetSignatureDefMap; TF Serving's ``*_tflite_with_sigdef`` test models). Tensor
   names are fixed as TF Serving does: ``x:0`` becomes ``x`` when only that exists.
2. (edgeseg) LiteRT's native SignatureDefs, which ``tf.lite.TFLiteConverter`` writes (TF
   Serving ignores them): aliases as written, shapes from ``shape_signature`` (-1 where
   dynamic), one subgraph per signature.
3. None of the above: TF Serving's generated ``serving_default`` over the primary subgraph's
   inputs and outputs, each keyed by its tensor name up to the first ``:``, method
   ``tensorflow/serving/predict``.

Errors are :class:`~edgeseg.errors.EdgesegError` naming what is wrong. It imports no
TensorFlow: the messages come from edgeseg.agent.protos (TF Serving's wire format).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeseg.errors import DataLoss, InvalidArgument
from edgeseg.model_contract import PREDICT_METHOD_NAME
from edgeseg.model_contract import SERVING_DEFAULT as DEFAULT_SIGNATURE
from edgeseg.wire.framework import meta_graph_pb2 as protos

LEGACY_METADATA = "signature_defs_metadata"

# numpy dtype -> tensorflow.DataType number (types.proto), as TF Serving's TfLiteTypeToTfType
DATA_TYPES = {
    np.dtype(np.float32): 1, np.dtype(np.float64): 2, np.dtype(np.int32): 3,
    np.dtype(np.uint8): 4, np.dtype(np.int16): 5, np.dtype(np.int8): 6,
    np.dtype(np.object_): 7, np.dtype(np.bytes_): 7, np.dtype(np.complex64): 8,
    np.dtype(np.int64): 9, np.dtype(np.bool_): 10, np.dtype(np.uint16): 17,
    np.dtype(np.float16): 19, np.dtype(np.uint32): 22, np.dtype(np.uint64): 23,
}


@dataclass(frozen=True)
class Signature:
    """One signature: its SignatureDef and where its tensors are in the interpreter."""

    definition: Any  # protos.SignatureDef
    subgraph: int
    inputs: Mapping[str, int]  # tensor name -> tensor index in `subgraph`
    outputs: Mapping[str, int]


def data_type(dtype: Any, tensor: str) -> int:
    try:
        return DATA_TYPES[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise InvalidArgument(f"tensor {tensor!r} has type {dtype}, which TF Serving's API "
                              "has no DataType for") from None


def _tensor_info(details: Mapping[str, Any]) -> Any:
    info = protos.TensorInfo(name=details["name"], dtype=data_type(details["dtype"],
                                                                   details["name"]))
    shape = details.get("shape_signature")
    if shape is None or len(shape) != len(details["shape"]):
        shape = details["shape"]
    info.tensor_shape.SetInParent()
    for size in shape:
        info.tensor_shape.dim.add(size=int(size))
    return info


def read_signatures(interpreter: Any, model: bytes) -> dict[str, Signature]:
    legacy = legacy_signature_defs(model)
    if legacy:
        return _fixed_legacy(interpreter, legacy)
    native = interpreter._get_full_signature_list()
    if native:
        return {key: _native(interpreter, key, spec) for key, spec in native.items()}
    return {DEFAULT_SIGNATURE: _generated(interpreter)}


def _generated(interpreter: Any) -> Signature:
    """TF Serving's serving_default for a file without SignatureDefs."""
    sig = protos.SignatureDef(method_name=PREDICT_METHOD_NAME)
    ins, outs = interpreter.get_input_details(), interpreter.get_output_details()
    for target, tensors in ((sig.inputs, ins), (sig.outputs, outs)):
        for details in tensors:
            target[details["name"].split(":", 1)[0]].CopyFrom(_tensor_info(details))
    return Signature(sig, 0, {d["name"]: d["index"] for d in ins},
                     {d["name"]: d["index"] for d in outs})


def _native(interpreter: Any, key: str, spec: Mapping[str, Any]) -> Signature:
    subgraph = interpreter._interpreter.GetSubgraphIndexFromSignature(key)
    sig = protos.SignatureDef(method_name=PREDICT_METHOD_NAME)
    names: dict[str, dict[str, int]] = {"inputs": {}, "outputs": {}}
    for side, target in (("inputs", sig.inputs), ("outputs", sig.outputs)):
        for alias, index in spec[side].items():
            details = interpreter._get_tensor_details(index, subgraph)
            target[alias].CopyFrom(_tensor_info(details))
            names[side][details["name"]] = index
    return Signature(sig, subgraph, names["inputs"], names["outputs"])


def _fixed_legacy(interpreter: Any, defs: Mapping[str, Any]) -> dict[str, Signature]:
    """TF Serving's FixTfLiteTensorName: names must be primary-subgraph inputs/outputs."""
    ins = {d["name"]: d["index"] for d in interpreter.get_input_details()}
    outs = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    out: dict[str, Signature] = {}
    for key, sig in defs.items():
        for side, known in (("inputs", ins), ("outputs", outs)):
            for alias, info in getattr(sig, side).items():
                if info.name not in known:
                    legacy = info.name.split(":", 1)[0]
                    if legacy not in known:
                        raise InvalidArgument(
                            f"signature {key!r} {side[:-1]} {alias!r} references an unknown "
                            f"tensor {info.name!r}; the model's are {sorted(known)}")
                    info.name = legacy
        out[key] = Signature(sig, 0, ins, outs)
    return out


def legacy_signature_defs(model: bytes) -> dict[str, Any]:
    """SignatureDefs stored in the flatbuffer's metadata as TF Serving's tools write them."""
    from ai_edge_litert import schema_py_generated as schema
    from flatbuffers import flexbuffers

    root = schema.Model.GetRootAs(model, 0)
    for i in range(root.MetadataLength()):
        meta = root.Metadata(i)
        if meta.Name() != LEGACY_METADATA.encode():
            continue
        buffer = root.Buffers(meta.Buffer())
        if buffer.Offset() > 1:  # data stored after the flatbuffer (models over 2 GB)
            raw = model[buffer.Offset():buffer.Offset() + buffer.Size()]
        else:
            raw = buffer.DataAsNumpy().tobytes()
        try:
            entries = flexbuffers.GetRoot(raw).AsMap
            return {key.AsKey: protos.SignatureDef.FromString(
                        bytes(value.AsStringBytes if value.IsString else value.AsBlob))
                    for key, value in zip(entries.Keys, entries.Values, strict=True)}
        except Exception as exc:  # TF Serving: "Invalid SignatureDefs found in TfLite model"
            raise DataLoss(f"invalid SignatureDefs found in the TFLite model's "
                           f"{LEGACY_METADATA}: {type(exc).__name__}: {exc}") from None
    return {}
