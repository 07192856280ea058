"""``model.tflite`` in every version folder: the int8 model LiteRT runs on a CPU node.

TF Serving's ``--prefer_tflite_model`` serves this file instead of ``saved_model.pb``, so
its ``serving_default`` signature is the SavedModel's: ``images`` uint8 [1,h,w,3] of any
size (shape signature [1,-1,-1,3]) -> ``segmentation_map`` uint8 [1,h,w], with the same
letterbox, crop and nearest resize back (:mod:`exporters.signatures`, the same TF code).
The network in between is full-integer int8, made from the same weights and the same
activation ranges as ``serve_quantized``:

* a TFLite source that brings its own int8 parameters (``quantization == "own"``): its
  operators are spliced in verbatim (:mod:`exporters.tflite_splice`) between a
  converted pre-processing model (letterbox, then the input tensor's own quantization,
  as ``serve_quantized`` rounds it) and a converted post-processing model; the uint8
  kernels are the ones ``serve_quantized`` reproduces bit for bit;
* every other source: the ``serve_quantized`` graph itself, as a ``tf.function`` over
  constant weights with the kit's fake-quant ops (per-channel int8 weights, the
  calibrated per-tensor activation ranges), converted by ``TFLiteConverter`` (which
  keeps fake-quant ranges, as for quantization-aware training). Without calibration
  images the writer calibrates on synthetic frames and the model card says so.

A model the converter refuses is one warning line naming the reason; the SavedModel is
written all the same. The file is checked with LiteRT before the version is published:
its signature, and its pixel agreement with ``serve_quantized`` (model card).
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import EdgesegError, Internal, Unimplemented
from edgeseg.model_contract import IMAGES, SEGMENTATION_MAP, SERVING_DEFAULT, TFLITE_FILE
from exporters.model import SegmentationModel
from exporters.quantize import ActivationRanges

SIGNATURE = SERVING_DEFAULT


@dataclass
class TfliteResult:
    """What the writer reports: the file, or why there is none."""

    written: bool
    bytes: int = 0
    seconds: float = 0.0
    method: str = ""
    activation_ranges: str = ""
    agreement: float | None = None
    agreement_on: str = ""
    reason: str = ""
    check_seconds: float = 0.0
    per_frame: list[float] = field(default_factory=list)

    def card(self) -> dict[str, Any]:
        if not self.written:
            return {"file": None, "reason": self.reason}
        return {"file": TFLITE_FILE, "bytes": self.bytes, "runtime": "LiteRT (ai-edge-litert)",
                "method": self.method, "activation_ranges": self.activation_ranges,
                "signature": f"{SIGNATURE}: {IMAGES} uint8 [1,-1,-1,3] -> "
                             f"{SEGMENTATION_MAP} uint8 [1,H,W]",
                "agreement_with_serve_quantized": self.agreement,
                "agreement_measured_on": self.agreement_on,
                "conversion_seconds": round(self.seconds, 2),
                "check_seconds": round(self.check_seconds, 2)}


def make(model: SegmentationModel, ranges: ActivationRanges | None, ranges_from: str,
         frames: list[np.ndarray], frames_are: str) -> tuple[bytes, str, str]:
    """The file's bytes, how it was made, and where its activation ranges come from."""
    if model.quantization == "own":
        if model.tflite_source is None:
            raise Unimplemented(f"{model.name} brings its own int8 parameters but not its "
                                "TFLite flatbuffer; cannot splice its operators")
        return (splice_core(model, model.tflite_source.read_bytes(), model.tflite_source),
                "the source flatbuffer's int8 operators, verbatim, with the letterbox and "
                "resize back spliced around them",
                "the source flatbuffer's own quantization parameters")
    from exporters.tflite_splice import with_signature

    if ranges:
        return (with_signature(convert(kit_function(model, ranges), quantize=True)),
                "serve_quantized's fake-quant graph converted by TFLiteConverter (its "
                "ranges kept)", ranges_from)
    # The source marks no activations (frozen graphs, Keras files): serve_quantized has
    # int8 weights and float activations, and so does this file (the converter's dynamic
    # range mode). Full-integer post-training calibration crashes TFLite's calibrator
    # on these imported graphs (a segfault in _feed_tensors, TF 2.21).
    core = convert(core_function(model), quantize=True)
    return (splice_core(model, core, Path(f"{model.name}-core.tflite")),
            "the network converted by TFLiteConverter with int8 weights (dynamic range), "
            "the letterbox and resize back spliced around it",
            "none: the source marks no activations, so they stay float as in "
            "serve_quantized (LiteRT's hybrid kernels quantize them per frame)")


