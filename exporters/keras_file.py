"""``edgeseg export MODEL.keras|MODEL.h5``: a saved Keras model as a
:class:`SegmentationModel`.

Accepted: one image input [N, H, W, 3] and one per-pixel output [N, h, w, C] of class
logits or probabilities (the built-in DeepLab, or a user's own architecture made of
standard layers). Anything else — a classifier's [N, C], several outputs — is refused
naming the shape found and the shape expected. Pre-processing is declared by options
(``--scale/--offset`` or ``--mean/--std``; default: raw RGB 0..255, as the built-in
DeepLab takes it); ``--input-size`` gives a size the model leaves open.

The model is frozen into a GraphDef (variables inlined, inference mode) and handed to
:func:`exporters.frozen_graph.graphdef_model`, so its weights become the writer's
variables exactly as a frozen graph's do.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from edgeseg.errors import InvalidArgument, NotFound
from edgeseg.model_contract import IMAGES
from edgeseg.progress import Progress
from exporters.model import Preprocessing, SegmentationModel


def load(path: str | Path, args: Any = None, progress: Progress | None = None
         ) -> SegmentationModel:
    from exporters import frozen_graph
    from exporters.tflite import _preprocessing_option

    progress = progress or Progress(enabled=False)
    path = Path(path)
    with progress.step(f"loading the Keras model {path.name}"):
        model = read_model(path)
    size = _input_size(model, getattr(args, "input_size", None), path)
    channels = _check_per_pixel(model, path)
    with progress.step("freezing the Keras model into a graph"):
        graph_def, input_name, output_name = freeze(model, size)
    option = _preprocessing_option(args)
    scale, offset = option if option is not None else (1.0, 0.0)
    return frozen_graph.graphdef_model(
        graph_def, input_name, output_name, name=_name(model.name or path.stem),
        input_size=size, preprocessing=Preprocessing(scale=scale, offset=offset),
        labels=getattr(args, "labels", None), num_classes=channels,
        output_kind=_scores_kind(model),
        source={"kind": "keras", "file": path.name, "model": model.name})


def read_model(path: Path) -> Any:
    from tensorflow import keras

    if not path.is_file():
        raise NotFound(f"Keras model {path} does not exist")
    try:
        return keras.models.load_model(str(path), compile=False)
    except (ValueError, OSError, TypeError, KeyError) as exc:
        raise InvalidArgument(f"{path} is not a Keras model file this Keras can load "
                              f"(.keras or full-model .h5; a .weights.h5 holds weights "
                              f"only): {exc}") from None


def _input_size(model: Any, given: tuple[int, int] | None, path: Path) -> tuple[int, int]:
    if len(model.inputs) != 1:
        raise InvalidArgument(f"{path.name} has {len(model.inputs)} inputs; expected one "
                              "image input [N, H, W, 3]")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise InvalidArgument(f"{path.name}: input shape {shape} is not an RGB image batch; "
                              "expected [N, H, W, 3]")
    if shape[1] is not None and shape[2] is not None:
        return int(shape[1]), int(shape[2])
    if given is None:
        raise InvalidArgument(f"{path.name}: input {shape} has no fixed size; pass "
                              "--input-size")
    return int(given[0]), int(given[1])


def _check_per_pixel(model: Any, path: Path) -> int:
    if len(model.outputs) != 1:
        raise InvalidArgument(f"{path.name} has {len(model.outputs)} outputs; expected one "
                              "per-pixel output [N, H, W, C]")
    shape = tuple(model.outputs[0].shape)
    if len(shape) != 4 or shape[-1] is None:
        raise InvalidArgument(
            f"{path.name}: output shape {shape} is not per-pixel; expected class logits or "
            "probabilities for every pixel, [N, H, W, C] (a classifier's [N, C] cannot "
            "segment)")
    return int(shape[-1])


def _scores_kind(model: Any) -> str:
    activation = getattr(model.layers[-1], "activation", None)
    name = getattr(activation, "__name__", str(activation))
    return "probabilities" if name in ("softmax", "sigmoid") else "logits"


def freeze(model: Any, size: tuple[int, int]) -> tuple[Any, str, str]:
    """The model in inference mode as a GraphDef with its variables inlined."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec([None, size[0], size[1], 3], tf.float32, name=IMAGES)
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(function)
    return (frozen.graph.as_graph_def(), frozen.inputs[0].name, frozen.outputs[0].name)


def _name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text) or "keras_model"
