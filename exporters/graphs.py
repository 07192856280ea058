"""TF1 graphs for the writer: one per meta-graph, variables named as the weights.

Both graphs create the same variables (same names, shapes, dtypes), so the saver of
the int8 graph restores from the checkpoint the float graph wrote. Values are fed
into the variables' initializers instead of being baked into the graph as constants,
so ``saved_model.pb`` stays small and each weight is stored once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from edgeseg.errors import Internal
from edgeseg.model_contract import (
    HEIGHT,
    IMAGES,
    PREDICT_ENCODED,
    PREDICT_IMAGES,
    SEGMENTATION_MAP,
    SERVING_DEFAULT,
    WIDTH,
)
from edgeseg.progress import Progress
from exporters.model import SegmentationModel
from exporters.quantize import ActivationRanges, fake_quant_activation, fake_quant_per_channel
from exporters.signatures import build_signatures


class _Context:
    """The :class:`exporters.model.GraphContext` for one signature's forward pass."""

    def __init__(self, owner: BuiltGraph, quantized: bool, kit_quantizes: bool,
                 ranges: ActivationRanges | None, record: dict[str, tf.Tensor] | None) -> None:
        self.owner = owner
        self.quantized = quantized
        self._kit = kit_quantizes
        self._ranges = ranges
        self._record = record

    def weight(self, name: str, channel_axis: int | None = None) -> tf.Tensor:
        axis = channel_axis if self.quantized and self._kit else None
        key = (name, axis)
        cached = self.owner.weight_cache.get(key)
        if cached is not None:
            return cached
        try:
            variable = self.owner.variables[name]
        except KeyError:
            raise Internal(f"the model's graph reads weight {name!r}, which the model "
                           "source did not declare") from None
        with self.owner.graph.name_scope("weights/"):
            tensor = variable.read_value()
            if axis is not None:
                tensor = fake_quant_per_channel(tensor, axis)
        self.owner.weight_cache[key] = tensor
        return tensor

    def activation(self, name: str, tensor: tf.Tensor) -> tf.Tensor:
        if self._record is not None:
            self._record.setdefault(name, tensor)
        if self.quantized and self._kit and self._ranges:
            if name not in self._ranges.ranges:
                raise Internal(f"activation {name!r} has no calibrated range")
            low, high = self._ranges.ranges[name]
            return fake_quant_activation(tensor, low, high)
        return tensor


@dataclass
class BuiltGraph:
    graph: tf.Graph
    variables: dict[str, Any] = field(default_factory=dict)
    signatures: dict[str, Any] = field(default_factory=dict)
    activations: dict[str, tf.Tensor] = field(default_factory=dict)
    inputs: dict[str, tf.Tensor] = field(default_factory=dict)
    weight_cache: dict[tuple[str, int | None], tf.Tensor] = field(default_factory=dict)


def build_graph(model: SegmentationModel, quantized: bool,
                ranges: ActivationRanges | None = None) -> BuiltGraph:
    built = BuiltGraph(graph=tf.Graph())
    with built.graph.as_default():
        for name, value in sorted(model.weights.items()):
            built.variables[name] = tf.compat.v1.get_variable(
                name, shape=value.shape, dtype=tf.float32,
                initializer=tf.compat.v1.zeros_initializer(), use_resource=True)

        def context_for(signature: str) -> _Context:
            record = built.activations if signature == SERVING_DEFAULT else None
            return _Context(built, quantized, model.quantization == "kit", ranges, record)

        built.signatures = build_signatures(model, context_for)
        built.inputs = {IMAGES: built.graph.get_tensor_by_name(f"{SERVING_DEFAULT}/{IMAGES}:0")}
    return built


@contextmanager
def session(graph: tf.Graph) -> Iterator[tf.compat.v1.Session]:
    # Soft placement: a model whose code pins ops to a GPU still builds on a CPU box.
    config = tf.compat.v1.ConfigProto(allow_soft_placement=True)
    with tf.compat.v1.Session(graph=graph, config=config) as sess:
        yield sess


def assign_weights(sess: tf.compat.v1.Session, built: BuiltGraph,
                   weights: dict[str, np.ndarray]) -> None:
    """Initialise every variable by feeding its value into its initializer."""
    ops, feeds = [], {}
    for name, variable in built.variables.items():
        ops.append(variable.initializer)
        feeds[variable.initializer.inputs[1]] = weights[name]
    sess.run(ops, feed_dict=feeds)


def calibrate(sess: tf.compat.v1.Session, built: BuiltGraph, images: list[np.ndarray],
              progress: Progress) -> ActivationRanges:
    ranges = ActivationRanges()
    for i, image in enumerate(images, start=1):
        values = sess.run(built.activations, feed_dict={built.inputs[IMAGES]: image[None]})
        ranges.update(values)
        progress.count("calibrating activation ranges", i, len(images))
    return ranges


def strip_devices(saved_model_pb: Path) -> int:
    """Clear every ``NodeDef.device`` of every meta-graph, function libraries included
    (``clear_devices=True`` leaves the libraries alone). Returns how many were set."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(saved_model_pb.read_bytes())
    cleared = 0
    for node in iter_nodes(proto):
        if node.device:
            node.device = ""
            cleared += 1
    tmp = saved_model_pb.with_suffix(".tmp")
    tmp.write_bytes(proto.SerializeToString())
    tmp.replace(saved_model_pb)
    return cleared


def iter_nodes(proto: Any) -> Iterator[Any]:
    """Every NodeDef in a SavedModel proto: graphs and function libraries."""
    for meta_graph in proto.meta_graphs:
        yield from meta_graph.graph_def.node
        for function in meta_graph.graph_def.library.function:
            yield from function.node_def


def probe_inputs(model: SegmentationModel) -> dict[str, dict[str, np.ndarray]]:
    """Small inputs for each signature, of a size unlike the network's own, so that the
    check also exercises letterboxing and the resize back."""
    from exporters.deeplab import synthetic_image

    h, w = model.input_size
    frame = synthetic_image(max(h // 2, 8) + 3, w + 5)
    encoded = tf.io.encode_png(frame).numpy()
    return {
        SERVING_DEFAULT: {IMAGES: frame[None]},
        PREDICT_IMAGES: {IMAGES: frame[None].astype(np.float32),
                         HEIGHT: np.array([frame.shape[0]], np.int32),
                         WIDTH: np.array([frame.shape[1]], np.int32)},
        PREDICT_ENCODED: {IMAGES: np.array([encoded], dtype=object)},
    }


@contextmanager
def loaded(export_dir: Path, tag: str) -> Iterator[Any]:
    """Load one tag-set with the TF1 loader; yields ``run(signature, feeds) -> map``."""
    graph = tf.Graph()
    with session(graph) as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, [tag], str(export_dir))

        def run(signature: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
            sig = meta.signature_def[signature]
            feed = {sig.inputs[k].name: v for k, v in feeds.items()}
            return sess.run(sig.outputs[SEGMENTATION_MAP].name, feed_dict=feed)

        yield run
