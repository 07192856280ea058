"""TFLite's int8 arithmetic, emulated in float: the rules the rebuilt graph applies.

When the writer builds ``serve_quantized`` from a flatbuffer (``ctx.quantized``), its
own parameters are applied as explicit quantize/dequantize math — ``q = clip(floor(x/s
+ 0.5) + zp)``, ``x' = (q - zp) * s`` — on every weight (per channel where the flatbuffer
says so) and on every quantized operator output, so the graph reproduces what the int8
kernels compute up to the rounding of their fixed-point multipliers; where rounding
matters (convolutions, requantizing QUANTIZE) :class:`exporters.tflite_graph.GraphRun`
applies :func:`quantize_multiplier` as the kernels do.

Pure functions of numpy values (and ``tf`` passed in), so they are tested without a
flatbuffer. The TFLite enums the builders read (schema.fbs) live here too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# TFLite enums (schema.fbs): Padding, ActivationFunctionType, TensorType.
PADDING = {0: "SAME", 1: "VALID"}
ACTIVATIONS: dict[int, str | None] = {0: None, 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH"}
INT64, INT32 = 4, 2


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


def activation_range(code: int, scale: float, zero: int, qmin: int, qmax: int
                     ) -> tuple[float, float]:
    """The fused activation ``code`` as an integer clamp on an output of ``scale`` and
    ``zero`` (TFLite's CalculateActivationRange)."""
    kind = ACTIVATIONS[code]

    def quantize(v: float) -> int:
        return zero + int(np.sign(v) * np.floor(abs(v) / scale + 0.5))

    bounds = {"RELU": (zero, qmax), "RELU6": (zero, quantize(6.0)),
              "RELU_N1_TO_1": (quantize(-1.0), quantize(1.0))}.get(kind or "", (qmin, qmax))
    return float(max(qmin, bounds[0])), float(min(qmax, bounds[1]))
