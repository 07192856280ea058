"""The built-in DeepLab-v3: MobileNetV2 backbone, ASPP with image pooling.

ONE architecture definition, :func:`deeplab_v3`, written against a small ``ops``
interface and interpreted twice:

* :class:`KerasOps` builds a trainable Keras model (convolutions + batch norm), the
  form users train and whose ``.weights.h5`` files ``--weights`` reads;
* :class:`exporters.tfops.GraphOps` builds the export graph from folded weights
  (batch norm merged into each convolution, as an int8 engine runs it).

Because both read the same definition, the exported graph computes what the Keras
model computes; tests check it pixel by pixel.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import InvalidArgument, NotFound
from edgeseg.labels import default_class_names
from edgeseg.model_contract import IMAGES
from exporters.model import Preprocessing, SegmentationModel

# MobileNetV2 inverted-residual stages: expansion t, channels c, repeats n, stride s.
MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
BN_EPSILON = 1e-3


@dataclass(frozen=True)
class DeepLabConfig:
    """Architecture options. ``atrous_rates`` are given for output stride 16 and
    doubled at output stride 8, as DeepLab does; empty means the 1x1 + image-pooling
    ASPP of DeepLab's released MobileNetV2 models (the Coral/TF Hub ones)."""

    num_classes: int = 21
    input_size: tuple[int, int] = (513, 513)
    depth_multiplier: float = 1.0
    output_stride: int = 16
    atrous_rates: tuple[int, ...] = ()
    aspp_channels: int = 256
    class_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.output_stride not in (8, 16):
            raise InvalidArgument(f"output stride must be 8 or 16, got {self.output_stride}")
        if self.num_classes < 1:
            raise InvalidArgument(f"number of classes must be >= 1, got {self.num_classes}")
        if not 0 < self.depth_multiplier <= 4:
            raise InvalidArgument(
                f"depth multiplier must be in (0, 4], got {self.depth_multiplier}")
        if min(self.input_size) < 2 * self.output_stride:
            raise InvalidArgument(f"input size {self.input_size} is too small; expected at "
                                  f"least {2 * self.output_stride} pixels a side")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise InvalidArgument(f"{len(self.class_names)} class names given for "
                                  f"{self.num_classes} classes")

    @property
    def names(self) -> list[str]:
        return list(self.class_names) or default_class_names(self.num_classes)

    def describe(self) -> dict[str, Any]:
        return {"architecture": "deeplabv3_mobilenetv2",
                "depth_multiplier": self.depth_multiplier,
                "output_stride": self.output_stride,
                "atrous_rates": list(self.atrous_rates),
                "aspp_channels": self.aspp_channels}


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding: nearest multiple of ``divisor``, never 10% below."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def deeplab_v3(x: Any, ops: Any, cfg: DeepLabConfig) -> Any:
    """RGB 0..255 images -> per-pixel class logits at the input size."""
    x = ops.rescale(x, 1 / 127.5, -1.0)
    x = ops.conv(x, "Conv", make_divisible(32 * cfg.depth_multiplier), 3, stride=2)
    in_channels = make_divisible(32 * cfg.depth_multiplier)
    current_stride, rate, block = 2, 1, 0
    for expansion, channels, repeats, first_stride in MOBILENET_V2_STAGES:
        out_channels = make_divisible(channels * cfg.depth_multiplier)
        for i in range(repeats):
            stride = first_stride if i == 0 else 1
            if stride > 1 and current_stride == cfg.output_stride:
                # Past the output stride: keep the resolution, dilate instead.
                layer_stride, layer_rate, rate = 1, rate, rate * stride
            else:
                layer_stride, layer_rate = stride, rate
                current_stride *= stride
            name = "expanded_conv" if block == 0 else f"expanded_conv_{block}"
            x = _inverted_residual(x, ops, name, in_channels, out_channels, expansion,
                                   layer_stride, layer_rate)
            in_channels, block = out_channels, block + 1
    return _aspp_head(x, ops, cfg)


