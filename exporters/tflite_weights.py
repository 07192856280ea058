"""Weight planning: every float or quantized constant of a flatbuffer becomes a float32
variable in TensorFlow's layout, with its own quantization beside it.

Layouts: TFLite stores CONV_2D filters [O, kh, kw, I] and DEPTHWISE_CONV_2D filters
[1, kh, kw, C*M]; the variables hold TensorFlow's [kh, kw, I, O] and [kh, kw, C, M]
(TRANSPOSE_CONV's [O, kh, kw, I] as [kh, kw, O, I]) so that no transpose runs per
frame. Which input of which operator is a filter, and of what kind, is the operator's
``filter`` in :data:`exporters.tflite_ops.OPS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from edgeseg.errors import InvalidArgument
from exporters.tflite import Flatbuffer, Tensor
from exporters.tflite_ops import OPS

# Output-channel axis of a filter in TF layout, by role.
_CHANNEL_AXIS = {"conv": 3, "depthwise": 2, "transpose": 2}


@dataclass(frozen=True)
class WeightSpec:
    """One constant turned into a variable, with its own quantization in TF layout."""

    name: str
    scale: np.ndarray | None = None        # broadcastable to the variable; None: float
    zero_point: np.ndarray | None = None
    qmin: int = 0
    qmax: int = 0
    channel_axis: int | None = None  # filters: for the kit's per-channel int8 (float models)


def plan_weights(fb: Flatbuffer) -> tuple[dict[str, np.ndarray], dict[int, WeightSpec]]:
    """Every float or quantized constant becomes a float32 variable in TF layout."""
    roles: dict[int, tuple[str, int]] = {}
    for op in fb.operators:
        op_spec = OPS.get(op.name)
        if op_spec is None or op_spec.filter is None:
            continue
        channels = fb.tensors[op.inputs[0]].shape[-1] if op_spec.filter == "depthwise" else 0
        roles[op.inputs[1]] = (op_spec.filter, channels)
    weights: dict[str, np.ndarray] = {}
    specs: dict[int, WeightSpec] = {}
    for tensor in fb.tensors:
        if not tensor.is_constant or not (tensor.dtype.startswith("FLOAT")
                                          or tensor.quantization is not None):
            continue
        role, channels = roles.get(tensor.index, ("plain", 0))
        layout = _layout(role, channels, tensor)
        name = _variable_name(tensor)
        weights[name] = np.ascontiguousarray(layout(tensor.real_value()), np.float32)
        spec = _weight_spec(name, tensor, layout)
        specs[tensor.index] = replace(spec, channel_axis=_CHANNEL_AXIS.get(role))
    return weights, specs


def _layout(role: str, channels: int, tensor: Tensor) -> Callable[[np.ndarray], np.ndarray]:
    if role == "conv":
        return lambda a: np.transpose(a, (1, 2, 3, 0))
    if role == "transpose":
        return lambda a: np.transpose(a, (1, 2, 0, 3))
    if role == "depthwise":
        _, kh, kw, total = tensor.shape
        if channels <= 0 or total % channels:
            raise InvalidArgument(f"depthwise filter {tensor.index} '{tensor.name}' has "
                                  f"{total} outputs for {channels} input channels")
        return lambda a: a.reshape(a.shape[1], a.shape[2], channels, -1)
    return lambda a: a


def _weight_spec(name: str, tensor: Tensor, layout: Callable[[np.ndarray], np.ndarray]
                 ) -> WeightSpec:
    quant = tensor.quantization
    if quant is None or tensor.dtype not in ("UINT8", "INT8", "INT16"):
        return WeightSpec(name)  # float weights, or int32 biases (exact at 32 bits)
    qmin, qmax = tensor.quant_range()
    if quant.per_tensor:
        return WeightSpec(name, _scalar(quant.scale[0]), _scalar(quant.zero_point[0]),
                          qmin, qmax)
    shape = [1] * len(tensor.shape)
    shape[quant.axis] = quant.scale.size
    scale = layout(np.broadcast_to(quant.scale.reshape(shape), tensor.shape))
    zero = layout(np.broadcast_to(quant.zero_point.reshape(shape), tensor.shape))
    return WeightSpec(name, _squeeze_broadcast(scale), _squeeze_broadcast(zero), qmin, qmax)


def _scalar(value: float | np.number[Any]) -> np.ndarray:
    """A per-tensor parameter as a 0-d float32 array: broadcasts as the scalar does."""
    return np.asarray(value, np.float32)


def _squeeze_broadcast(a: np.ndarray) -> np.ndarray:
    """The smallest array that broadcasts back to ``a`` (axes where it is constant)."""
    out = np.asarray(a, np.float32)
    for axis in range(out.ndim):
        first = np.take(out, [0], axis=axis)
        if np.all(out == first):
            out = first
    return out


def _variable_name(tensor: Tensor) -> str:
    short = tensor.name.split(";")[0]
    short = re.sub(r"[^A-Za-z0-9_./-]", "_", short).strip("/") or "tensor"
    return f"tflite/t{tensor.index:04d}/{short}"[:200]
