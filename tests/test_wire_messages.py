"""edgeseg.wire's TF-free messages are TF Serving's: same descriptors, same bytes both ways.

Every message of every file the wire package mirrors is compared field by field with the
official descriptor (name, number, type, label, message/enum type, oneof), and filled with
values in every field (each oneof member in turn) to check that bytes made by one side parse
with the other and serialize back to the same bytes (deterministic serialization).
"""

from __future__ import annotations

import importlib
import random
import struct

import pytest
from google.protobuf import descriptor, descriptor_pool, message_factory

from edgeseg.wire import apis, framework

pytest.importorskip("tensorflow_serving.apis.predict_pb2", reason="needs edgeseg[tensorflow]")

OFFICIAL_MODULES = [
    "tensorflow_serving.apis.prediction_log_pb2", "tensorflow_serving.apis.model_service_pb2",
    "tensorflow_serving.apis.prediction_service_pb2", "tensorflow_serving.apis.input_pb2",
    "tensorflow.core.example.example_pb2",
]
for _name in OFFICIAL_MODULES:
    importlib.import_module(_name)
OFFICIAL = descriptor_pool.Default()

NAMESPACES = [getattr(framework, n) for n in dir(framework) if n.endswith("_pb2")] + \
    [getattr(apis, n) for n in dir(apis) if n.endswith("_pb2")]
# What the wire package deliberately leaves out (kept as unknown fields on the wire).
OMITTED_FIELDS = {
    "tensorflow.TensorInfo": {"composite_tensor", "CompositeTensor"},
    "tensorflow.serving.PredictionLog": {"session_run_log"},
}
# Files mirrored only in part: the messages the wire package defines from them.
PARTIAL_FILES = {
    "tensorflow/core/protobuf/meta_graph.proto": {"TensorInfo", "SignatureDef"},
    "tensorflow_serving/apis/prediction_log.proto": {
        "ClassifyLog", "RegressLog", "PredictLog", "PredictStreamedLog", "MultiInferenceLog",
        "PredictionLog"},
}


def _all_messages(desc: descriptor.Descriptor):
    yield desc
    for nested in desc.nested_types:
        yield from _all_messages(nested)


OURS = [m for ns in NAMESPACES for top in ns.DESCRIPTOR.message_types_by_name.values()
        for m in _all_messages(top)]


def _field_key(f: descriptor.FieldDescriptor):
    target = f.message_type or f.enum_type
    return (f.number, f.type, f.is_repeated if hasattr(f, "is_repeated") else f.label,
            target.full_name if target else None,
            f.containing_oneof.name if f.containing_oneof else None)


@pytest.mark.parametrize("ns", NAMESPACES, ids=lambda ns: ns.DESCRIPTOR.name)
def test_every_official_message_and_enum_of_a_file_is_there(ns):
    official = OFFICIAL.FindFileByName(ns.DESCRIPTOR.name)
    expected = set(official.message_types_by_name)
    if ns.DESCRIPTOR.name in PARTIAL_FILES:
        expected &= PARTIAL_FILES[ns.DESCRIPTOR.name]
    assert set(ns.DESCRIPTOR.message_types_by_name) == expected
    for name, enum in official.enum_types_by_name.items():
        assert [(v.name, v.number) for v in getattr(ns, name).DESCRIPTOR.values] == \
            [(v.name, v.number) for v in enum.values]


@pytest.mark.parametrize("ours", OURS, ids=lambda d: d.full_name)
def test_fields_match_the_official_descriptor(ours):
    official = OFFICIAL.FindMessageTypeByName(ours.full_name)
    left_out = OMITTED_FIELDS.get(ours.full_name, set())
    assert {f.name: _field_key(f) for f in ours.fields} == \
        {f.name: _field_key(f) for f in official.fields if f.name not in left_out}
    assert {n.name for n in ours.nested_types} == \
        {n.name for n in official.nested_types if n.name not in left_out}
    for enum in official.enum_types:
        assert [(v.name, v.number) for v in ours.enum_types_by_name[enum.name].values] == \
            [(v.name, v.number) for v in enum.values]


def _scalar(f: descriptor.FieldDescriptor, rng: random.Random):
    t = descriptor.FieldDescriptor
    if f.type == t.TYPE_ENUM:
        return rng.choice([v.number for v in f.enum_type.values])
    if f.type in (t.TYPE_INT32, t.TYPE_SINT32, t.TYPE_SFIXED32):
        return rng.randint(-2**31, 2**31 - 1)
    if f.type in (t.TYPE_INT64, t.TYPE_SINT64, t.TYPE_SFIXED64):
        return rng.randint(-2**63, 2**63 - 1)
    if f.type in (t.TYPE_UINT32, t.TYPE_FIXED32):
        return rng.randint(0, 2**32 - 1)
    if f.type in (t.TYPE_UINT64, t.TYPE_FIXED64):
        return rng.randint(0, 2**64 - 1)
    if f.type == t.TYPE_FLOAT:
        return struct.unpack("f", struct.pack("f", rng.uniform(-1e6, 1e6)))[0]
    if f.type == t.TYPE_DOUBLE:
        return rng.uniform(-1e300, 1e300)
    if f.type == t.TYPE_BOOL:
        return True
    if f.type == t.TYPE_STRING:
        return "".join(rng.choice("abcé😀/_") for _ in range(rng.randint(1, 6)))
    return bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))


