"""The agent's tensor helpers sit on the one codec (edgeseg.wire.tensors): every dtype the
server may answer with decodes, short typed fields pad as in TensorFlow, and what cannot be
decoded is an InvalidArgument the encode loop handles, never a KeyError that kills it."""

import numpy as np
import pytest

from edgeseg.agent import protos
from edgeseg.agent.inference import read_response
from edgeseg.agent.tensors import (
    DT_FLOAT,
    DT_INT32,
    DT_INT64,
    DT_UINT8,
    DT_UINT32,
    DT_UINT64,
    from_tensor,
    shape_of,
    string_tensor,
    to_tensor,
)
from edgeseg.errors import EdgesegError, InvalidArgument
from edgeseg.wire.framework import types_pb2


@pytest.mark.parametrize("array", [
    np.zeros((1, 2, 3, 3), np.uint8),
    np.arange(24, dtype=np.uint8).reshape(1, 2, 4, 3),
    np.arange(6, dtype=np.int64).reshape(2, 3) - 3,
    np.linspace(0, 1, 5, dtype=np.float32),
    np.array([[True, False]]),
    np.zeros((0, 4), np.int32),
    np.array([4_000_000_000], np.uint32),
    np.array([2**64 - 1], np.uint64),
    np.array([1 + 2j], np.complex64),
])
def test_round_trip(array):
    tensor = to_tensor(array)
    assert shape_of(tensor) == array.shape
    back = from_tensor(tensor)
    assert back.dtype == array.dtype and (back == array).all()


def _typed(dtype, field, values, shape):
    tensor = protos.TensorProto(dtype=dtype)
    for n in shape:
        tensor.tensor_shape.dim.add(size=n)
    getattr(tensor, field).extend(values)
    return tensor


@pytest.mark.parametrize("dtype, field, values, shape, expected", [
    (DT_INT32, "int_val", [1, 2, 3, 4], (2, 2), [[1, 2], [3, 4]]),
    (DT_UINT8, "int_val", [7], (2, 3), [[7, 7, 7], [7, 7, 7]]),  # one value broadcast
    (DT_UINT8, "int_val", [1, 2], (2, 2), [[1, 2], [2, 2]]),  # short: the last value repeats
    (DT_INT64, "int64_val", [5, -1], (2,), [5, -1]),
    (DT_FLOAT, "float_val", [0.5], (1,), [0.5]),
    (DT_UINT32, "uint32_val", [3, 4_000_000_000], (3,), [3, 4_000_000_000, 4_000_000_000]),
    (DT_UINT64, "uint64_val", [2**64 - 1], (1, 2), [[2**64 - 1, 2**64 - 1]]),
])
def test_typed_value_fields(dtype, field, values, shape, expected):
    assert from_tensor(_typed(dtype, field, values, shape)).tolist() == expected


def test_uint32_class_map_from_a_server_is_read():
    """A model answering DT_UINT32 class ids in uint32_val (this was a KeyError)."""
    reply = protos.PredictResponse()
    reply.outputs["segmentation_map"].CopyFrom(
        _typed(DT_UINT32, "uint32_val", [0, 15, 15, 3], (1, 2, 2)))
    class_map, _ = read_response(reply, (2, 2))
    assert class_map.dtype == np.uint8 and class_map.tolist() == [[0, 15], [15, 3]]


def test_undecodable_reply_is_an_edgeseg_error_for_the_encode_loop():
    reply = protos.PredictResponse()
    reply.outputs["segmentation_map"].CopyFrom(
        _typed(types_pb2.DT_VARIANT, "int_val", [], (1, 2, 2)))
    with pytest.raises(EdgesegError, match="DT_VARIANT is not supported"):
        read_response(reply, (2, 2))


def test_string_tensor():
    tensor = string_tensor([b"a", b"bc"])
    assert shape_of(tensor) == (2,)
    assert from_tensor(tensor).tolist() == [b"a", b"bc"]


def test_unsupported_dtypes_are_refused():
    with pytest.raises(InvalidArgument, match="dtype datetime64"):
        to_tensor(np.zeros(2, "datetime64[s]"))


def test_wrong_value_count_is_refused():
    tensor = to_tensor(np.zeros(4, np.uint8))
    tensor.tensor_shape.dim[0].size = 5
    with pytest.raises(InvalidArgument, match="needs 5"):
        from_tensor(tensor)
