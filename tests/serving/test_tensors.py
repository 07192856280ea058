"""The TensorProto codec on tables: round trips, TF's own encoder, and malformed protos."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from edgeseg.errors import InvalidArgument
from edgeseg.serving.tensors import decode, encode

ARRAYS = [
    np.float32([[1.5], [2.0]]),
    np.float64([1e300]),
    np.int32([[-1, 2, 3]]),
    np.uint8(np.arange(24).reshape(1, 2, 4, 3)),
    np.int8([-128, 127]),
    np.int16([-3]),
    np.uint16([65535]),
    np.int64([[2**40]]),
    np.uint32([4_000_000_000]),
    np.uint64([2**63]),
    np.bool_([True, False]),
    np.float16([0.5, -2.0]),
    np.array([b"jpeg bytes", b""], dtype=object),
    np.zeros((0, 3), np.float32),
    np.float32(7.0),  # a scalar
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: f"{a.dtype}{list(a.shape)}")
@pytest.mark.parametrize("content", [False, True])
def test_round_trip_and_tf_agrees(array, content):
    proto = encode(array, content=content)
    back = decode(proto)
    assert back.dtype == array.dtype and back.shape == array.shape
    assert np.array_equal(back, array)
    assert np.array_equal(tf.make_ndarray(proto), array)  # what TF clients read


@pytest.mark.parametrize("array", ARRAYS[:12], ids=lambda a: str(a.dtype))
def test_decodes_what_tf_clients_send(array):
    assert np.array_equal(decode(tf.make_tensor_proto(array)), array)


def test_typed_fields_by_default_as_tf_serving_answers():
    proto = encode(np.float32([[3.0], [3.5]]))
    assert list(proto.float_val) == [3.0, 3.5] and not proto.tensor_content


def test_a_single_value_fills_the_shape_as_in_tensorflow():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[2.0])
    proto.tensor_shape.dim.add(size=3)
    assert decode(proto).tolist() == [2.0, 2.0, 2.0]


def _proto(dtype, dims, **values):
    proto = tensor_pb2.TensorProto(dtype=dtype, **values)
    for d in dims:
        proto.tensor_shape.dim.add(size=d)
    return proto


@pytest.mark.parametrize(
    ("proto", "complaint"),
    [
        (_proto(types_pb2.DT_FLOAT, [2], float_val=[1, 2, 3]), "3 values given for shape"),
        (_proto(types_pb2.DT_FLOAT, [3], tensor_content=b"\0" * 4), "needs 12"),
        (_proto(types_pb2.DT_FLOAT, [-1], float_val=[1]), "negative dimension"),
        (_proto(types_pb2.DT_QINT8, [1]), "DT_QINT8 is not supported"),
        (_proto(types_pb2.DT_RESOURCE, [1]), "not supported"),
    ],
)
def test_malformed_protos_are_invalid_argument(proto, complaint):
    with pytest.raises(InvalidArgument, match=complaint):
        decode(proto, "input 'x'")


@pytest.mark.parametrize(
    "array",
    [np.uint8([0, 1, 127]), np.uint8([128, 255, 0, 200]), np.int64([[0, 20], [16383, 128]]),
     np.int32([16384, 3]), np.int32([-1, 3]), np.uint16(np.arange(0, 65535, 97)),
     np.int64(np.random.default_rng(0).integers(0, 21, (1, 65, 65)))],
    ids=["7bit", "8bit", "14bit", "15bit", "negative", "uint16", "map"],
)
def test_fast_integer_encoding_gives_the_same_bytes(array):
    field = "int64_val" if array.dtype == np.int64 else "int_val"
    reference = tensor_pb2.TensorProto()
    getattr(reference, field).extend(array.ravel().tolist())
    assert list(getattr(encode(array), field)) == list(getattr(reference, field))