def populate(msg, rng: random.Random, choice: int, depth: int = 0) -> None:
    """Set every field (the ``choice``-th member of each oneof), recursing 3 levels."""
    desc = msg.DESCRIPTOR
    for f in desc.fields:
        if f.name in OMITTED_FIELDS.get(desc.full_name, ()):
            continue
        group = f.containing_oneof
        if group is not None and group.fields[choice % len(group.fields)] is not f:
            continue
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            value_field = f.message_type.fields_by_name["value"]
            for _ in range(2):
                key = _scalar(f.message_type.fields_by_name["key"], rng)
                if value_field.message_type is None:
                    getattr(msg, f.name)[key] = _scalar(value_field, rng)
                elif depth < 3:
                    populate(getattr(msg, f.name)[key], rng, choice, depth + 1)
        elif f.message_type is not None:
            if depth >= 3:
                continue
            if f.is_repeated if hasattr(f, "is_repeated") else f.label == f.LABEL_REPEATED:
                for _ in range(2):
                    populate(getattr(msg, f.name).add(), rng, choice, depth + 1)
            else:
                populate(getattr(msg, f.name), rng, choice, depth + 1)
                getattr(msg, f.name).SetInParent()
        elif f.is_repeated if hasattr(f, "is_repeated") else f.label == f.LABEL_REPEATED:
            getattr(msg, f.name).extend(_scalar(f, rng) for _ in range(3))
        else:
            setattr(msg, f.name, _scalar(f, rng))


TOP_LEVEL = [m for ns in NAMESPACES for m in ns.DESCRIPTOR.message_types_by_name.values()]


@pytest.mark.parametrize("choice", [0, 1, 2])
@pytest.mark.parametrize("desc", TOP_LEVEL, ids=lambda d: d.full_name)
def test_bytes_round_trip_both_ways(desc, choice):
    ours_cls = message_factory.GetMessageClass(desc)
    official_cls = message_factory.GetMessageClass(OFFICIAL.FindMessageTypeByName(desc.full_name))
    for make, other in ((ours_cls, official_cls), (official_cls, ours_cls)):
        filled = make()
        populate(filled, random.Random(f"{desc.full_name}{choice}"), choice)
        data = filled.SerializeToString(deterministic=True)
        assert data or not desc.fields
        parsed = other.FromString(data)
        assert parsed.SerializeToString(deterministic=True) == data
        assert make.FromString(parsed.SerializeToString()) == filled


def test_signature_def_map_packs_into_any_as_tf_serving_does():
    from tensorflow_serving.apis import get_model_metadata_pb2 as official

    sigmap = apis.get_model_metadata_pb2.SignatureDefMap()
    info = sigmap.signature_def["serving_default"].inputs["images"]
    info.name, info.dtype = "images:0", framework.types_pb2.DT_UINT8
    info.tensor_shape.dim.add(size=-1)
    reply = apis.get_model_metadata_pb2.GetModelMetadataResponse()
    reply.model_spec.name = "deeplab"
    reply.metadata["signature_def"].Pack(sigmap)
    assert reply.metadata["signature_def"].type_url == apis.SIGNATURE_DEF_MAP_TYPE_URL
    theirs = official.GetModelMetadataResponse.FromString(reply.SerializeToString())
    unpacked = official.SignatureDefMap()
    assert theirs.metadata["signature_def"].Unpack(unpacked)
    assert unpacked.signature_def["serving_default"].inputs["images"].name == "images:0"
    # and back: the official Any unpacks into ours
    back = apis.get_model_metadata_pb2.GetModelMetadataResponse.FromString(
        theirs.SerializeToString())
    mine = apis.get_model_metadata_pb2.SignatureDefMap()
    assert back.metadata["signature_def"].Unpack(mine) and mine == sigmap


def test_namespaces_read_like_generated_modules():
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import get_model_status_pb2

    assert framework.types_pb2.DT_UINT64 == types_pb2.DT_UINT64
    assert framework.types_pb2.DataType.Name(19) == "DT_HALF"
    ours = apis.get_model_status_pb2.ModelVersionStatus
    assert ours.AVAILABLE == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    spec = apis.model_pb2.ModelSpec(name="m", version_label="stable")
    assert spec.WhichOneof("version_choice") == "version_label"
