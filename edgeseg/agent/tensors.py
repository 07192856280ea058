"""numpy arrays <-> TensorProto — a pure codec.

Contract: :func:`to_tensor` writes numeric arrays as little-endian bytes in
``tensor_content`` (what TF Serving itself does; no per-element fields, no TensorFlow
ops) and :func:`string_tensor` writes ``string_val``. :func:`from_tensor` reads either
``tensor_content`` or the typed ``*_val`` fields (a single value broadcast to the shape,
as TensorFlow does). Unsupported dtypes raise InvalidArgument naming the dtype.
"""

from __future__ import annotations

import numpy as np

from edgeseg.agent import protos
from edgeseg.errors import InvalidArgument

# tensorflow/core/framework/types.proto
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT16, DT_INT8, DT_STRING = 1, 2, 3, 4, 5, 6, 7
DT_INT64, DT_BOOL, DT_UINT16, DT_UINT32, DT_UINT64 = 9, 10, 17, 22, 23

_NUMPY_BY_DT = {
    DT_FLOAT: np.float32, DT_DOUBLE: np.float64, DT_INT32: np.int32, DT_UINT8: np.uint8,
    DT_INT16: np.int16, DT_INT8: np.int8, DT_INT64: np.int64, DT_BOOL: np.bool_,
    DT_UINT16: np.uint16, DT_UINT32: np.uint32, DT_UINT64: np.uint64,
}
_DT_BY_NUMPY = {np.dtype(v): k for k, v in _NUMPY_BY_DT.items()}
# which repeated field holds values of a dtype when tensor_content is empty
_VAL_FIELD = {
    DT_FLOAT: "float_val", DT_DOUBLE: "double_val", DT_INT32: "int_val", DT_UINT8: "int_val",
    DT_INT16: "int_val", DT_INT8: "int_val", DT_UINT16: "int_val", DT_INT64: "int64_val",
    DT_BOOL: "bool_val",
}


def to_tensor(array: np.ndarray):
    arr = np.asarray(array)
    dt = _DT_BY_NUMPY.get(arr.dtype)
    if dt is None:
        raise InvalidArgument(f"cannot send a numpy array of dtype {arr.dtype}")
    tensor = protos.TensorProto(dtype=dt)
    tensor.tensor_shape.dim.extend(protos.TensorShapeProto.Dim(size=n) for n in arr.shape)
    tensor.tensor_content = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    return tensor


def string_tensor(values: list[bytes]):
    tensor = protos.TensorProto(dtype=DT_STRING)
    tensor.tensor_shape.dim.add(size=len(values))
    tensor.string_val.extend(values)
    return tensor


def shape_of(tensor) -> tuple[int, ...]:
    return tuple(d.size for d in tensor.tensor_shape.dim)


def from_tensor(tensor) -> np.ndarray:
    shape = shape_of(tensor)
    if tensor.dtype == DT_STRING:
        return np.array(list(tensor.string_val), dtype=object).reshape(shape)
    np_type = _NUMPY_BY_DT.get(tensor.dtype)
    if np_type is None:
        raise InvalidArgument(f"unsupported tensor dtype enum {tensor.dtype}")
    count = int(np.prod(shape, dtype=np.int64))
    if tensor.tensor_content:
        flat = np.frombuffer(tensor.tensor_content, dtype=np.dtype(np_type).newbyteorder("<"))
    else:
        flat = np.asarray(getattr(tensor, _VAL_FIELD[tensor.dtype]), dtype=np_type)
        if flat.size == 1 and count > 1:
            flat = np.full(count, flat[0], dtype=np_type)
    if flat.size != count:
        raise InvalidArgument(
            f"tensor holds {flat.size} values but its shape {shape} needs {count}")
    return flat.astype(np_type, copy=False).reshape(shape)
