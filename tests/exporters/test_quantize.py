"""The kit's int8 scheme against a numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from exporters.quantize import ActivationRanges, fake_quant_activation, fake_quant_per_channel


def reference_per_channel(w: np.ndarray, axis: int) -> np.ndarray:
    moved = np.moveaxis(w, axis, -1)
    scale = np.abs(moved).reshape(-1, moved.shape[-1]).max(0) / 127.0
    q = np.clip(np.round(moved / scale), -127, 127) * scale
    return np.moveaxis(q, -1, axis)


@pytest.mark.parametrize(("shape", "axis"), [((3, 3, 8, 16), 3), ((3, 3, 12, 1), 2),
                                             ((64, 10), 1)])
def test_per_channel_matches_reference(shape, axis):
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, shape).astype(np.float32)
    w = w * rng.uniform(0.01, 5, shape[axis]).reshape(
        [shape[axis] if i == axis else 1 for i in range(len(shape))]).astype(np.float32)
    got = fake_quant_per_channel(tf.constant(w), axis).numpy()
    expected = reference_per_channel(w, axis)
    scale = np.moveaxis(np.abs(w), axis, -1).reshape(-1, shape[axis]).max(0) / 127
    err = np.moveaxis(np.abs(got - expected), axis, -1).reshape(-1, shape[axis]).max(0)
    assert np.all(err <= 1e-3 * scale + 1e-7)
    # at most 255 distinct values per channel: it really is 8-bit
    per_channel = np.moveaxis(got, axis, -1).reshape(-1, shape[axis])
    assert max(len(np.unique(per_channel[:, c])) for c in range(shape[axis])) <= 255
    assert not np.array_equal(got, w)


def test_activation_range_keeps_zero_exact():
    x = tf.constant([0.0, 0.5, 3.0, 5.9])
    got = fake_quant_activation(x, 0.2, 6.0).numpy()  # range widened to hold 0
    assert got[0] == 0.0
    assert np.max(np.abs(got - x.numpy())) <= 6.0 / 255


def test_ranges_accumulate():
    ranges = ActivationRanges()
    ranges.update({"a": np.array([0.0, 1.0])})
    ranges.update({"a": np.array([-2.0, 0.5]), "b": np.array([3.0])})
    assert ranges.ranges == {"a": (-2.0, 1.0), "b": (3.0, 3.0)} and ranges.batches == 2
