import numpy as np
import pytest

from edgeseg.agent import protos
from edgeseg.agent.tensors import (
    DT_FLOAT,
    DT_INT32,
    DT_INT64,
    DT_UINT8,
    from_tensor,
    shape_of,
    string_tensor,
    to_tensor,
)
from edgeseg.errors import InvalidArgument


@pytest.mark.parametrize("array", [
    np.zeros((1, 2, 3, 3), np.uint8),
    np.arange(24, dtype=np.uint8).reshape(1, 2, 4, 3),
    np.arange(6, dtype=np.int64).reshape(2, 3) - 3,
    np.linspace(0, 1, 5, dtype=np.float32),
    np.array([[True, False]]),
    np.zeros((0, 4), np.int32),
])
def test_round_trip(array):
    tensor = to_tensor(array)
    assert shape_of(tensor) == array.shape
    back = from_tensor(tensor)
    assert back.dtype == array.dtype and (back == array).all()


@pytest.mark.parametrize("dtype, field, values, shape, expected", [
    (DT_INT32, "int_val", [1, 2, 3, 4], (2, 2), [[1, 2], [3, 4]]),
    (DT_UINT8, "int_val", [7], (2, 3), [[7, 7, 7], [7, 7, 7]]),  # one value broadcast
    (DT_INT64, "int64_val", [5, -1], (2,), [5, -1]),
    (DT_FLOAT, "float_val", [0.5], (1,), [0.5]),
])
def test_typed_value_fields(dtype, field, values, shape, expected):
    tensor = protos.TensorProto(dtype=dtype)
    for n in shape:
        tensor.tensor_shape.dim.add(size=n)
    getattr(tensor, field).extend(values)
    assert from_tensor(tensor).tolist() == expected


def test_string_tensor():
    tensor = string_tensor([b"a", b"bc"])
    assert shape_of(tensor) == (2,)
    assert from_tensor(tensor).tolist() == [b"a", b"bc"]


@pytest.mark.parametrize("bad", [
    np.zeros(2, np.complex64),
    np.array(["x"], dtype=object),
])
def test_unsupported_dtypes_are_refused(bad):
    with pytest.raises(InvalidArgument, match="dtype"):
        to_tensor(bad)


def test_wrong_value_count_is_refused():
    tensor = to_tensor(np.zeros(4, np.uint8))
    tensor.tensor_shape.dim[0].size = 5
    with pytest.raises(InvalidArgument, match="needs 5"):
        from_tensor(tensor)
