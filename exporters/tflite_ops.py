"""TFLite operators rebuilt as TensorFlow ops, over the kit's variables.

Every value in the rebuilt graph is REAL (float32 for quantized tensors): the float
graph (``serve``) is the model the int8 one was trained to approximate. When the
writer builds ``serve_quantized`` (``ctx.quantized``), the flatbuffer's own parameters
are applied as explicit quantize/dequantize math — ``q = clip(floor(x/s + 0.5) + zp)``,
``x' = (q - zp) * s`` — on every weight (per channel where the flatbuffer says so) and
on every quantized operator output, so the graph reproduces what the int8 kernels
compute up to the rounding of their fixed-point multipliers.

Operators that compute differently in the int8 kernels than "float op, then
quantize the output" would need their own emulation; the ones here do not (ADD,
CONCATENATION and QUANTIZE requantize to the output's scale; AVERAGE_POOL_2D,
RESIZE_BILINEAR and ARG_MAX keep the input's scale).

Layouts: TFLite stores CONV_2D filters [O, kh, kw, I] and DEPTHWISE_CONV_2D filters
[1, kh, kw, C*M]; the variables hold TensorFlow's [kh, kw, I, O] and [kh, kw, C, M]
so that no transpose runs per frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from edgeseg.errors import InvalidArgument, Unimplemented
from exporters.model import GraphContext

# TFLite enums (schema.fbs): Padding, ActivationFunctionType, TensorType.
_PADDING = {0: "SAME", 1: "VALID"}
_ACTIVATIONS = {0: None, 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH"}
_INT64, _INT32 = 4, 2
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


def fake_quant(tf: Any, x: Any, scale: Any, zero_point: Any, qmin: int, qmax: int) -> Any:
    """Quantize to the integer grid and back, as a TFLite kernel's output is."""
    scale = np.asarray(scale, np.float32)
    zero = np.asarray(zero_point, np.float32)
    q = tf.clip_by_value(tf.floor(x / scale + 0.5) + zero, float(qmin), float(qmax))
    return (q - zero) * scale


