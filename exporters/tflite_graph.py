"""GraphRun: one forward pass of a TFLite flatbuffer, built as TensorFlow ops.

Contract: :meth:`GraphRun.run` is called once per signature while the writer builds a
meta-graph (the current default TF graph); it walks the flatbuffer's operators in order,
each through its one entry in :data:`exporters.tflite_ops.OPS`, and returns the first
output. Every value is REAL (float32 for quantized tensors): the float graph (``serve``)
is the model the int8 one was trained to approximate; in ``serve_quantized``
(``ctx.quantized``) weights and quantized outputs are put on their integer grids
(:mod:`exporters.tflite_quant`), and convolutions run on integers as the uint8 kernels do.

Operators that compute differently in the int8 kernels than "float op, then quantize the
output" need their own emulation; those in OPS do not (ADD, CONCATENATION and QUANTIZE
requantize to the output's scale; AVERAGE_POOL_2D, RESIZE_BILINEAR and ARG_MAX keep the
input's scale). Weights come from :func:`exporters.tflite_weights.plan_weights`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgeseg.errors import Internal, InvalidArgument, Unimplemented
from exporters.model import GraphContext
from exporters.tflite import Flatbuffer, Operator, Quantization, Tensor
from exporters.tflite_ops import OPS
from exporters.tflite_quant import (
    ACTIVATIONS,
    PADDING,
    activation_range,
    fake_quant,
    quantize_multiplier,
)
from exporters.tflite_weights import WeightSpec


def quantization(tensor: Tensor) -> Quantization:
    """The quantization of a tensor the caller has checked is ``quantized``."""
    if tensor.quantization is None:
        raise Internal(f"tensor {tensor.index} '{tensor.name}' is read as quantized "
                       "but carries no quantization")
    return tensor.quantization


def scale_zero(tensor: Tensor) -> tuple[float, float]:
    """A per-tensor quantized tensor's (scale, zero point)."""
    quant = quantization(tensor)
    return float(quant.scale[0]), float(quant.zero_point[0])