def _inverted_residual(x: Any, ops: Any, name: str, in_channels: int, out_channels: int,
                       expansion: int, stride: int, rate: int) -> Any:
    y = x
    if expansion != 1:
        y = ops.conv(y, f"{name}_expand", in_channels * expansion, 1)
    y = ops.depthwise(y, f"{name}_depthwise", stride=stride, dilation=rate)
    y = ops.conv(y, f"{name}_project", out_channels, 1, activation=None)
    if stride == 1 and in_channels == out_channels:
        y = ops.add(x, y, f"{name}_add")
    return y


def _aspp_head(x: Any, ops: Any, cfg: DeepLabConfig) -> Any:
    scale = 2 if cfg.output_stride == 8 else 1
    branches = [ops.image_pool(x, "image_pooling", cfg.aspp_channels),
                ops.conv(x, "aspp0", cfg.aspp_channels, 1, activation="relu")]
    for i, rate in enumerate(cfg.atrous_rates, start=1):
        branches.append(ops.conv(x, f"aspp{i}", cfg.aspp_channels, 3,
                                 dilation=rate * scale, activation="relu"))
    y = ops.concat(branches, "aspp_concat")
    y = ops.conv(y, "concat_projection", cfg.aspp_channels, 1, activation="relu")
    y = ops.conv(y, "logits", cfg.num_classes, 1, activation=None, batch_norm=False)
    return ops.resize(y, cfg.input_size, "upsample_logits")


class KerasOps:
    """Interprets :func:`deeplab_v3` with Keras layers (trainable, batch norm kept)."""

    def __init__(self) -> None:
        from tensorflow import keras

        self.layers = keras.layers

    def rescale(self, x: Any, scale: float, offset: float) -> Any:
        return self.layers.Rescaling(scale, offset, name="rescale")(x)

    def conv(self, x: Any, name: str, filters: int, kernel: int, stride: int = 1,
             dilation: int = 1, activation: str | None = "relu6",
             batch_norm: bool = True) -> Any:
        x = self.layers.Conv2D(filters, kernel, strides=stride, dilation_rate=dilation,
                               padding="same", use_bias=not batch_norm, name=name,
                               kernel_initializer="he_normal")(x)
        return self._bn_act(x, name, activation, batch_norm)

    def depthwise(self, x: Any, name: str, stride: int = 1, dilation: int = 1) -> Any:
        x = self.layers.DepthwiseConv2D(3, strides=stride, dilation_rate=dilation,
                                        padding="same", use_bias=False, name=name,
                                        depthwise_initializer="he_normal")(x)
        return self._bn_act(x, name, "relu6", True)

    def _bn_act(self, x: Any, name: str, activation: str | None, batch_norm: bool) -> Any:
        if batch_norm:
            x = self.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.997,
                                               name=f"{name}_bn")(x)
        if activation:
            max_value = 6.0 if activation == "relu6" else None
            x = self.layers.ReLU(max_value=max_value, name=f"{name}_{activation}")(x)
        return x

    def add(self, a: Any, b: Any, name: str) -> Any:
        return self.layers.Add(name=name)([a, b])

    def concat(self, xs: list[Any], name: str) -> Any:
        return self.layers.Concatenate(name=name)(xs)

    def image_pool(self, x: Any, name: str, filters: int) -> Any:
        pooled = self.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_mean")(x)
        pooled = self.conv(pooled, name, filters, 1, activation="relu")
        return self.layers.UpSampling2D(size=tuple(x.shape[1:3]), name=f"{name}_broadcast")(pooled)

    def resize(self, x: Any, size: tuple[int, int], name: str) -> Any:
        return self.layers.Resizing(size[0], size[1], interpolation="bilinear", name=name)(x)


