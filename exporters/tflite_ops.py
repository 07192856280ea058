"""The TFLite operators the importer rebuilds: ONE registry entry per operator.

Each :class:`OpSpec` in :data:`OPS` says everything the importer knows of one operator:
which schema options table to read and which fields (:func:`read_options`, used by
:func:`exporters.tflite.read`), how to build it as TensorFlow ops over a
:class:`~exporters.tflite_graph.GraphRun` (``build``), and whether its second input is
a filter and of which layout (``filter``, used by :mod:`exporters.tflite_weights`).
An operator missing here is refused by :func:`check_supported`, by name and index.

Nothing here imports TensorFlow: builders reach it through ``run.tf``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg.errors import InvalidArgument, Unimplemented
from exporters.tflite_quant import ACTIVATIONS, INT32, INT64

if TYPE_CHECKING:
    from exporters.tflite_graph import GraphRun

Builder = Callable[["GraphRun", Any], Any]
OptionsReader = Callable[[Any], dict[str, Any]]


@dataclass(frozen=True)
class OpSpec:
    """One operator: its options (schema table and fields, or a reader of custom
    options bytes), its builder, and the layout of its filter input, if any."""

    build: Builder
    table: str | None = None               # schema options class, e.g. Conv2DOptions
    fields: tuple[str, ...] = ()
    custom_options: OptionsReader | None = None
    filter: str | None = None              # "conv", "depthwise" or "transpose"


# -- builders ---------------------------------------------------------------------------
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
    out_type = run.tf.int32 if op.options.get("OutputType", INT64) == INT32 else run.tf.int64
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


# -- options -----------------------------------------------------------------------------
_CONV = ("Padding", "StrideW", "StrideH", "FusedActivationFunction",
         "DilationWFactor", "DilationHFactor")
_POOL = ("Padding", "StrideW", "StrideH", "FilterWidth", "FilterHeight",
         "FusedActivationFunction")
_RESIZE = ("AlignCorners", "HalfPixelCenters")
_ACT = ("FusedActivationFunction",)


def _transpose_bias_options(op: Any) -> dict[str, Any]:
    """MediaPipe keeps a raw TfLiteTransposeConvParams struct: padding (1 SAME,
    2 VALID), stride_width, stride_height, as int32."""
    raw = np.asarray(op.CustomOptionsAsNumpy(), np.uint8).tobytes()
    if len(raw) < 12:
        raise InvalidArgument(f"operator CUSTOM:Convolution2DTransposeBias has {len(raw)} "
                              "bytes of options; expected 12 (padding, stride width, "
                              "stride height)")
    padding, stride_w, stride_h = np.frombuffer(raw[:12], "<i4")
    return {"Padding": 0 if padding == 1 else 1, "StrideW": int(stride_w),
            "StrideH": int(stride_h)}


OPS: dict[str, OpSpec] = {
    "CONV_2D": OpSpec(_conv_2d, "Conv2DOptions", _CONV, filter="conv"),
    "DEPTHWISE_CONV_2D": OpSpec(
        _depthwise_conv_2d, "DepthwiseConv2DOptions",
        ("Padding", "StrideW", "StrideH", "DepthMultiplier", "FusedActivationFunction",
         "DilationWFactor", "DilationHFactor"), filter="depthwise"),
    "AVERAGE_POOL_2D": OpSpec(_pool("avg"), "Pool2DOptions", _POOL),
    "MAX_POOL_2D": OpSpec(_pool("max"), "Pool2DOptions", _POOL),
    "ADD": OpSpec(_binary("ADD"), "AddOptions", _ACT),
    "SUB": OpSpec(_binary("SUB"), "SubOptions", _ACT),
    "MUL": OpSpec(_binary("MUL"), "MulOptions", _ACT),
    "CONCATENATION": OpSpec(_concatenation, "ConcatenationOptions", ("Axis", *_ACT)),
    "RESIZE_BILINEAR": OpSpec(_resize("bilinear"), "ResizeBilinearOptions", _RESIZE),
    "RESIZE_NEAREST_NEIGHBOR": OpSpec(_resize("nearest"), "ResizeNearestNeighborOptions",
                                      _RESIZE),
    "ARG_MAX": OpSpec(_arg_max, "ArgMaxOptions", ("OutputType",)),
    "PAD": OpSpec(_pad),
    "MEAN": OpSpec(_mean, "ReducerOptions", ("KeepDims",)),
    "RESHAPE": OpSpec(_reshape, "ReshapeOptions", ("NewShape",)),
    "SOFTMAX": OpSpec(_softmax, "SoftmaxOptions", ("Beta",)),
    "TRANSPOSE_CONV": OpSpec(_transpose_conv, "TransposeConvOptions",
                             ("Padding", "StrideW", "StrideH"), filter="transpose"),
    "CUSTOM:Convolution2DTransposeBias": OpSpec(
        _transpose_conv, custom_options=_transpose_bias_options, filter="transpose"),
    **{name: OpSpec(_unary(name)) for name in ("RELU", "RELU6", "LOGISTIC", "TANH",
                                               "HARD_SWISH", "QUANTIZE", "DEQUANTIZE")},
}


def read_options(schema: Any, name: str, op: Any) -> dict[str, Any]:
    """The fields ``OPS[name]`` asks for, read from the operator's options table
    (``schema``: TFLite's generated flatbuffer accessors); {} for any other operator."""
    spec = OPS.get(name)
    if spec is None:
        return {}
    if spec.custom_options is not None:
        return spec.custom_options(op)
    table = op.BuiltinOptions()
    if spec.table is None or table is None:
        return {}
    options = getattr(schema, spec.table)()
    options.Init(table.Bytes, table.Pos)
    values: dict[str, Any] = {}
    for field_name in spec.fields:
        if field_name == "NewShape":
            shape = options.NewShapeAsNumpy()
            values[field_name] = [] if isinstance(shape, int) else [int(v) for v in shape]
        else:
            values[field_name] = getattr(options, field_name)()
    return values


def check_supported(fb: Any) -> None:
    """Refuse the first operator the importer cannot rebuild, by name and index."""
    for op in fb.operators:
        if op.name not in OPS:
            supported = ", ".join(sorted(OPS))
            raise Unimplemented(
                f"{fb.path.name}: operator {op.index} is {op.name}, which the TFLite "
                f"importer does not support (supported: {supported}); nothing was written")
        code = op.options.get("FusedActivationFunction", 0)
        if code not in ACTIVATIONS:
            raise Unimplemented(f"{fb.path.name}: operator {op.index} ({op.name}) uses fused "
                                f"activation {code}, which the importer does not support")