# -- the kit's int8 graph, converted --------------------------------------------------------
class _ConstantContext:
    """A :class:`~exporters.model.GraphContext` over constant weights, quantized as
    ``serve_quantized`` quantizes (the same functions, the same ranges)."""

    quantized = True

    def __init__(self, model: SegmentationModel, ranges: ActivationRanges,
                 quantize_weights: bool = True) -> None:
        self.model = model
        self.ranges = ranges
        self.quantize_weights = quantize_weights

    def weight(self, name: str, channel_axis: int | None = None) -> Any:
        import tensorflow as tf

        from exporters.quantize import fake_quant_per_channel

        value = tf.constant(self.model.weights[name])
        if channel_axis is None or not self.quantize_weights:
            return value
        return fake_quant_per_channel(value, channel_axis)

    def activation(self, name: str, tensor: Any) -> Any:
        from exporters.quantize import fake_quant_activation

        if name not in self.ranges.ranges:
            return tensor
        low, high = self.ranges.ranges[name]
        return fake_quant_activation(tensor, low, high)


def kit_function(model: SegmentationModel, ranges: ActivationRanges) -> Any:
    import tensorflow as tf

    from exporters.signatures import map_dtype, resize_bilinear, segment

    ctx = _ConstantContext(model, ranges)

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8, name=IMAGES)],
                 autograph=False)
    def serving_default(images: Any) -> dict[str, Any]:
        ids = segment(tf.cast(images, tf.float32), tf.shape(images)[1:3], model, ctx,
                      map_dtype(model), resize_bilinear)
        return {SEGMENTATION_MAP: tf.identity(ids)}

    return serving_default


def core_function(model: SegmentationModel) -> Any:
    """The network alone, float, at its input size (weights quantized by the converter)."""
    import tensorflow as tf

    ctx = _ConstantContext(model, ActivationRanges(), quantize_weights=False)
    size_h, size_w = model.input_size

    @tf.function(input_signature=[tf.TensorSpec([1, size_h, size_w, 3], tf.float32,
                                                name="net_input")], autograph=False)
    def core(net_input: Any) -> dict[str, Any]:
        return {"scores": model.forward(net_input, ctx)}

    return core


# -- a core flatbuffer (a TFLite source's own, or converted) with pre/post spliced -----------
def splice_core(model: SegmentationModel, core: bytes, name: Path) -> bytes:
    from exporters import tflite, tflite_splice

    fb = tflite.read(name, raw=core)
    core_input = fb.tensors[fb.inputs[0]]
    core_output = fb.tensors[fb.outputs[0]]
    pre = convert(pre_function(model, core_input))
    post = convert(post_function(model, core_output))
    return tflite_splice.splice(pre, core, post)


def pre_function(model: SegmentationModel, core_input: Any) -> Any:
    """uint8 frame -> the core's input tensor: letterbox and pre-processing as the
    SavedModel does, then the input's own quantization, rounded as ``serve_quantized``
    rounds it (``floor(x / s + 0.5) + zero_point``, clamped)."""
    import tensorflow as tf

    from exporters.signatures import letterbox

    dtype = {"UINT8": tf.uint8, "INT8": tf.int8, "FLOAT32": tf.float32}[core_input.dtype]

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8, name=IMAGES)],
                 autograph=False)
    def pre(images: Any) -> dict[str, Any]:
        net_in, _, _ = letterbox(tf.cast(images, tf.float32), model, resize_bilinear_lean)
        if core_input.quantized:
            quant = core_input.quantization
            scale, zero = np.float32(quant.scale[0]), np.float32(quant.zero_point[0])
            qmin, qmax = core_input.quant_range()
            net_in = tf.clip_by_value(tf.floor(net_in / scale + 0.5) + zero, qmin, qmax)
        return {"net_input": tf.cast(net_in, dtype)}

    return pre