def build_keras_model(cfg: DeepLabConfig, seed: int = 0) -> Any:
    """The trainable Keras model, with random weights drawn from ``seed``.

    Batch-norm statistics are randomised too, so that folding them is exercised.
    """
    from tensorflow import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(*cfg.input_size, 3), name=IMAGES)
    model = keras.Model(inputs, deeplab_v3(inputs, KerasOps(), cfg), name="deeplabv3")
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.8, 1.2, n), rng.normal(0, 0.1, n),
                               rng.normal(0, 0.1, n), rng.uniform(0.5, 1.5, n)])
    _standardise_logits(model, cfg)
    return model


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A deterministic RGB uint8 picture with gradients and blobs (not noise), so that a
    network's output varies across it the way it does on a photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([255 * xx / max(width - 1, 1), 255 * yy / max(height - 1, 1),
                      127 + 60 * np.sin(xx / 9.0) * np.cos(yy / 13.0)], axis=-1)
    for _ in range(6):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        radius = rng.uniform(0.08, 0.25) * min(height, width)
        blob = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
        image[blob] = rng.uniform(0, 255, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


def _standardise_logits(model: Any, cfg: DeepLabConfig) -> None:
    """Data-dependent init of the random classifier (as LSUV does): rescale each class's
    logit to zero mean, unit variance over a synthetic picture. Untrained DeepLab logits
    are otherwise dominated by per-class constants, so every pixel gets the same class
    and tests comparing maps could not tell a right graph from a wrong one."""
    image = synthetic_image(*cfg.input_size)[None].astype(np.float32)
    logits = np.asarray(model(image, training=False))
    mean = logits.mean(axis=(0, 1, 2))
    std = logits.std(axis=(0, 1, 2)) + 1e-6
    layer = model.get_layer("logits")
    kernel, bias = layer.get_weights()
    layer.set_weights([kernel / std, (bias - mean) / std])


def load_weights(model: Any, path: str | Path) -> None:
    """Load a Keras ``.weights.h5`` file, checking every weight's shape first so that a
    mismatch names the layer and both shapes (and nothing is half-loaded)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise NotFound(f"weights file {path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            found = _h5_shapes(f)
    except OSError as exc:
        raise InvalidArgument(f"weights file {path} is not a Keras HDF5 weights file "
                              f"(.weights.h5): {exc}") from None
    for layer, file_name in zip(model.layers, _keras_file_names(model), strict=True):
        for i, variable in enumerate(layer.weights):
            key = f"layers/{file_name}/vars/{i}"
            expected = tuple(variable.shape)
            if key not in found:
                raise InvalidArgument(
                    f"weights file {path} does not fit the architecture: it has no weight "
                    f"{i} for layer '{layer.name}' (expected shape {expected})")
            if found[key] != expected:
                raise InvalidArgument(
                    f"weights file {path} does not fit the architecture: layer "
                    f"'{layer.name}' weight {i} has shape {found[key]} in the file, the "
                    f"model expects {expected}")
    model.load_weights(str(path))


def _keras_file_names(model: Any) -> list[str]:
    """The names Keras 3 gives layers inside a weights file: not ``layer.name`` but the
    snake-cased class name, numbered in ``model.layers`` order (keras saving_lib)."""
    used: dict[str, int] = {}
    names = []
    for layer in model.layers:
        base = re.sub(r"\W+", "", type(layer).__name__)
        base = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", base)
        base = re.sub("([a-z])([A-Z])", r"\1_\2", base).lower()
        used[base] = used.get(base, -1) + 1
        names.append(base if used[base] == 0 else f"{base}_{used[base]}")
    return names


def _h5_shapes(f: Any) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}

    def visit(name: str, obj: Any) -> None:
        if hasattr(obj, "shape") and hasattr(obj, "dtype"):
            shapes[name] = tuple(obj.shape)

    f.visititems(visit)
    return shapes


def folded_weights(model: Any) -> dict[str, np.ndarray]:
    """Every convolution's kernel and bias with its batch norm merged in."""
    from tensorflow import keras

    weights: dict[str, np.ndarray] = {}
    conv_types = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    for layer in model.layers:
        if not isinstance(layer, conv_types):
            continue
        kernel = np.asarray(layer.kernel.numpy(), np.float64)
        depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
        out_channels = kernel.shape[2] * kernel.shape[3] if depthwise else kernel.shape[3]
        bias = (np.asarray(layer.bias.numpy(), np.float64) if layer.use_bias
                else np.zeros(out_channels))
        try:
            bn = model.get_layer(f"{layer.name}_bn")
        except ValueError:
            bn = None
        if bn is not None:
            gamma, beta, mean, var = (np.asarray(w, np.float64) for w in bn.get_weights())
            scale = gamma / np.sqrt(var + bn.epsilon)
            if depthwise:
                kernel = kernel * scale.reshape(1, 1, kernel.shape[2], kernel.shape[3])
            else:
                kernel = kernel * scale
            bias = beta + (bias - mean) * scale
        weights[f"{layer.name}/kernel"] = kernel.astype(np.float32)
        weights[f"{layer.name}/bias"] = bias.astype(np.float32)
    return weights


def weights_from_tflite(path: str | Path, weights: dict[str, np.ndarray]
                        ) -> dict[str, np.ndarray]:
    """DeepLab's released MobileNetV2 model (e.g. the Coral VOC flatbuffer) has this
    architecture: its trained, batch-norm-folded weights (dequantized) under the names
    of ``weights`` (:func:`folded_weights` of a model of the same configuration), so
    that tests and benchmarks export the built-in DeepLab with weights that mean
    something. Every name and shape must match."""
    from exporters import tflite
    from exporters.tflite_weights import plan_weights

    fb = tflite.read(path)
    values, specs = plan_weights(fb)
    out: dict[str, np.ndarray] = {}
    for op in fb.operators:
        if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        label = fb.tensors[op.inputs[1]].name.split(";")[0]
        block = re.search(r"(expanded_conv(?:_\d+)?)/(expand|depthwise|project)", label)
        known = re.match(r"(?:MobilenetV2/)?(Conv|aspp0|image_pooling|concat_projection|"
                         r"logits)/", label)
        if block is None and known is None:
            raise InvalidArgument(f"{path}: convolution {label!r} has no counterpart in the "
                                  "built-in DeepLab")
        name = f"{block[1]}_{block[2]}" if block else known[1]  # type: ignore[index]
        for suffix, index in (("kernel", op.inputs[1]), ("bias", op.inputs[2])):
            value = values[specs[index].name]
            target = weights.get(f"{name}/{suffix}")
            if target is None or target.shape != value.shape:
                raise InvalidArgument(f"{path}: {name}/{suffix} has shape {value.shape}, the "
                                      f"built-in DeepLab expects "
                                      f"{None if target is None else target.shape}")
            out[f"{name}/{suffix}"] = value
    missing = sorted(set(weights) - set(out))
    if missing:
        raise InvalidArgument(f"{path} lacks weights for {', '.join(missing[:5])}")
    return out


def segmentation_model(model: Any, cfg: DeepLabConfig,
                       source: dict[str, Any] | None = None) -> SegmentationModel:
    """Describe a built-in DeepLab Keras model to the writer."""
    from exporters.tfops import GraphOps

    def forward(images: Any, ctx: Any) -> Any:
        return deeplab_v3(images, GraphOps(ctx), cfg)

    return SegmentationModel(
        name="deeplabv3_mobilenetv2",
        input_size=tuple(cfg.input_size),  # type: ignore[arg-type]
        class_names=cfg.names,
        weights=folded_weights(model),
        forward=forward,
        preprocessing=Preprocessing(scale=1.0, offset=0.0, pad_value=127.5),
        output="logits",
        quantization="kit",
        source={"kind": "builtin-deeplabv3", **cfg.describe(), **(source or {})},
    )


def feature_size(cfg: DeepLabConfig) -> tuple[int, int]:
    """Spatial size of the backbone's output (SAME padding, ceil at each stride)."""
    h, w = cfg.input_size
    steps = int(math.log2(cfg.output_stride))
    for _ in range(steps):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return h, w
