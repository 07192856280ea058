"""Frozen TF1 graphs: the built-in DeepLab frozen here (as the model zoo's, uint8
``ImageTensor`` in, ``SemanticPredictions`` out) round-trips through the writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from edgeseg.errors import DataLoss, InvalidArgument, NotFound
from exporters import command, graphs
from exporters.deeplab import synthetic_image
from exporters.frozen_graph import MIN_VARIABLE_ELEMENTS

from .conftest import SIZE, tree

TENSORS = ["--input-tensor", "ImageTensor:0", "--output-tensor", "SemanticPredictions:0"]


def freeze_deeplab(keras_model, path: Path) -> Path:
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.uint8,
                                                name="ImageTensor")])
    def predict(images):
        logits = keras_model(tf.cast(images, tf.float32), training=False)
        return tf.identity(tf.argmax(logits, axis=-1), name="SemanticPredictions")

    frozen = convert_variables_to_constants_v2(predict.get_concrete_function())
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    return path


@pytest.fixture(scope="module")
def frozen_pb(keras_model, tmp_path_factory) -> Path:
    return freeze_deeplab(keras_model, tmp_path_factory.mktemp("frozen") / "deeplab.pb")


def test_model_tflite_has_int8_weights_and_the_signature(frozen_export):
    """A frozen graph marks no activations: model.tflite has int8 weights and float
    activations, as serve_quantized, and says so; it runs any frame size."""
    import json

    from exporters import tflite_export

    card = json.loads((frozen_export / "assets.extra" / "model_card.json").read_text())
    assert card["tflite"]["activation_ranges"].startswith("none: the source marks no")
    data = (frozen_export / "model.tflite").read_bytes()
    segment = tflite_export.runner(data, reference=True)
    frame = synthetic_image(SIZE + 10, SIZE - 20, seed=3)
    got = segment(frame)
    assert got.shape == frame.shape[:2] and got.dtype == np.uint8
    with graphs.loaded(frozen_export, "serve") as run:
        float_map = run("serving_default", {"images": frame[None]})[0]
    assert np.mean(got == float_map) > 0.3  # far above chance (1/21): the same network
    # Filters are int8 in every subgraph (a batch-of-one graph runs in a WHILE body),
    from tensorflow.lite.python import schema_py_generated as schema

    from exporters.tflite_splice import load

    model = load(data)
    filters = [sub.tensors[op.inputs[1]].type for sub in model.subgraphs
               for op in sub.operators or []
               if max(model.operatorCodes[op.opcodeIndex].builtinCode,
                      model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)
               == schema.BuiltinOperator.CONV_2D]
    # The converter leaves filters under 1024 values float (here 2 of 38).
    assert filters.count(schema.TensorType.INT8) >= 0.9 * len(filters) > 0


@pytest.fixture(scope="module")
def frozen_export(frozen_pb, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("frozen_export") / "deeplab"
    assert command.main([str(frozen_pb), "--output", str(base), "--quiet", *TENSORS]) == 0
    return base / "1"


def test_serve_gives_the_original_argmax(frozen_export, keras_model):
    frames = np.stack([synthetic_image(SIZE, SIZE, seed=s) for s in range(4)])
    expected = np.argmax(np.asarray(keras_model(frames.astype(np.float32))), axis=-1)
    with graphs.loaded(frozen_export, "serve") as run:
        got = run("serving_default", {"images": frames})
    assert np.mean(got == expected) >= 0.999
    assert len(np.unique(expected)) > 3  # a map that can tell a wrong graph from a right one


def test_weights_are_variables_not_constants(frozen_export, keras_model):
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((frozen_export / "saved_model.pb").read_bytes())
    for meta in proto.meta_graphs:
        for node in meta.graph_def.node:
            if node.op == "Const" and node.attr["dtype"].type == tf.float32.as_datatype_enum:
                # Small constants only (the writer's zero initializers hold one value).
                assert node.attr["value"].tensor.ByteSize() < 4 * MIN_VARIABLE_ELEMENTS + 64
    variables = sum(p.stat().st_size for p in (frozen_export / "variables").iterdir())
    assert variables >= 0.95 * 4 * keras_model.count_params()  # every weight, stored once


def test_serve_quantized_runs_and_mostly_agrees(frozen_export):
    frame = synthetic_image(SIZE, SIZE, seed=9)[None]
    with graphs.loaded(frozen_export, "serve") as run:
        float_map = run("serving_default", {"images": frame})
    with graphs.loaded(frozen_export, "serve_quantized") as run:
        int8_map = run("serving_default", {"images": frame})
    # Weights int8 per channel, activations float; random weights with unfolded batch
    # norm are touchy (~56% here), but far above chance (1/21) if the graph is right.
    assert float_map.shape == int8_map.shape == (1, SIZE, SIZE)
    assert np.mean(float_map == int8_map) > 0.3


def test_missing_tensor_is_named_and_nothing_is_written(frozen_pb, tmp_path):
    base = tmp_path / "base"
    with pytest.raises(NotFound) as caught:
        command.main([str(frozen_pb), "--output", str(base), "--quiet",
                      "--input-tensor", "image:0", "--output-tensor", "SemanticPredictions:0"])
    assert "image:0" in str(caught.value) and "ImageTensor:0" in str(caught.value)
    assert tree(base) == []


def test_tensors_are_required(frozen_pb, tmp_path):
    with pytest.raises(InvalidArgument, match="--input-tensor and --output-tensor"):
        command.main([str(frozen_pb), "--output", str(tmp_path / "base"), "--quiet"])
    assert tree(tmp_path / "base") == []


def test_garbage_pb(tmp_path):
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"\xff\xff\xff\xff not a graph")
    with pytest.raises(DataLoss, match="not a readable GraphDef"):
        command.main([str(bad), "--output", str(tmp_path / "base"), "--quiet", *TENSORS])
    assert tree(tmp_path / "base") == []
