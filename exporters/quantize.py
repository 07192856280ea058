"""The kit's int8 scheme, as quantize/dequantize (fake-quant) ops in the graph.

* Weights: symmetric, narrow range (-127..127), one scale per output channel, computed
  in the graph from the SAME float variable the float graph reads — nothing is stored
  twice. This is what TensorRT/TF-TRT and TFLite expect of int8 weights.
* Activations: asymmetric, one (min, max) range per tensor, calibrated by running the
  float graph on sample images. Without calibration images activations stay float and
  the model card says so.

Policies here are plain functions; :class:`ActivationRanges` only accumulates.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf


def fake_quant_per_channel(weight: tf.Tensor, channel_axis: int) -> tf.Tensor:
    """Quantize ``weight`` to int8 per output channel (symmetric, narrow range)."""
    rank = weight.shape.rank
    axis = channel_axis % rank
    perm = [i for i in range(rank) if i != axis] + [axis]
    moved = tf.transpose(weight, perm) if axis != rank - 1 else weight
    bound = tf.maximum(tf.reduce_max(tf.abs(moved), axis=list(range(rank - 1))), 1e-8)
    quantized = tf.quantization.fake_quant_with_min_max_vars_per_channel(
        moved, -bound, bound, num_bits=8, narrow_range=True)
    if axis == rank - 1:
        return quantized
    inverse = list(np.argsort(perm))
    return tf.transpose(quantized, inverse)


def fake_quant_activation(tensor: tf.Tensor, low: float, high: float) -> tf.Tensor:
    """Quantize an activation to 8 bits over its calibrated range (which must hold 0,
    so that zero padding stays exact)."""
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    if high - low < 1e-6:
        high = low + 1e-6
    return tf.quantization.fake_quant_with_min_max_args(tensor, min=low, max=high, num_bits=8)


class ActivationRanges:
    """Running min/max of each named activation over calibration batches."""

    def __init__(self) -> None:
        self.ranges: dict[str, tuple[float, float]] = {}
        self.batches = 0

    def update(self, values: Mapping[str, np.ndarray]) -> None:
        for name, value in values.items():
            low, high = float(np.min(value)), float(np.max(value))
            if name in self.ranges:
                old_low, old_high = self.ranges[name]
                low, high = min(low, old_low), max(high, old_high)
            self.ranges[name] = (low, high)
        self.batches += 1

    def __bool__(self) -> bool:
        return bool(self.ranges)
