"""The one TensorProto codec (edgeseg.wire.tensors) against TensorFlow's own, by properties.

For random arrays of every dtype the codec handles: what ``tf.make_tensor_proto`` writes
decodes to the array; what ``encode`` writes (typed fields or tensor_content) reads back with
``tf.make_ndarray``; and a typed field shorter than its shape pads exactly as
``tf.make_ndarray`` pads it. Malformed protos are InvalidArgument naming the problem.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgeseg.errors import InvalidArgument
from edgeseg.wire.framework import tensor_pb2, types_pb2
from edgeseg.wire.tensors import decode, encode

tf = pytest.importorskip("tensorflow", reason="needs edgeseg[tensorflow] to compare with TF")
from tensorflow.core.framework import tensor_pb2 as official_pb2  # noqa: E402

NUMERIC = ["float32", "float64", "int32", "uint8", "int16", "int8", "uint16", "int64",
           "uint32", "uint64", "bool", "float16", "complex64", "complex128", "bfloat16"]
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


@st.composite
def arrays(draw, dtypes=(*NUMERIC, "bytes")):
    name = draw(st.sampled_from(dtypes))
    shape = draw(shapes)
    if name == "bytes":
        return draw(hnp.arrays(object, shape, elements=st.binary(max_size=6)))
    if name == "bfloat16":
        values = draw(hnp.arrays(np.float32, shape, elements=st.floats(-1e4, 1e4, width=32)))
        return values.astype(ml_dtypes.bfloat16)
    return draw(hnp.arrays(np.dtype(name), shape))


def official(ours) -> official_pb2.TensorProto:
    return official_pb2.TensorProto.FromString(ours.SerializeToString())


def ours(theirs) -> tensor_pb2.TensorProto:
    return tensor_pb2.TensorProto.FromString(theirs.SerializeToString())


def assert_same(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if got.dtype == object:
        assert got.tolist() == expected.tolist()
    else:  # NaN equals NaN here; -0.0 equals 0.0
        np.testing.assert_array_equal(got.astype(np.complex128) if got.dtype.kind == "c"
                                      else got.astype(np.float64), expected.astype(
                                          np.complex128 if got.dtype.kind == "c" else np.float64))


@SETTINGS
@given(arrays())
def test_decodes_what_tensorflow_encodes(array):
    assert_same(decode(ours(tf.make_tensor_proto(array))), array)


@SETTINGS
@given(arrays(), st.booleans())
def test_tensorflow_decodes_what_we_encode(array, content):
    proto = encode(array, content=content)
    assert_same(tf.make_ndarray(official(proto)), array)
    assert_same(decode(proto), array)
    if content and array.dtype != object:
        assert not proto.float_val and not proto.int_val and not proto.half_val
    if not content and array.size and array.dtype != object:
        assert not proto.tensor_content


@SETTINGS
@given(arrays(), st.integers(0, 4), st.data())
def test_short_typed_fields_pad_as_tensorflow_does(array, extra, data):
    """k values for a shape of k + extra elements: TF repeats the last value (zeros if k=0)."""
    flat = array.ravel()
    if flat.dtype == object and flat.size == 0:
        flat = np.array([b"x"], dtype=object)  # TF pads an empty string field with str ''
    proto = encode(flat)
    shape = [flat.size + extra] if data.draw(st.booleans()) else [1, flat.size + extra]
    del proto.tensor_shape.dim[:]
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    assert_same(decode(proto), tf.make_ndarray(official(proto)))


@SETTINGS
@given(arrays(dtypes=("uint8", "int8", "int16", "uint16", "int32", "int64", "uint32",
                      "uint64", "bool", "float16")))
def test_vectorised_integer_encoding_gives_the_same_bytes(array):
    proto = encode(array)
    field = {"int64": "int64_val", "uint32": "uint32_val", "uint64": "uint64_val",
             "bool": "bool_val", "float16": "half_val"}.get(array.dtype.name, "int_val")
    reference = tensor_pb2.TensorProto(dtype=proto.dtype)
    reference.tensor_shape.CopyFrom(proto.tensor_shape)
    values = array.view(np.uint16) if field == "half_val" else array
    getattr(reference, field).extend(values.ravel().tolist())
    assert proto.SerializeToString() == reference.SerializeToString()


def test_encode_fills_an_official_proto_in_place():
    out = official_pb2.TensorProto()
    encode(np.uint8([[1, 200]]), out=out)
    assert tf.make_ndarray(out).tolist() == [[1, 200]] and out.dtype == types_pb2.DT_UINT8


def _proto(dtype, dims, **values):
    proto = tensor_pb2.TensorProto(dtype=dtype, **values)
    for d in dims:
        proto.tensor_shape.dim.add(size=d)
    return proto


@pytest.mark.parametrize(("proto", "complaint"), [
    (_proto(types_pb2.DT_FLOAT, [2], float_val=[1, 2, 3]), "3 values given for shape"),
    (_proto(types_pb2.DT_FLOAT, [3], tensor_content=b"\0" * 4), "needs 12"),
    (_proto(types_pb2.DT_FLOAT, [-1], float_val=[1]), "negative dimension"),
    (_proto(types_pb2.DT_QINT8, [1]), "DT_QINT8 is not supported"),
    (_proto(types_pb2.DT_VARIANT, [1]), "DT_VARIANT is not supported"),
    (_proto(types_pb2.DT_FLOAT8_E5M2, [1]), "not supported"),
    (_proto(types_pb2.DT_COMPLEX64, [1], scomplex_val=[1.0]), "pairs"),
    (_proto(types_pb2.DT_HALF, [1], half_val=[70000]), "outside 0..65535"),
    (_proto(types_pb2.DT_UINT8, [2], int_val=[1, 300]), "outside 0..255"),
    (_proto(types_pb2.DT_STRING, [1], tensor_content=b"ab"), "string_val"),
    (_proto(types_pb2.DT_FLOAT, [2**20, 2**20], float_val=[1]), "more than"),
    (_proto(99, [1]), r"DataType\(99\) is not supported"),
])
def test_malformed_protos_are_invalid_argument(proto, complaint):
    with pytest.raises(InvalidArgument, match=complaint):
        decode(proto, "input 'x'")


@pytest.mark.parametrize("array", [np.zeros(2, "datetime64[s]"), np.zeros(1, "i4,i4")],
                         ids=["datetime", "structured"])
def test_unencodable_arrays_are_invalid_argument(array):
    with pytest.raises(InvalidArgument, match="cannot encode numpy dtype"):
        encode(array)


def test_big_endian_arrays_are_sent_little_endian():
    proto = encode(np.array([1, 258], dtype=">u2"), content=True)
    assert proto.tensor_content == b"\x01\x00\x02\x01"
