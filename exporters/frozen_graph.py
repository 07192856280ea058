"""``edgeseg export MODEL.pb --input-tensor ImageTensor:0 --output-tensor
SemanticPredictions:0``: a TF1 frozen GraphDef as a :class:`SegmentationModel`.

The model zoo's DeepLab graphs take ``ImageTensor:0`` (uint8 [1, H, W, 3]) and give
``SemanticPredictions:0`` (class ids); a graph may also end in per-pixel scores.

Weights: every float constant of at least :data:`MIN_VARIABLE_ELEMENTS` values — the
kernels of Conv2D, DepthwiseConv2dNative and MatMul, batch-norm parameters — is taken
out of the GraphDef and becomes ONE variable, so both meta-graphs (and all three
signatures in each) read the same checkpoint instead of carrying copies of the
weights. Filters are handed to the writer with their output-channel axis, so the kit
quantizes them per channel in ``serve_quantized``; activations stay float there (the
graph is imported whole, so the kit has no activation to calibrate).

:func:`graphdef_model` is also the back end of :mod:`exporters.keras_file`, which
freezes a Keras model into a GraphDef first.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import DataLoss, InvalidArgument, NotFound
from edgeseg.progress import Progress
from exporters.model import Preprocessing, SegmentationModel

MIN_VARIABLE_ELEMENTS = 64
# Consumer op -> (input position of the filter, its output-channel axis).
FILTER_INPUTS = {"Conv2D": (1, 3), "DepthwiseConv2dNative": (1, 2), "MatMul": (1, 1)}
_PASS_THROUGH = {"Identity", "Snapshot"}


def load(path: str | Path, args: Any = None, progress: Progress | None = None
         ) -> SegmentationModel:
    from exporters.tflite import _preprocessing_option

    progress = progress or Progress(enabled=False)
    path = Path(path)
    input_name = getattr(args, "input_tensor", None)
    output_name = getattr(args, "output_tensor", None)
    if not input_name or not output_name:
        raise InvalidArgument(f"a frozen graph needs --input-tensor and --output-tensor "
                              f"(for DeepLab's: ImageTensor:0 and SemanticPredictions:0); "
                              f"{path.name} has these placeholders: "
                              f"{', '.join(_placeholders(read_graph_def(path))) or 'none'}")
    with progress.step(f"reading the frozen graph {path.name}"):
        graph_def = read_graph_def(path)
    option = _preprocessing_option(args)
    scale, offset = option if option is not None else (1.0, 0.0)
    return graphdef_model(
        graph_def, input_name, output_name, name=_name(path.stem),
        input_size=getattr(args, "input_size", None),
        preprocessing=Preprocessing(scale=scale, offset=offset),
        labels=getattr(args, "labels", None), num_classes=getattr(args, "num_classes", None),
        source={"kind": "frozen-graph", "file": path.name, "input": input_name,
                "output": output_name})


def read_graph_def(path: Path) -> Any:
    from google.protobuf.message import DecodeError
    from tensorflow.core.framework import graph_pb2

    if not path.is_file():
        raise NotFound(f"frozen graph {path} does not exist")
    graph_def = graph_pb2.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except DecodeError as exc:
        raise DataLoss(f"{path} is not a readable GraphDef (truncated or not a frozen "
                       f"graph .pb): {exc}") from None
    if not graph_def.node:
        raise InvalidArgument(f"{path} holds no nodes; expected a frozen TF1 GraphDef")
    return graph_def


def graphdef_model(graph_def: Any, input_name: str, output_name: str, *, name: str,
                   input_size: tuple[int, int] | None, preprocessing: Preprocessing,
                   labels: str | Path | None, num_classes: int | None,
                   source: dict[str, Any], output_kind: str | None = None
                   ) -> SegmentationModel:
    """Describe ``graph_def`` (image ``input_name`` -> ``output_name``) to the writer."""
    from edgeseg.labels import default_class_names, read_labels

    input_name, output_name = _tensor_name(input_name), _tensor_name(output_name)
    image, output = _probe(graph_def, input_name, output_name)
    size = _input_size(image, input_size, input_name)
    kind, classes = _output_kind(output, output_name, num_classes, output_kind)
    names = read_labels(labels, classes) if labels else default_class_names(classes)
    if classes == 1:
        names = ["background", "foreground"]
    stripped, weights, axes = extract_weights(graph_def)
    input_dtype = image.dtype
    batch_of_one = image.shape.rank == 4 and image.shape[0] == 1

    def forward(images: Any, ctx: Any) -> Any:
        import tensorflow as tf

        x = images
        if input_dtype.is_integer:
            x = tf.cast(tf.clip_by_value(tf.round(x), input_dtype.min, input_dtype.max),
                        input_dtype)
        elif input_dtype != tf.float32:
            x = tf.cast(x, input_dtype)
        weight_map = {f"{node_name}:0": ctx.weight(var_name, axes.get(var_name))
                      for node_name, var_name in weights_by_node.items()}

        def run(batch: Any, capture: bool = False) -> Any:
            # Inside map_fn's function an identity captures each outer weight, which
            # import_graph_def's input_map will not do by itself.
            weights_in = ({k: tf.identity(v) for k, v in weight_map.items()} if capture
                          else weight_map)
            (out,) = tf.graph_util.import_graph_def(
                stripped, input_map={input_name: batch, **weights_in},
                return_elements=[output_name], name="imported")
            return out

        if batch_of_one:
            # The graph was frozen for one image (the model zoo's are): one at a time.
            spec = tf.TensorSpec(output.shape[1:], output.dtype)
            return tf.map_fn(lambda one: run(one[tf.newaxis], capture=True)[0], x,
                             fn_output_signature=spec)
        return run(x)

    weights_by_node = {node: _variable_name(node) for node in weights}
    return SegmentationModel(
        name=name, input_size=size, class_names=names,
        weights={_variable_name(node): value for node, value in weights.items()},
        forward=forward, preprocessing=preprocessing, output=kind,  # type: ignore[arg-type]
        quantization="kit",
        source={**source, "variables": len(weights)})


def extract_weights(graph_def: Any) -> tuple[Any, dict[str, np.ndarray], dict[str, int]]:
    """Large float constants -> (GraphDef with placeholders in their place, values by
    node name, output-channel axis by variable name for filters)."""
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2

    consumers: dict[str, list[tuple[Any, int]]] = {}
    for node in graph_def.node:
        for position, inp in enumerate(node.input):
            consumers.setdefault(inp.split(":")[0].lstrip("^"), []).append((node, position))
    stripped = graph_pb2.GraphDef()
    stripped.CopyFrom(graph_def)
    weights: dict[str, np.ndarray] = {}
    axes: dict[str, int] = {}
    for node in stripped.node:
        if node.op != "Const" or node.attr["dtype"].type not in (tf.float32.as_datatype_enum,
                                                                  tf.float16.as_datatype_enum):
            continue
        value = tf.make_ndarray(node.attr["value"].tensor)
        if value.size < MIN_VARIABLE_ELEMENTS:
            continue
        axis = _filter_axis(node.name, consumers)
        if axis is not None:
            axes[_variable_name(node.name)] = axis
        weights[node.name] = value.astype(np.float32)
        dtype = node.attr["dtype"].type
        node.op = "Placeholder"
        node.ClearField("attr")
        node.attr["dtype"].type = dtype
        node.attr["shape"].shape.CopyFrom(tf.TensorShape(value.shape).as_proto())
    return stripped, weights, axes


def _filter_axis(name: str, consumers: dict[str, list[tuple[Any, int]]]) -> int | None:
    """The output-channel axis if ``name`` is (through Identity) a filter input."""
    pending, seen = [name], set()
    while pending:
        current = pending.pop()
        seen.add(current)
        for node, position in consumers.get(current, []):
            if node.op in _PASS_THROUGH and node.name not in seen:
                pending.append(node.name)
            elif node.op in FILTER_INPUTS and FILTER_INPUTS[node.op][0] == position:
                axis = FILTER_INPUTS[node.op][1]
                if node.op == "MatMul" and node.attr["transpose_b"].b:
                    axis = 0
                return axis
    return None


def _probe(graph_def: Any, input_name: str, output_name: str) -> tuple[Any, Any]:
    """Import once into a scratch graph: the named tensors must exist."""
    import tensorflow as tf

    names = {node.name for node in graph_def.node}
    for flag, tensor in (("--input-tensor", input_name), ("--output-tensor", output_name)):
        if tensor.split(":")[0] not in names:
            raise NotFound(f"{flag} {tensor}: the graph has no node "
                           f"'{tensor.split(':')[0]}'; placeholders in it: "
                           f"{', '.join(_placeholders(graph_def)) or 'none'}")
    with tf.Graph().as_default():
        try:
            image, output = tf.graph_util.import_graph_def(
                graph_def, return_elements=[input_name, output_name], name="")
        except (ValueError, KeyError, tf.errors.InvalidArgumentError) as exc:
            raise InvalidArgument(f"cannot import the graph with input {input_name} and "
                                  f"output {output_name}: {exc}") from None
    return image, output


def _input_size(image: Any, given: tuple[int, int] | None, name: str) -> tuple[int, int]:
    shape = image.shape
    if shape.rank is not None and (shape.rank != 4 or shape[-1] not in (None, 3)):
        raise InvalidArgument(f"input {name} has shape {shape}; expected an RGB image batch "
                              "[N, H, W, 3]")
    static = shape.as_list()[1:3] if shape.rank == 4 else [None, None]
    height, width = static
    if height is not None and width is not None:
        return int(height), int(width)
    if given is None:
        raise InvalidArgument(f"input {name} has no fixed size ({shape}); pass --input-size")
    return int(given[0]), int(given[1])


def _output_kind(output: Any, name: str, num_classes: int | None, kind: str | None
                 ) -> tuple[str, int]:
    shape = output.shape
    if output.dtype.is_integer and shape.rank == 3:
        return "class_ids", int(num_classes or 21)
    if shape.rank != 4 or not output.dtype.is_floating:
        raise InvalidArgument(f"output {name} is {output.dtype.name} of shape {shape}; "
                              "expected per-pixel class ids [N, H, W] or per-pixel scores "
                              "[N, H, W, C]")
    channels = shape[-1] if shape[-1] is not None else num_classes
    if channels is None:
        raise InvalidArgument(f"output {name} has no fixed class count; pass --num-classes")
    return kind or "logits", int(channels)


def _placeholders(graph_def: Any) -> list[str]:
    return [f"{n.name}:0" for n in graph_def.node if n.op == "Placeholder"][:10]


def _tensor_name(name: str) -> str:
    return name if ":" in name else f"{name}:0"


def _variable_name(node_name: str) -> str:
    return "graph/" + re.sub(r"[^A-Za-z0-9_./-]", "_", node_name)


def _name(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem) or "frozen_graph"
