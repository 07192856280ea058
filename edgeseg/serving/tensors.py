"""TensorProto <-> numpy for the server: the one codec, :mod:`edgeseg.wire.tensors`.

The contract (TensorFlow's padding of short typed fields, every numpy-representable dtype,
InvalidArgument for the rest) lives there, shared with the agent. This module only keeps the
server's import path and, until the server's transports move onto edgeseg.wire's messages,
makes a fresh proto from :func:`encode` the official class the server's replies are built of.
"""

from __future__ import annotations

from typing import Any

from tensorflow.core.framework import tensor_pb2

from edgeseg.wire import tensors as _codec
from edgeseg.wire.tensors import (  # noqa: F401 - the server's names for the codec
    array_dtype_name,
    decode,
    dtype_name,
    format_shape,
    numpy_dtype,
    shape_of,
)


def encode(array: Any, content: bool = False, out: Any = None) -> Any:
    """Write ``array`` into ``out`` (a fresh official TensorProto when None) and return it."""
    return _codec.encode(array, content, tensor_pb2.TensorProto() if out is None else out)