def resize_bilinear_lean(images: Any, size: Any) -> Any:
    """:func:`exporters.signatures.resize_bilinear`'s values, bit for bit, in fewer
    element copies. TFLite's GATHER along the width axis copies 3 floats per index,
    which made the letterbox ~2/3 of the pre-processing's time. The horizontal lerp of
    an output row depends only on the input row it reads, so it is done once per input
    row the output reads (at most ``2 * out_h``, found by UNIQUE) with two width
    gathers instead of four, and the top/bottom rows are gathered from its result."""
    import tensorflow as tf

    from exporters.signatures import bilinear_weights as weights

    shape = tf.shape(images)
    y_low, y_high, y_lerp = weights(size[0], shape[1])
    x_low, x_high, x_lerp = weights(size[1], shape[2])
    x_lerp, y_lerp = tf.reshape(x_lerp, [1, 1, -1, 1]), tf.reshape(y_lerp, [1, -1, 1, 1])
    rows, where = tf.unique(tf.reshape(tf.stack([y_low, y_high], axis=1), [-1]))
    source = tf.gather(images, rows, axis=1)
    left, right = tf.gather(source, x_low, axis=2), tf.gather(source, x_high, axis=2)
    lerped, where = left + (right - left) * x_lerp, tf.reshape(where, [-1, 2])
    top, bottom = tf.gather(lerped, where[:, 0], axis=1), tf.gather(lerped, where[:, 1], axis=1)
    return top + (bottom - top) * y_lerp


def post_function(model: SegmentationModel, core_output: Any) -> Any:
    """The core's output (class ids, or scores: dequantized as ``serve_quantized`` does)
    -> ``segmentation_map`` at the frame's size."""
    import tensorflow as tf

    from exporters import tflite
    from exporters.signatures import class_ids, letterbox_size, map_dtype

    dtype = tf.as_dtype(np.dtype(tflite._DTYPES[core_output.dtype]))
    spec = tf.TensorSpec(list(core_output.shape), dtype, name="scores")
    images_spec = tf.TensorSpec([1, None, None, 3], tf.uint8, name=IMAGES)

    @tf.function(input_signature=[spec, images_spec], autograph=False)
    def post(scores: Any, images: Any) -> dict[str, Any]:
        if core_output.quantized:
            quant = core_output.quantization
            scores = (tf.cast(scores, tf.float32) - np.float32(quant.zero_point[0])) \
                * np.float32(quant.scale[0])
        size = tf.shape(images)[1:3]
        if model.preprocessing.resize == "letterbox":
            new_h, new_w = letterbox_size(size[0], size[1], model.input_size)
        else:
            new_h, new_w = tf.constant(model.input_size[0]), tf.constant(model.input_size[1])
        # restore()'s crop and nearest resize, by gathers on the map's dtype (exact).
        ids = tf.cast(class_ids(scores, model), map_dtype(model))[:, :new_h, :new_w]
        ids = tf.gather(ids, _nearest_indices(size[0], new_h), axis=1)
        return {SEGMENTATION_MAP: tf.gather(ids, _nearest_indices(size[1], new_w), axis=2)}

    return post


def _nearest_indices(out: Any, in_size: Any) -> Any:
    """The source index of each output index of TF's (and TFLite's) nearest resize with
    half-pixel centers: ``min(floor((i + 0.5) * (in / out)), in - 1)`` in float32."""
    import tensorflow as tf

    scale = tf.cast(in_size, tf.float32) / tf.cast(out, tf.float32)
    position = tf.floor((tf.cast(tf.range(out), tf.float32) + 0.5) * scale)
    return tf.minimum(tf.cast(position, tf.int32), in_size - 1)


# -- conversion and LiteRT --------------------------------------------------------------
def convert(function: Any, quantize: bool = False) -> bytes:
    """A ``tf.function`` -> TFLite bytes, builtin operators only; ``quantize``: its
    fake-quant ops become int8 operators with their ranges (weights without fake-quant
    ops become int8 all the same: dynamic range). A refusal becomes
    :class:`~edgeseg.errors.Unimplemented` with the converter's reason in one line."""
    import tensorflow as tf

    concrete = function.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], function)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    try:
        with warnings.catch_warnings(), _native_stderr_hidden():
            # The uint8 frame is cast to float, not a quantized input: nothing to specify.
            warnings.filterwarnings("ignore", "Statistics for quantized inputs")
            return bytes(converter.convert())
    except Exception as exc:  # the converter raises ConverterError and friends
        raise Unimplemented(f"TFLite conversion failed: {conversion_reason(exc)}") from None