def quantize_multiplier(multiplier: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's QuantizeMultiplier for M < 1: M ~ m * 2**-r, m held in Q31. Returns
    (m as float64 exactly as the kernel holds it, r)."""
    mantissa, exponent = np.frexp(np.asarray(multiplier, np.float64))
    fixed = np.round(mantissa * 2.0**31)
    carry = fixed == 2.0**31
    fixed = np.where(carry, fixed / 2, fixed)
    exponent = np.where(carry, exponent + 1, exponent)
    right = np.maximum(-exponent, 0).astype(np.float64)
    left = np.exp2(np.maximum(exponent, 0))
    return fixed / 2.0**31 * left, right


class GraphRun:
    """Builds one forward pass of the flatbuffer in the current TF graph."""

    def __init__(self, fb: Any, specs: dict[int, WeightSpec], ctx: GraphContext) -> None:
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
            builder = BUILDERS[op.name]
            out = builder(self, op)
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

    def const(self, op: Any, position: int) -> np.ndarray:
        tensor = self.fb.tensors[op.inputs[position]]
        if tensor.data is None:
            raise Unimplemented(f"operator {op.index} ({op.name}): input {position} "
                                f"('{tensor.name}') is computed at run time; the importer "
                                "needs it constant")
        return np.asarray(tensor.data)

    def _quantize_output(self, x: Any, tensor: Any) -> Any:
        if not tensor.quantized:
            return x
        if not self.ctx.quantized:
            return self._saturate(x, tensor)
        quant = tensor.quantization
        shape = [1] * max(len(tensor.shape), 1)
        if not quant.per_tensor:
            shape[quant.axis] = quant.scale.size
        qmin, qmax = tensor.quant_range()
        return fake_quant(self.tf, x, quant.scale.reshape(shape),
                          quant.zero_point.reshape(shape), qmin, qmax)

    def _saturate(self, x: Any, tensor: Any) -> Any:
        """Float graph: clamp to the range the tensor's int8 type can hold. A model
        trained with quantization (FakeQuant on every activation, as the Coral DeepLab
        was) learned with these clamps; leaving them out changes what it computes."""
        quant = tensor.quantization
        if not quant.per_tensor:
            return x
        qmin, qmax = tensor.quant_range()
        scale, zero = float(quant.scale[0]), float(quant.zero_point[0])
        return self.tf.clip_by_value(x, (qmin - zero) * scale, (qmax - zero) * scale)

    def integer_conv(self, op: Any, conv: Callable[[Any, Any], Any]) -> Any | None:
        """In the int8 graph, a convolution whose input, filter and output are quantized
        runs as the int8 kernel does: integer operands (exact in float32), int32 bias,
        the per-channel multiplier s_in * s_w / s_out with TFLite's double rounding,
        the zero point and the fused activation's clamp in the integer domain.
        Returns None where that does not apply (float graph or float tensors)."""
        x_t, w_t, out_t = (self.fb.tensors[i] for i in (op.inputs[0], op.inputs[1],
                                                         op.outputs[0]))
        if not (self.ctx.quantized and x_t.quantized and w_t.quantized and out_t.quantized
                and x_t.quantization.per_tensor and out_t.quantization.per_tensor):
            return None
        tf = self.tf
        s_in = float(x_t.quantization.scale[0])
        s_out = float(out_t.quantization.scale[0])
        spec = self.specs[w_t.index]
        x_int = tf.round(self.value(op.inputs[0]) * np.float32(1.0 / s_in))
        w_int = tf.round(self.value(op.inputs[1]) / spec.scale)
        acc = conv(x_int, w_int)
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            b_t = self.fb.tensors[op.inputs[2]]
            b_scale = (b_t.quantization.scale if b_t.quantization is not None
                       else np.float32(s_in) * np.reshape(spec.scale, -1))
            acc = tf.nn.bias_add(acc, tf.round(self.value(op.inputs[2])
                                               / np.asarray(b_scale, np.float32)))
        multiplier = s_in * np.reshape(spec.scale, -1).astype(np.float64) / s_out
        return self.requantize(op, acc, multiplier, out_t)

    def requantize(self, op: Any, acc: Any, multiplier: np.ndarray, out_t: Any) -> Any:
        """int32 accumulator -> the output's real value, as TFLite's
        MultiplyByQuantizedMultiplier does it: M = m * 2**-r with m in [0.5, 1) is
        applied as round(acc * m), then a rounding shift right by r (double rounding:
        with r = 1, fractions in [0.25, 0.5) round up). Rounding an integer accumulator
        this way matches TFLite's uint8 CONV_2D / DEPTHWISE_CONV_2D / QUANTIZE bit for
        bit on the Coral DeepLab; a float conv rounded once differs on 20% of values."""
        tf = self.tf
        s_out = float(out_t.quantization.scale[0])
        zero_out = float(out_t.quantization.zero_point[0])
        fixed, shift = quantize_multiplier(multiplier)
        # float64: acc * m must be exact to the 2**-31 of the int64 kernel.
        t = tf.floor(tf.cast(acc, tf.float64) * fixed + 0.5)
        # The rounding shift rounds half up (checked against TFLite 2.21's uint8 kernels).
        q = tf.floor(tf.cast(t * np.exp2(-shift), tf.float32) + 0.5) + zero_out
        low, high = self.activation_range(op, out_t)
        q = tf.clip_by_value(q, low, high)
        self.requantized.add(op.index)
        return (q - zero_out) * np.float32(s_out)

    def activation_range(self, op: Any, out_t: Any) -> tuple[float, float]:
        """The fused activation as an integer clamp (TFLite's CalculateActivationRange)."""
        qmin, qmax = out_t.quant_range()
        scale = float(out_t.quantization.scale[0])
        zero = int(out_t.quantization.zero_point[0])
        kind = _ACTIVATIONS[op.options.get("FusedActivationFunction", 0)]

        def quantize(v: float) -> int:
            return zero + int(np.sign(v) * np.floor(abs(v) / scale + 0.5))

        bounds = {"RELU": (zero, qmax), "RELU6": (zero, quantize(6.0)),
                  "RELU_N1_TO_1": (quantize(-1.0), quantize(1.0))}.get(kind, (qmin, qmax))
        return float(max(qmin, bounds[0])), float(min(qmax, bounds[1]))

    def activation(self, x: Any, op: Any) -> Any:
        code = op.options.get("FusedActivationFunction", 0)
        if code not in _ACTIVATIONS:
            raise Unimplemented(f"operator {op.index} ({op.name}) has fused activation "
                                f"{code}, which the importer does not support")
        kind = _ACTIVATIONS[code]
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

    def padding(self, op: Any) -> str:
        return _PADDING[op.options.get("Padding", 0)]


# -- operators ---------------------------------------------------------------------------
def _conv_2d(run: GraphRun, op: Any) -> Any:
    o = op.options

    def conv(x: Any, w: Any) -> Any:
        return run.tf.nn.conv2d(
            x, w, strides=[1, o.get("StrideH", 1), o.get("StrideW", 1), 1],
            padding=run.padding(op),
            dilations=[1, o.get("DilationHFactor", 1), o.get("DilationWFactor", 1), 1])

    exact = run.integer_conv(op, conv)
    if exact is not None:
        return exact
    return run.activation(_bias(run, op, conv(run.value(op.inputs[0]),
                                              run.value(op.inputs[1]))), op)


def _depthwise_conv_2d(run: GraphRun, op: Any) -> Any:
    o = op.options

    def conv(x: Any, w: Any) -> Any:
        return run.tf.nn.depthwise_conv2d(
            x, w, strides=[1, o.get("StrideH", 1), o.get("StrideW", 1), 1],
            padding=run.padding(op),
            dilations=[o.get("DilationHFactor", 1), o.get("DilationWFactor", 1)])

    exact = run.integer_conv(op, conv)
    if exact is not None:
        return exact
    return run.activation(_bias(run, op, conv(run.value(op.inputs[0]),
                                              run.value(op.inputs[1]))), op)


def _transpose_conv(run: GraphRun, op: Any) -> Any:
    """TRANSPOSE_CONV (output shape, filter, input[, bias]) and MediaPipe's custom
    Convolution2DTransposeBias (input, filter, bias): the gradient of a convolution,
    as TensorFlow's conv2d_transpose; filters [O, kh, kw, I] held as [kh, kw, O, I]."""
    tf, o = run.tf, op.options
    custom = op.name.startswith("CUSTOM:")
    x_index, w_index = (op.inputs[0], op.inputs[1]) if custom else (op.inputs[2], op.inputs[1])
    x = run.value(x_index)
    out_h, out_w, out_c = run.fb.tensors[op.outputs[0]].shape[1:4]
    shape = tf.stack([tf.shape(x)[0], out_h, out_w, out_c])
    y = tf.nn.conv2d_transpose(x, run.value(w_index), shape,
                               strides=[1, o.get("StrideH", 1), o.get("StrideW", 1), 1],
                               padding=run.padding(op))
    bias = op.inputs[2] if custom else (op.inputs[3] if len(op.inputs) > 3 else -1)
    if bias >= 0:
        y = tf.nn.bias_add(y, run.value(bias))
    return y


def _bias(run: GraphRun, op: Any, x: Any) -> Any:
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        return run.tf.nn.bias_add(x, run.value(op.inputs[2]))
    return x


def _pool(kind: str) -> Callable[[GraphRun, Any], Any]:
    def build(run: GraphRun, op: Any) -> Any:
        o = op.options
        pool = run.tf.nn.avg_pool2d if kind == "avg" else run.tf.nn.max_pool2d
        x = pool(run.value(op.inputs[0]), ksize=[o["FilterHeight"], o["FilterWidth"]],
                 strides=[o.get("StrideH", 1), o.get("StrideW", 1)], padding=run.padding(op))
        return run.activation(x, op)
    return build


def _binary(name: str) -> Callable[[GraphRun, Any], Any]:
    def build(run: GraphRun, op: Any) -> Any:
        a, b = run.value(op.inputs[0]), run.value(op.inputs[1])
        x = {"ADD": run.tf.add, "SUB": run.tf.subtract, "MUL": run.tf.multiply}[name](a, b)
        return run.activation(x, op)
    return build


def _concatenation(run: GraphRun, op: Any) -> Any:
    x = run.tf.concat([run.value(i) for i in op.inputs], axis=op.options.get("Axis", -1))
    return run.activation(x, op)


def _resize(method: str) -> Callable[[GraphRun, Any], Any]:
    def build(run: GraphRun, op: Any) -> Any:
        size = run.const(op, 1).astype(np.int32)
        flags = {"align_corners": bool(op.options.get("AlignCorners", False)),
                 "half_pixel_centers": bool(op.options.get("HalfPixelCenters", False))}
        raw = run.tf.raw_ops
        resize = raw.ResizeBilinear if method == "bilinear" else raw.ResizeNearestNeighbor
        x = run.value(op.inputs[0])
        source = run.fb.tensors[op.inputs[0]]
        if method == "bilinear" and run.ctx.quantized and source.quantized:
            # The uint8 kernel interpolates the integers and rounds half up; ties are
            # common (align_corners from 33 to 513 steps by 1/16), so interpolate the
            # integers too rather than the real values.
            quant = source.quantization
            scale, zero = np.float32(quant.scale[0]), np.float32(quant.zero_point[0])
            q = run.tf.round(x * (1.0 / scale)) + zero
            q = run.tf.floor(resize(images=q, size=size, **flags) + 0.5)
            qmin, qmax = source.quant_range()
            return (run.tf.clip_by_value(q, qmin, qmax) - zero) * scale
        return resize(images=x, size=size, **flags)
    return build


def _arg_max(run: GraphRun, op: Any) -> Any:
    axis = int(run.const(op, 1).reshape(-1)[0])
    out_type = run.tf.int32 if op.options.get("OutputType", _INT64) == _INT32 else run.tf.int64
    return run.tf.argmax(run.value(op.inputs[0]), axis=axis, output_type=out_type)


def _pad(run: GraphRun, op: Any) -> Any:
    # Padding is real zero: a quantized kernel pads with the zero point.
    return run.tf.pad(run.value(op.inputs[0]), run.const(op, 1).astype(np.int64))


def _mean(run: GraphRun, op: Any) -> Any:
    axes = [int(a) for a in run.const(op, 1).reshape(-1)]
    return run.tf.reduce_mean(run.value(op.inputs[0]), axis=axes,
                              keepdims=bool(op.options.get("KeepDims", False)))


def _reshape(run: GraphRun, op: Any) -> Any:
    if len(op.inputs) > 1 and op.inputs[1] >= 0:
        shape = [int(d) for d in run.const(op, 1).reshape(-1)]
    else:
        shape = list(op.options.get("NewShape", []))
    if shape and shape[0] == 1:
        shape[0] = -1  # the flatbuffer's batch of 1; the kit feeds any batch
    return run.tf.reshape(run.value(op.inputs[0]), shape)


def _softmax(run: GraphRun, op: Any) -> Any:
    beta = float(op.options.get("Beta", 1.0))
    return run.tf.nn.softmax(run.value(op.inputs[0]) * beta if beta != 1.0
                             else run.value(op.inputs[0]))


def _unary(name: str) -> Callable[[GraphRun, Any], Any]:
    def build(run: GraphRun, op: Any) -> Any:
        tf, x = run.tf, run.value(op.inputs[0])
        if name == "RELU":
            return tf.nn.relu(x)
        if name == "RELU6":
            return tf.nn.relu6(x)
        if name == "LOGISTIC":
            return tf.sigmoid(x)
        if name == "TANH":
            return tf.tanh(x)
        if name == "HARD_SWISH":
            return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)
        # QUANTIZE / DEQUANTIZE: the value is already real; _quantize_output puts a
        # QUANTIZE's result on its own grid in the int8 graph, except for a
        # requantization (quantized in and out), which rounds as the kernel does.
        source = run.fb.tensors[op.inputs[0]]
        target = run.fb.tensors[op.outputs[0]]
        if (name == "QUANTIZE" and run.ctx.quantized and source.quantized
                and target.quantized and source.quantization.per_tensor):
            s_in = float(source.quantization.scale[0])
            multiplier = np.array([s_in / float(target.quantization.scale[0])])
            return run.requantize(op, tf.round(x * np.float32(1.0 / s_in)), multiplier,
                                  target)
        return tf.cast(x, tf.float32) if x.dtype != tf.float32 else tf.identity(x)
    return build


BUILDERS: dict[str, Callable[[GraphRun, Any], Any]] = {
    "CONV_2D": _conv_2d,
    "DEPTHWISE_CONV_2D": _depthwise_conv_2d,
    "AVERAGE_POOL_2D": _pool("avg"),
    "MAX_POOL_2D": _pool("max"),
    "ADD": _binary("ADD"),
    "SUB": _binary("SUB"),
    "MUL": _binary("MUL"),
    "CONCATENATION": _concatenation,
    "RESIZE_BILINEAR": _resize("bilinear"),
    "RESIZE_NEAREST_NEIGHBOR": _resize("nearest"),
    "ARG_MAX": _arg_max,
    "PAD": _pad,
    "MEAN": _mean,
    "RESHAPE": _reshape,
    "SOFTMAX": _softmax,
    "TRANSPOSE_CONV": _transpose_conv,
    "CUSTOM:Convolution2DTransposeBias": _transpose_conv,
    **{name: _unary(name) for name in ("RELU", "RELU6", "LOGISTIC", "TANH", "HARD_SWISH",
                                       "QUANTIZE", "DEQUANTIZE")},
}


def check_supported(fb: Any) -> None:
    """Refuse the first operator the importer cannot rebuild, by name and index."""
    for op in fb.operators:
        if op.name not in BUILDERS:
            supported = ", ".join(sorted(BUILDERS))
            raise Unimplemented(
                f"{fb.path.name}: operator {op.index} is {op.name}, which the TFLite "
                f"importer does not support (supported: {supported}); nothing was written")
        code = op.options.get("FusedActivationFunction", 0)
        if code not in _ACTIVATIONS:
            raise Unimplemented(f"{fb.path.name}: operator {op.index} ({op.name}) uses fused "
                                f"activation {code}, which the importer does not support")


def plan_weights(fb: Any) -> tuple[dict[str, np.ndarray], dict[int, WeightSpec]]:
    """Every float or quantized constant becomes a float32 variable in TF layout."""
    roles: dict[int, tuple[str, int]] = {}
    for op in fb.operators:
        if op.name == "CONV_2D":
            roles[op.inputs[1]] = ("conv", 0)
        elif op.name == "DEPTHWISE_CONV_2D":
            channels = fb.tensors[op.inputs[0]].shape[-1]
            roles[op.inputs[1]] = ("depthwise", channels)
        elif op.name in ("TRANSPOSE_CONV", "CUSTOM:Convolution2DTransposeBias"):
            roles[op.inputs[1]] = ("transpose", 0)
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


def _layout(role: str, channels: int, tensor: Any) -> Callable[[np.ndarray], np.ndarray]:
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


def _weight_spec(name: str, tensor: Any, layout: Callable[[np.ndarray], np.ndarray]
                 ) -> WeightSpec:
    quant = tensor.quantization
    if quant is None or tensor.dtype not in ("UINT8", "INT8", "INT16"):
        return WeightSpec(name)  # float weights, or int32 biases (exact at 32 bits)
    qmin, qmax = tensor.quant_range()
    if quant.per_tensor:
        return WeightSpec(name, np.float32(quant.scale[0]), np.float32(quant.zero_point[0]),
                          qmin, qmax)
    shape = [1] * len(tensor.shape)
    shape[quant.axis] = quant.scale.size
    scale = layout(np.broadcast_to(quant.scale.reshape(shape), tensor.shape))
    zero = layout(np.broadcast_to(quant.zero_point.reshape(shape), tensor.shape))
    return WeightSpec(name, _squeeze_broadcast(scale), _squeeze_broadcast(zero), qmin, qmax)


def _squeeze_broadcast(a: np.ndarray) -> np.ndarray:
    """The smallest array that broadcasts back to ``a`` (axes where it is constant)."""
    out = np.asarray(a, np.float32)
    for axis in range(out.ndim):
        first = np.take(out, [0], axis=axis)
        if np.all(out == first):
            out = first
    return out


def _variable_name(tensor: Any) -> str:
    import re

    short = tensor.name.split(";")[0]
    short = re.sub(r"[^A-Za-z0-9_./-]", "_", short).strip("/") or "tensor"
    return f"tflite/t{tensor.index:04d}/{short}"[:200]
