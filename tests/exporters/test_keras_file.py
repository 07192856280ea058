"""Keras files: the built-in DeepLab saved as .keras and .h5 round-trips; a
classifier (not per-pixel) is refused with nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tensorflow import keras

from edgeseg.errors import InvalidArgument
from exporters import command, graphs, keras_file
from exporters.deeplab import synthetic_image

from .conftest import SIZE, tree


@pytest.fixture(scope="module")
def keras_path(keras_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keras") / "deeplab.keras"
    keras_model.save(path)
    return path


def test_keras_file_round_trips(keras_path, keras_model, tmp_path):
    base = tmp_path / "deeplab"
    assert command.main([str(keras_path), "--output", str(base), "--quiet"]) == 0
    frames = np.stack([synthetic_image(SIZE, SIZE, seed=s) for s in range(4)])
    expected = np.argmax(np.asarray(keras_model(frames.astype(np.float32))), axis=-1)
    with graphs.loaded(base / "1", "serve") as run:
        got = run("serving_default", {"images": frames})
    assert np.mean(got == expected) >= 0.999
    assert len(np.unique(expected)) > 3
    # The same writer: model.tflite too, with the SavedModel's signature.
    from exporters import tflite_export

    segment = tflite_export.runner((base / "1" / "model.tflite").read_bytes())
    assert segment(frames[0, :40]).shape == (40, SIZE)


def test_h5_file_loads_with_its_preprocessing_options(keras_model, tmp_path):
    path = tmp_path / "deeplab.h5"
    keras_model.save(path)
    model = keras_file.load(path, command.parser().parse_args(
        [str(path), "--output", "x", "--mean", "127.5", "--std", "127.5"]))
    assert model.input_size == (SIZE, SIZE) and model.num_classes == 21
    assert model.output == "logits" and model.source["kind"] == "keras"
    assert model.preprocessing.scale == pytest.approx(1 / 127.5)
    assert model.preprocessing.offset == pytest.approx(-1.0)


def test_classifier_is_refused_and_nothing_is_written(tmp_path):
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    classifier = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    path = tmp_path / "classifier.keras"
    classifier.save(path)
    base = tmp_path / "base"
    with pytest.raises(InvalidArgument) as caught:
        command.main([str(path), "--output", str(base), "--quiet"])
    assert "not per-pixel" in str(caught.value) and "(None, 10)" in str(caught.value)
    assert tree(base) == []


def test_not_a_keras_file(tmp_path):
    bad = tmp_path / "model.keras"
    bad.write_text("nope")
    with pytest.raises(InvalidArgument, match="not a Keras model file"):
        command.main([str(bad), "--output", str(tmp_path / "base"), "--quiet"])
    assert tree(tmp_path / "base") == []
