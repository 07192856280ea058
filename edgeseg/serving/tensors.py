"""TensorProto <-> numpy for the server: the one codec, :mod:`edgeseg.wire.tensors`.

The contract (TensorFlow's padding of short typed fields, every numpy-representable dtype,
InvalidArgument for the rest) lives there, shared with the agent. This module only keeps the
server's import path; the protos it makes are edgeseg.wire's, the classes every reply of the
server is built of (no TensorFlow).
"""

from __future__ import annotations

from edgeseg.wire.tensors import (  # noqa: F401 - the server's names for the codec
    array_dtype_name,
    decode,
    dtype_name,
    encode,
    format_shape,
    numpy_dtype,
    shape_of,
)