class GraphRun:
    """Builds one forward pass of the flatbuffer in the current TF graph."""

    def __init__(self, fb: Flatbuffer, specs: dict[int, WeightSpec], ctx: GraphContext) -> None:
        import tensorflow as tf

        self.tf = tf
        self.fb = fb
        self.specs = specs
        self.ctx = ctx
        self.env: dict[int, Any] = {}
        self.requantized: set[int] = set()  # ops whose builder already quantized

    def run(self, images: Any) -> Any:
        (first,) = self.fb.inputs
        tensor = self.fb.tensors[first]
        self.env[first] = self._quantize_output(images, tensor)
        for op in self.fb.operators:
            out = OPS[op.name].build(self, op)
            target = self.fb.tensors[op.outputs[0]]
            if op.index not in self.requantized:
                out = self._quantize_output(out, target)
            if out.dtype == self.tf.float32:
                out = self.ctx.activation(f"tflite_{target.index}", out)
            self.env[target.index] = out
        return self.env[self.fb.outputs[0]]

    # -- inputs -------------------------------------------------------------------------
    def value(self, index: int) -> Any:
        if index in self.env:
            return self.env[index]
        tensor = self.fb.tensors[index]
        spec = self.specs.get(index)
        if spec is not None:
            value = self.ctx.weight(spec.name, spec.channel_axis)
            if self.ctx.quantized and spec.scale is not None:
                value = fake_quant(self.tf, value, spec.scale, spec.zero_point,
                                   spec.qmin, spec.qmax)
        elif tensor.is_constant:
            value = self.tf.constant(tensor.data)
        else:
            raise InvalidArgument(f"tensor {index} '{tensor.name}' is read before any "
                                  "operator writes it; the flatbuffer's operators are "
                                  "not in execution order")
        self.env[index] = value
        return value

    def const(self, op: Operator, position: int) -> np.ndarray:
        tensor = self.fb.tensors[op.inputs[position]]
        if tensor.data is None:
            raise Unimplemented(f"operator {op.index} ({op.name}): input {position} "
                                f"('{tensor.name}') is computed at run time; the importer "
                                "needs it constant")
        return np.asarray(tensor.data)

    def _quantize_output(self, x: Any, tensor: Tensor) -> Any:
        if not tensor.quantized:
            return x
        if not self.ctx.quantized:
            return self._saturate(x, tensor)
        quant = quantization(tensor)
        shape = [1] * max(len(tensor.shape), 1)
        if not quant.per_tensor:
            shape[quant.axis] = quant.scale.size
        qmin, qmax = tensor.quant_range()
        return fake_quant(self.tf, x, quant.scale.reshape(shape),
                          quant.zero_point.reshape(shape), qmin, qmax)

    def _saturate(self, x: Any, tensor: Tensor) -> Any:
        """Float graph: clamp to the range the tensor's int8 type can hold. A model
        trained with quantization (FakeQuant on every activation, as the Coral DeepLab
        was) learned with these clamps; leaving them out changes what it computes."""
        if not quantization(tensor).per_tensor:
            return x
        qmin, qmax = tensor.quant_range()
        scale, zero = scale_zero(tensor)
        return self.tf.clip_by_value(x, (qmin - zero) * scale, (qmax - zero) * scale)

    def integer_conv(self, op: Operator, conv: Callable[[Any, Any], Any]) -> Any | None:
        """In the int8 graph, a convolution whose input, filter and output are quantized
        runs as the int8 kernel does: integer operands (exact in float32), int32 bias,
        the per-channel multiplier s_in * s_w / s_out with TFLite's double rounding,
        the zero point and the fused activation's clamp in the integer domain.
        Returns None where that does not apply (float graph or float tensors)."""
        x_t, w_t, out_t = (self.fb.tensors[i] for i in (op.inputs[0], op.inputs[1],
                                                         op.outputs[0]))
        if not (self.ctx.quantized and x_t.quantized and w_t.quantized and out_t.quantized
                and quantization(x_t).per_tensor and quantization(out_t).per_tensor):
            return None
        w_scale = self.specs[w_t.index].scale  # broadcastable to the filter in TF layout
        if w_scale is None:  # float weights (plan_weights gives quantized ones a scale)
            return None
        tf = self.tf
        s_in, _ = scale_zero(x_t)
        s_out, _ = scale_zero(out_t)
        x_int = tf.round(self.value(op.inputs[0]) * np.float32(1.0 / s_in))
        w_int = tf.round(self.value(op.inputs[1]) / w_scale)
        acc = conv(x_int, w_int)
        channel_scale = np.reshape(w_scale, -1)  # one per output channel
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b_t = self.fb.tensors[op.inputs[2]]
            b_scale = (b_t.quantization.scale if b_t.quantization is not None
                       else np.float32(s_in) * channel_scale)
            acc = tf.nn.bias_add(acc, tf.round(self.value(op.inputs[2])
                                               / np.asarray(b_scale, np.float32)))
        multiplier = s_in * channel_scale.astype(np.float64) / s_out
        return self.requantize(op, acc, multiplier, out_t)

    def requantize(self, op: Operator, acc: Any, multiplier: np.ndarray, out_t: Tensor) -> Any:
        """int32 accumulator -> the output's real value, as TFLite's
        MultiplyByQuantizedMultiplier does it: M = m * 2**-r with m in [0.5, 1) is
        applied as round(acc * m), then a rounding shift right by r (double rounding:
        with r = 1, fractions in [0.25, 0.5) round up). Rounding an integer accumulator
        this way matches TFLite's uint8 CONV_2D / DEPTHWISE_CONV_2D / QUANTIZE bit for
        bit on the Coral DeepLab; a float conv rounded once differs on 20% of values."""
        tf = self.tf
        s_out, zero_out = scale_zero(out_t)
        fixed, shift = quantize_multiplier(multiplier)
        # float64: acc * m must be exact to the 2**-31 of the int64 kernel.
        t = tf.floor(tf.cast(acc, tf.float64) * fixed + 0.5)
        # The rounding shift rounds half up (checked against TFLite 2.21's uint8 kernels).
        q = tf.floor(tf.cast(t * np.exp2(-shift), tf.float32) + 0.5) + zero_out
        low, high = self.activation_range(op, out_t)
        q = tf.clip_by_value(q, low, high)
        self.requantized.add(op.index)
        return (q - zero_out) * np.float32(s_out)

    def activation_range(self, op: Operator, out_t: Tensor) -> tuple[float, float]:
        """The fused activation as an integer clamp (TFLite's CalculateActivationRange)."""
        qmin, qmax = out_t.quant_range()
        scale, zero = scale_zero(out_t)
        return activation_range(op.options.get("FusedActivationFunction", 0),
                                scale, int(zero), qmin, qmax)

    def activation(self, x: Any, op: Operator) -> Any:
        code = op.options.get("FusedActivationFunction", 0)
        if code not in ACTIVATIONS:
            raise Unimplemented(f"operator {op.index} ({op.name}) has fused activation "
                                f"{code}, which the importer does not support")
        kind = ACTIVATIONS[code]
        tf = self.tf
        if kind == "RELU":
            return tf.nn.relu(x)
        if kind == "RELU6":
            return tf.nn.relu6(x)
        if kind == "RELU_N1_TO_1":
            return tf.clip_by_value(x, -1.0, 1.0)
        if kind == "TANH":
            return tf.tanh(x)
        return x

    def padding(self, op: Operator) -> str:
        return PADDING[op.options.get("Padding", 0)]
