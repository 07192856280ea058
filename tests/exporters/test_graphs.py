"""exporters/graphs.py on its own: building the TF1 graphs of both meta-graphs, feeding
weights, calibrating, and stripping devices, on the one-convolution tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from edgeseg.errors import Internal
from edgeseg.model_contract import IMAGES, SEGMENTATION_MAP, SERVING_DEFAULT, SIGNATURES
from edgeseg.progress import Progress
from exporters import graphs
from exporters.deeplab import synthetic_image
from exporters.model import SegmentationModel
from exporters.quantize import ActivationRanges
from tests.exporters.conftest import tiny_model


def _variable_names(built: graphs.BuiltGraph) -> list[str]:
    with built.graph.as_default():
        return sorted(v.op.name for v in tf.compat.v1.global_variables())


def _serve(sess, built: graphs.BuiltGraph, frame: np.ndarray) -> np.ndarray:
    sig = built.signatures[SERVING_DEFAULT]
    return sess.run(sig.outputs[SEGMENTATION_MAP].name,
                    feed_dict={sig.inputs[IMAGES].name: frame[None]})


def _calibrated(model: SegmentationModel) -> ActivationRanges:
    built = graphs.build_graph(model, quantized=False)
    with graphs.session(built.graph) as sess:
        graphs.assign_weights(sess, built, model.weights)
        frames = [synthetic_image(32, 32, seed=s) for s in (1, 2)]
        return graphs.calibrate(sess, built, frames, Progress(enabled=False))


def test_both_meta_graphs_have_one_variable_per_weight_with_the_same_names():
    model = tiny_model(seed=1)
    ranges = _calibrated(model)
    float_graph = graphs.build_graph(model, quantized=False)
    int8_graph = graphs.build_graph(model, quantized=True, ranges=ranges)
    assert _variable_names(float_graph) == sorted(model.weights)
    assert _variable_names(int8_graph) == _variable_names(float_graph)
    assert float_graph.graph is not int8_graph.graph
    for built in (float_graph, int8_graph):
        assert sorted(built.signatures) == sorted(SIGNATURES)
        assert built.inputs[IMAGES].name == f"{SERVING_DEFAULT}/{IMAGES}:0"
    # Calibration recorded the model's one activation, from serving_default only.
    assert set(ranges.ranges) == {"head"}
    low, high = ranges.ranges["head"]
    assert low < high


def test_one_checkpoint_restores_into_both_graphs(tmp_path):
    """Saved from the float graph, restored into the int8 one: the names line up, and
    the restored int8 graph segments as the float one does on most pixels."""
    model = tiny_model(seed=2)
    ranges = _calibrated(model)
    frame = synthetic_image(40, 50, seed=7)
    float_graph = graphs.build_graph(model, quantized=False)
    with graphs.session(float_graph.graph) as sess:
        graphs.assign_weights(sess, float_graph, model.weights)
        with float_graph.graph.as_default():
            path = tf.compat.v1.train.Saver().save(sess, str(tmp_path / "ckpt"))
        expected = _serve(sess, float_graph, frame)
    int8_graph = graphs.build_graph(model, quantized=True, ranges=ranges)
    with graphs.session(int8_graph.graph) as sess:
        with int8_graph.graph.as_default():
            tf.compat.v1.train.Saver().restore(sess, path)
        got = _serve(sess, int8_graph, frame)
    assert got.shape == expected.shape == (1, 40, 50)
    assert np.mean(got == expected) > 0.8


def test_a_weight_the_source_did_not_declare_is_named():
    model = tiny_model()

    def forward(images, ctx):
        return ctx.weight("missing/kernel")

    model.forward = forward
    with pytest.raises(Internal, match="missing/kernel"):
        graphs.build_graph(model, quantized=False)


def test_int8_graph_refuses_an_activation_without_a_calibrated_range():
    ranges = ActivationRanges()
    ranges.update({"other": np.array([0.0, 1.0])})
    with pytest.raises(Internal, match="'head' has no calibrated range"):
        graphs.build_graph(tiny_model(), quantized=True, ranges=ranges)


def test_strip_devices_clears_graph_and_function_library_nodes(tmp_path):
    from tensorflow.core.protobuf import saved_model_pb2

    built = graphs.build_graph(tiny_model(gpu_pinned=True), quantized=False)
    proto = saved_model_pb2.SavedModel()
    proto.meta_graphs.add().graph_def.CopyFrom(built.graph.as_graph_def())
    library = proto.meta_graphs[0].graph_def.library.function
    assert any(n.device for f in library for n in f.node_def), "the tf.function's pin"
    assert any(n.device for n in proto.meta_graphs[0].graph_def.node)
    pinned = sum(1 for n in graphs.iter_nodes(proto) if n.device)
    path = tmp_path / "saved_model.pb"
    path.write_bytes(proto.SerializeToString())
    assert graphs.strip_devices(path) == pinned
    stripped = saved_model_pb2.SavedModel()
    stripped.ParseFromString(path.read_bytes())
    assert [n.name for n in graphs.iter_nodes(stripped) if n.device] == []
    assert len(list(graphs.iter_nodes(stripped))) == len(list(graphs.iter_nodes(proto)))
    assert not list(tmp_path.glob("*.tmp"))
