"""The built-in DeepLab-v3 architecture (Keras form) and its weights file handling."""

from __future__ import annotations

import numpy as np
import pytest

from edgeseg.errors import InvalidArgument, NotFound
from exporters.deeplab import (
    DeepLabConfig,
    build_keras_model,
    feature_size,
    folded_weights,
    load_weights,
    make_divisible,
    synthetic_image,
)


@pytest.mark.parametrize(("value", "expected"), [
    (32, 32), (16, 16), (24 * 0.5, 16), (320 * 0.5, 160), (96 * 0.35, 32), (1280 * 1.4, 1792),
    (3, 8)])
def test_make_divisible(value, expected):
    assert make_divisible(value) == expected


@pytest.mark.parametrize(("size", "stride", "expected"), [((513, 513), 16, (33, 33)),
                                                          ((513, 513), 8, (65, 65)),
                                                          ((65, 97), 16, (5, 7))])
def test_feature_size(size, stride, expected):
    assert feature_size(DeepLabConfig(input_size=size, output_stride=stride)) == expected


def test_keras_model_outputs_logits_at_input_size(keras_model, deeplab_cfg):
    assert tuple(keras_model.output.shape) == (None, *deeplab_cfg.input_size, 21)
    logits = np.asarray(keras_model(synthetic_image(*deeplab_cfg.input_size)[None]
                                    .astype(np.float32)))
    # Random but not degenerate: several classes win somewhere, so map comparisons bite.
    assert len(np.unique(logits.argmax(-1))) >= 5


def test_options_change_the_architecture():
    small = build_keras_model(DeepLabConfig(input_size=(65, 65), depth_multiplier=0.5,
                                            num_classes=3))
    os8 = build_keras_model(DeepLabConfig(input_size=(65, 65), output_stride=8,
                                          atrous_rates=(6, 12, 18)))
    assert small.output.shape[-1] == 3
    assert small.get_layer("Conv").filters == 16
    assert small.count_params() < 0.4 * os8.count_params()
    # Output stride 8 dilates the 64-channel stage; 16 leaves it strided.
    assert os8.get_layer("expanded_conv_7_depthwise").strides == (1, 1)
    assert os8.get_layer("expanded_conv_8_depthwise").dilation_rate == (2, 2)
    assert os8.get_layer("aspp3").dilation_rate == (36, 36)


def test_bad_config_is_refused():
    with pytest.raises(InvalidArgument, match="output stride must be 8 or 16"):
        DeepLabConfig(output_stride=32)
    with pytest.raises(InvalidArgument, match="too small"):
        DeepLabConfig(input_size=(16, 16))


def test_folding_keeps_the_function(keras_model, deeplab_cfg):
    """conv+BN folded into one kernel and bias gives the same numbers."""
    import tensorflow as tf

    weights = folded_weights(keras_model)
    assert "expanded_conv_3_project/bias" in weights
    assert not any("_bn" in name for name in weights)
    x = synthetic_image(*deeplab_cfg.input_size)[None].astype(np.float32)
    sub = tf.keras.Model(keras_model.input, keras_model.get_layer("Conv_relu6").output)
    expected = sub(x).numpy()
    got = tf.nn.relu6(tf.nn.conv2d(x / 127.5 - 1, weights["Conv/kernel"], 2, "SAME")
                      + weights["Conv/bias"]).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_weights_file_round_trip(tmp_path, keras_model, deeplab_cfg):
    path = tmp_path / "deeplab.weights.h5"
    keras_model.save_weights(path)
    other = build_keras_model(deeplab_cfg, seed=99)
    assert not np.allclose(other.get_layer("logits").kernel.numpy(),
                           keras_model.get_layer("logits").kernel.numpy())
    load_weights(other, path)
    np.testing.assert_array_equal(other.get_layer("logits").kernel.numpy(),
                                  keras_model.get_layer("logits").kernel.numpy())


def test_weights_of_another_architecture_name_layer_and_shapes(tmp_path, keras_model):
    path = tmp_path / "five-classes.weights.h5"
    build_keras_model(DeepLabConfig(input_size=(65, 65), num_classes=5)).save_weights(path)
    before = keras_model.get_layer("logits").kernel.numpy().copy()
    with pytest.raises(InvalidArgument) as info:
        load_weights(keras_model, path)
    message = str(info.value)
    assert "'logits'" in message and "(1, 1, 256, 5)" in message and "(1, 1, 256, 21)" in message
    np.testing.assert_array_equal(keras_model.get_layer("logits").kernel.numpy(), before)


def test_missing_and_unreadable_weights(tmp_path, keras_model):
    with pytest.raises(NotFound, match="does not exist"):
        load_weights(keras_model, tmp_path / "nope.weights.h5")
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(b"this is not HDF5" * 10)
    with pytest.raises(InvalidArgument, match="not a Keras HDF5 weights file"):
        load_weights(keras_model, junk)
