"""What a model source hands the writer: :class:`SegmentationModel`.

Contract for sources:

* ``weights`` are float32 arrays by name; the writer turns each into ONE variable that
  both meta-graphs restore from the same checkpoint.
* ``forward(images, ctx)`` is called inside a TF1 graph that the writer owns, once per
  signature and meta-graph. ``images`` is float32 ``[N, h, w, 3]`` at ``input_size``,
  RGB 0..255, letterboxed by the writer. It must read weights only through
  ``ctx.weight(name)`` and pass each intermediate result worth quantizing through
  ``ctx.activation(name, tensor)``. It returns per-pixel scores ``[N, h', w', C]``
  (logits or probabilities; ``C == 1`` means one foreground probability/logit) or
  class ids ``[N, h', w']`` (integer); the writer resizes to ``input_size`` if needed.
* ``quantization`` says who writes the int8 graph: ``"kit"`` (the writer quantizes
  weights per output channel and activations per tensor from calibration) or
  ``"own"`` (the source applies its own quantization parameters when
  ``ctx.quantized`` is true, e.g. a TFLite flatbuffer's; ``tflite_source`` then names
  the flatbuffer, whose operators ``model.tflite`` reuses).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

OutputKind = Literal["logits", "probabilities", "class_ids"]  # what forward() returns


class GraphContext(Protocol):
    """What ``forward`` may use while the writer builds one meta-graph."""

    quantized: bool

    def weight(self, name: str, channel_axis: int | None = None) -> Any:
        """The variable ``name`` as a float tensor (per-channel quantized in the
        int8 graph when the kit quantizes; ``channel_axis`` is a filter's output-channel
        axis, None for weights that are not filters and are never per-channel quantized)."""

    def activation(self, name: str, tensor: Any) -> Any:
        """Mark an activation: recorded for calibration, fake-quantized in the int8 graph."""


@dataclass
class Preprocessing:
    """How raw RGB frames become the network's input (inside the graph)."""

    scale: float = 1.0          # x * scale + offset, applied after letterboxing
    offset: float = 0.0
    pad_value: float = 127.5    # letterbox fill, in raw 0..255 units
    resize: Literal["letterbox", "stretch"] = "letterbox"

    def describe(self) -> dict[str, Any]:
        return {"resize": self.resize, "pad_value": self.pad_value,
                "scale": self.scale, "offset": self.offset, "channels": "RGB"}


@dataclass
class SegmentationModel:
    name: str
    input_size: tuple[int, int]
    class_names: list[str]
    weights: dict[str, np.ndarray]
    forward: Callable[[Any, GraphContext], Any]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    output: OutputKind = "logits"
    quantization: Literal["kit", "own"] = "kit"
    source: dict[str, Any] = field(default_factory=dict)
    # A TFLite source's file: model.tflite reuses its int8 operators verbatim.
    tflite_source: Path | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def weight_bytes(self) -> int:
        return int(sum(w.nbytes for w in self.weights.values()))
