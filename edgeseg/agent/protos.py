"""The wire subset of TensorFlow Serving's Predict API, without importing TensorFlow.

Contract: the messages here have the same field numbers and wire types as
``tensorflow_serving/apis/{model,predict,get_model_metadata}.proto`` and
``tensorflow/core/framework/{tensor,tensor_shape,meta_graph}.proto``, so bytes made here
parse with the official classes and vice versa (tests/agent/test_protos.py checks it
against ``tensorflow_serving.apis``). Fields the agent never reads (sparse tensors,
half/complex values, resource handles) are left out; protobuf keeps them as unknown
fields, it does not fail.

Why not the official modules: ``tensorflow_serving.apis.predict_pb2`` imports
``tensorflow.core...``, which runs ``tensorflow/__init__.py`` and loads the whole
runtime (3.4 s and 585 MB RSS measured on the dev box) in a process that only needs
to fill a few byte strings. The messages live in a private descriptor pool, so they
never clash with the official ones when both are loaded (as in the tests).
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto

# field spec: (name, number, type, label, type_name or None)
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_INT32, _INT64, _STR, _BYTES, _BOOL = (
    _F.TYPE_INT32, _F.TYPE_INT64, _F.TYPE_STRING, _F.TYPE_BYTES, _F.TYPE_BOOL)
_FLOAT, _DOUBLE, _MSG = _F.TYPE_FLOAT, _F.TYPE_DOUBLE, _F.TYPE_MESSAGE


def _field(msg, name, number, ftype, label=_OPT, type_name=None):
    f = msg.field.add(name=name, number=number, type=ftype, label=label)
    if type_name:
        f.type_name = type_name
    return f


def _map(msg, name, number, value_type_name):
    """A proto3 map<string, Message> field: a nested *Entry message plus a repeated field."""
    entry_name = "".join(part.title() for part in name.split("_")) + "Entry"
    entry = msg.nested_type.add(name=entry_name)
    entry.options.map_entry = True
    _field(entry, "key", 1, _STR)
    _field(entry, "value", 2, _MSG, type_name=value_type_name)
    _field(msg, name, number, _MSG, _REP, f"{msg.name}.{entry_name}")


def _tensorflow_file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(
        name="edgeseg_wire/tensorflow.proto", package="tensorflow", syntax="proto3")
    shape = fd.message_type.add(name="TensorShapeProto")
    dim = shape.nested_type.add(name="Dim")
    _field(dim, "size", 1, _INT64)
    _field(dim, "name", 2, _STR)
    _field(shape, "dim", 2, _MSG, _REP, ".tensorflow.TensorShapeProto.Dim")
    _field(shape, "unknown_rank", 3, _BOOL)

    tensor = fd.message_type.add(name="TensorProto")
    _field(tensor, "dtype", 1, _INT32)  # enum DataType on the wire is a varint
    _field(tensor, "tensor_shape", 2, _MSG, type_name=".tensorflow.TensorShapeProto")
    _field(tensor, "version_number", 3, _INT32)
    _field(tensor, "tensor_content", 4, _BYTES)
    _field(tensor, "float_val", 5, _FLOAT, _REP)
    _field(tensor, "double_val", 6, _DOUBLE, _REP)
    _field(tensor, "int_val", 7, _INT32, _REP)
    _field(tensor, "string_val", 8, _BYTES, _REP)
    _field(tensor, "int64_val", 10, _INT64, _REP)
    _field(tensor, "bool_val", 11, _BOOL, _REP)

    info = fd.message_type.add(name="TensorInfo")
    _field(info, "name", 1, _STR)
    _field(info, "dtype", 2, _INT32)
    _field(info, "tensor_shape", 3, _MSG, type_name=".tensorflow.TensorShapeProto")

    sig = fd.message_type.add(name="SignatureDef")
    _map(sig, "inputs", 1, ".tensorflow.TensorInfo")
    _map(sig, "outputs", 2, ".tensorflow.TensorInfo")
    _field(sig, "method_name", 3, _STR)
    return fd


def _serving_file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(
        name="edgeseg_wire/serving.proto", package="tensorflow.serving", syntax="proto3",
        dependency=["edgeseg_wire/tensorflow.proto"])
    # google.protobuf.Int64Value and Any, re-declared: same wire, no extra dependency.
    int64_value = fd.message_type.add(name="Int64Value")
    _field(int64_value, "value", 1, _INT64)
    any_msg = fd.message_type.add(name="Any")
    _field(any_msg, "type_url", 1, _STR)
    _field(any_msg, "value", 2, _BYTES)

    spec = fd.message_type.add(name="ModelSpec")
    _field(spec, "name", 1, _STR)
    _field(spec, "version", 2, _MSG, type_name=".tensorflow.serving.Int64Value")
    _field(spec, "signature_name", 3, _STR)
    _field(spec, "version_label", 4, _STR)

    req = fd.message_type.add(name="PredictRequest")
    _field(req, "model_spec", 1, _MSG, type_name=".tensorflow.serving.ModelSpec")
    _map(req, "inputs", 2, ".tensorflow.TensorProto")
    _field(req, "output_filter", 3, _STR, _REP)

    resp = fd.message_type.add(name="PredictResponse")
    _map(resp, "outputs", 1, ".tensorflow.TensorProto")
    _field(resp, "model_spec", 2, _MSG, type_name=".tensorflow.serving.ModelSpec")

    mreq = fd.message_type.add(name="GetModelMetadataRequest")
    _field(mreq, "model_spec", 1, _MSG, type_name=".tensorflow.serving.ModelSpec")
    _field(mreq, "metadata_field", 2, _STR, _REP)

    mresp = fd.message_type.add(name="GetModelMetadataResponse")
    _field(mresp, "model_spec", 1, _MSG, type_name=".tensorflow.serving.ModelSpec")
    _map(mresp, "metadata", 2, ".tensorflow.serving.Any")

    sigmap = fd.message_type.add(name="SignatureDefMap")
    _map(sigmap, "signature_def", 1, ".tensorflow.SignatureDef")
    return fd


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_tensorflow_file())
_POOL.Add(_serving_file())


def _cls(full_name: str):
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(full_name))


TensorShapeProto = _cls("tensorflow.TensorShapeProto")
TensorProto = _cls("tensorflow.TensorProto")
TensorInfo = _cls("tensorflow.TensorInfo")
SignatureDef = _cls("tensorflow.SignatureDef")
ModelSpec = _cls("tensorflow.serving.ModelSpec")
PredictRequest = _cls("tensorflow.serving.PredictRequest")
PredictResponse = _cls("tensorflow.serving.PredictResponse")
GetModelMetadataRequest = _cls("tensorflow.serving.GetModelMetadataRequest")
GetModelMetadataResponse = _cls("tensorflow.serving.GetModelMetadataResponse")
SignatureDefMap = _cls("tensorflow.serving.SignatureDefMap")

# gRPC method paths (tensorflow_serving/apis/prediction_service.proto).
PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
GET_MODEL_METADATA_METHOD = "/tensorflow.serving.PredictionService/GetModelMetadata"
SIGNATURE_DEF_MAP_TYPE = "type.googleapis.com/tensorflow.serving.SignatureDefMap"