@contextmanager
def _native_stderr_hidden() -> Iterator[None]:
    """The converter's C++ side prints its diagnostics (MLIR locations, op dumps) to file
    descriptor 2; the exception carries the same text, reduced to one line above."""
    import os
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def conversion_reason(exc: BaseException) -> str:
    """The line of a converter error that names what failed (e.g. the unsupported op)."""
    text = str(exc)
    for pattern in (r"'(tf\.\w+)' op is neither a custom op nor a flex op",
                    r"failed to legalize operation '([\w.]+)'",
                    r"op is not supported[^\n]*"):
        found = re.search(pattern, text)
        if found:
            return f"unsupported operation {found.group(1) if found.groups() else found[0]}"
    lines = [line.strip() for line in text.splitlines() if "error" in line.lower()]
    line = (lines[0] if lines else text.strip().splitlines()[0] if text.strip()
            else type(exc).__name__)
    return line[:300]


def runner(data: bytes, reference: bool = False, threads: int = 2) -> Callable[..., Any]:
    """LiteRT's signature runner for ``serving_default``. ``reference``: TFLite's
    builtin kernels without XNNPACK (the int8 reference; XNNPACK rounds otherwise)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kwargs: dict[str, Any] = {"num_threads": threads}
    if reference:
        kwargs["experimental_op_resolver_type"] = (
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter = Interpreter(model_content=data, **kwargs)
    run = interpreter.get_signature_runner(SIGNATURE)

    def segment(image: np.ndarray) -> np.ndarray:
        return run(**{IMAGES: image[None]})[SEGMENTATION_MAP][0]

    segment.interpreter = interpreter  # type: ignore[attr-defined]
    return segment


def signature(data: bytes) -> dict[str, Any]:
    """``{inputs: {name: {dtype, shape}}, outputs: …}`` of ``serving_default``, with
    shape signatures (-1 for any size)."""
    from ai_edge_litert.interpreter import Interpreter

    run = Interpreter(model_content=data).get_signature_runner(SIGNATURE)

    def describe(details: dict[str, Any]) -> dict[str, Any]:
        return {name: {"dtype": np.dtype(d["dtype"]).name,
                       "shape": [int(v) for v in d["shape_signature"]]}
                for name, d in sorted(details.items())}

    return {SIGNATURE: {"inputs": describe(run.get_input_details()),
                        "outputs": describe(run.get_output_details())}}


def agreement(data: bytes, frames: list[np.ndarray],
              expected: list[np.ndarray]) -> tuple[float, list[float]]:
    """Pixel agreement of the file (builtin int8 kernels) with ``expected`` maps."""
    segment = runner(data, reference=True)
    per_frame = []
    for frame, want in zip(frames, expected, strict=True):
        got = segment(frame)
        if got.shape != want.shape:
            raise Internal(f"model.tflite returned a map of shape {got.shape} for a frame of "
                           f"{frame.shape[:2]}; expected {want.shape}")
        per_frame.append(float(np.mean(got == want)))
    pixels = [w.size for w in expected]
    return float(np.average(per_frame, weights=pixels)), per_frame


def write(model: SegmentationModel, export_dir: Path, ranges: ActivationRanges | None,
          ranges_from: str, frames: list[np.ndarray], expected: list[np.ndarray],
          frames_are: str) -> TfliteResult:
    """Write ``export_dir/model.tflite`` and check it; a model that cannot be converted
    gives ``written=False`` and the reason (the caller warns)."""
    started = time.monotonic()
    try:
        data, method, ranges_note = make(model, ranges, ranges_from, frames, frames_are)
    except EdgesegError as exc:  # Unimplemented from the converter, InvalidArgument, …
        return TfliteResult(written=False, reason=str(exc))
    seconds = time.monotonic() - started
    try:
        total, per_frame = agreement(data, frames, expected)
    except (ValueError, RuntimeError, Internal) as exc:
        return TfliteResult(written=False, reason=f"LiteRT cannot run the converted model: "
                            f"{str(exc).strip().splitlines()[0][:300]}")
    (export_dir / TFLITE_FILE).write_bytes(data)
    return TfliteResult(written=True, bytes=len(data), seconds=seconds, method=method,
                        activation_ranges=ranges_note, agreement=total,
                        agreement_on=frames_are, per_frame=per_frame,
                        check_seconds=time.monotonic() - started - seconds)
