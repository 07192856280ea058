"""Compatibility names for the agent's tensor helpers, over the one codec in edgeseg.wire.

``to_tensor`` sends raw ``tensor_content`` (what the agent puts on the wire), ``from_tensor``
is :func:`edgeseg.wire.tensors.decode`, so every dtype and TensorFlow's padding of short typed
fields behave the same in agent and server; errors are InvalidArgument.
"""

from __future__ import annotations

import numpy as np

from edgeseg.wire.framework import types_pb2
from edgeseg.wire.schema import Message
from edgeseg.wire.tensors import decode, encode

DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8 = (
    types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_INT32, types_pb2.DT_UINT8)
DT_INT16, DT_INT8, DT_STRING, DT_INT64, DT_BOOL = (
    types_pb2.DT_INT16, types_pb2.DT_INT8, types_pb2.DT_STRING, types_pb2.DT_INT64,
    types_pb2.DT_BOOL)
DT_UINT16, DT_UINT32, DT_UINT64 = types_pb2.DT_UINT16, types_pb2.DT_UINT32, types_pb2.DT_UINT64


def to_tensor(array: np.ndarray) -> Message:
    return encode(array, content=True)


def string_tensor(values: list[bytes]) -> Message:
    flat = np.empty(len(values), dtype=object)
    flat[:] = list(values)
    return encode(flat)


def shape_of(tensor: Message) -> tuple[int, ...]:
    return tuple(d.size for d in tensor.tensor_shape.dim)


def from_tensor(tensor: Message) -> np.ndarray:
    return decode(tensor)
