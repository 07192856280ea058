"""``edgeseg export MODEL.tflite``: a TFLite flatbuffer as a :class:`SegmentationModel`.

:func:`load` reads the flatbuffer (:func:`read`), refuses any operator it cannot
rebuild by name and index (:func:`exporters.tflite_ops.check_supported`; each operator's
options, builder and filter layout are its one entry in ``tflite_ops.OPS``), turns every
float or quantized constant into a float32 variable (:mod:`exporters.tflite_weights`)
and describes the rest to the one writer: input size and class count from the
flatbuffer, pre-processing from the input tensor's own quantization (a uint8 input
with scale 1/128 and zero point 128 takes raw RGB 0..255), ``quantization="own"`` so
that ``serve_quantized`` applies the flatbuffer's own int8 parameters
(:mod:`exporters.tflite_graph`, :mod:`exporters.tflite_quant`).

Reading contract: :func:`read` either returns a :class:`Flatbuffer` whose every constant
tensor's data is present and of the size its shape needs, or raises — a truncated
file or one that is not a TFLite model is :class:`~edgeseg.errors.DataLoss` /
:class:`~edgeseg.errors.InvalidArgument` naming the file and what was expected.
Nothing here imports TensorFlow's runtime; the schema module that ships with it is
only the flatbuffer accessor code.

Constant DEQUANTIZE operators (float16 or int8 weights stored compressed, as in
MediaPipe's models) are folded here: their output tensor gets the float32 data and the
operator is dropped, so the graph builder sees one constant either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import DataLoss, InvalidArgument, NotFound
from edgeseg.progress import Progress
from exporters.model import OutputKind, Preprocessing, SegmentationModel
from exporters.tflite_ops import check_supported, read_options

FILE_IDENTIFIER = b"TFL3"

_DTYPES = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32,
           "UINT8": np.uint8, "INT64": np.int64, "INT8": np.int8, "INT16": np.int16,
           "BOOL": np.bool_, "FLOAT64": np.float64, "UINT32": np.uint32}

@dataclass(frozen=True)
class Quantization:
    """Affine quantization: real = (q - zero_point) * scale, per tensor or along ``axis``."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int

    @property
    def per_tensor(self) -> bool:
        return self.scale.size == 1


@dataclass
class Tensor:
    index: int
    name: str
    dtype: str                    # schema name: UINT8, FLOAT32, …
    shape: tuple[int, ...]
    data: np.ndarray | None = None          # constants only, already reshaped
    quantization: Quantization | None = None

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def quantized(self) -> bool:
        return self.quantization is not None and self.dtype in ("UINT8", "INT8", "INT16")

    def quant_range(self) -> tuple[int, int]:
        info = np.iinfo(_DTYPES[self.dtype])
        return int(info.min), int(info.max)

    def real_value(self) -> np.ndarray:
        """The constant as float32 (dequantized when it carries quantization)."""
        assert self.data is not None
        if self.quantization is None:
            return self.data.astype(np.float32)
        return dequantize(self.data, self.quantization).astype(np.float32)


@dataclass
class Operator:
    index: int
    name: str                     # BuiltinOperator name, or CUSTOM:<code>
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Flatbuffer:
    path: Path
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    description: str = ""

    def producer(self, tensor: int) -> Operator | None:
        for op in self.operators:
            if tensor in op.outputs:
                return op
        return None


def dequantize(q: np.ndarray, quant: Quantization) -> np.ndarray:
    shape = [1] * q.ndim
    if not quant.per_tensor:
        shape[quant.axis] = quant.scale.size
    scale = quant.scale.astype(np.float64).reshape(shape)
    zero = quant.zero_point.astype(np.float64).reshape(shape)
    return (q.astype(np.float64) - zero) * scale


def read(path: str | Path, raw: bytes | None = None) -> Flatbuffer:
    """The flatbuffer at ``path`` (or ``raw``, named ``path``: one made in memory)."""
    path = Path(path)
    if raw is None:
        if not path.is_file():
            raise NotFound(f"TFLite model {path} does not exist")
        raw = path.read_bytes()
    if len(raw) < 8 or raw[4:8] != FILE_IDENTIFIER:
        raise InvalidArgument(f"{path} is not a TFLite flatbuffer: expected the file "
                              f"identifier {FILE_IDENTIFIER.decode()} at byte 4")
    try:
        fb = _parse(path, raw)
    except (IndexError, ValueError, TypeError, OverflowError, AttributeError) as exc:
        raise DataLoss(f"{path} is a damaged or truncated TFLite flatbuffer "
                       f"({len(raw)} bytes): {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # struct.error and other flatbuffer decoding failures
        if type(exc).__module__ == "struct" or "unpack" in str(exc):
            raise DataLoss(f"{path} is a damaged or truncated TFLite flatbuffer "
                           f"({len(raw)} bytes): {exc}") from None
        raise
    _fold_constant_dequantize(fb)
    return fb


def _parse(path: Path, raw: bytes) -> Flatbuffer:
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(raw, 0)
    if model.SubgraphsLength() < 1:
        raise InvalidArgument(f"{path} holds no subgraph; expected one")
    graph = model.Subgraphs(0)
    type_names = _enum_names(schema.TensorType)
    op_names = _enum_names(schema.BuiltinOperator)
    tensors = [_tensor(model, graph.Tensors(i), i, type_names, raw, path)
               for i in range(graph.TensorsLength())]
    operators = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = op_names.get(number, f"BUILTIN_{number}")
        if name == "CUSTOM":
            name = f"CUSTOM:{(code.CustomCode() or b'?').decode(errors='replace')}"
        operators.append(Operator(
            index=i, name=name,
            inputs=tuple(int(t) for t in _ints(op.InputsAsNumpy())),
            outputs=tuple(int(t) for t in _ints(op.OutputsAsNumpy())),
            options=read_options(schema, name, op)))
    description = (model.Description() or b"").decode(errors="replace")
    return Flatbuffer(path=path, tensors=tensors, operators=operators,
                      inputs=tuple(int(t) for t in _ints(graph.InputsAsNumpy())),
                      outputs=tuple(int(t) for t in _ints(graph.OutputsAsNumpy())),
                      description=description)


def _tensor(model: Any, t: Any, index: int, type_names: dict[int, str], raw: bytes,
            path: Path) -> Tensor:
    name = (t.Name() or b"").decode(errors="replace")
    dtype = type_names.get(t.Type(), f"TYPE_{t.Type()}")
    shape = tuple(int(d) for d in _ints(t.ShapeAsNumpy()))
    tensor = Tensor(index=index, name=name, dtype=dtype, shape=shape,
                    quantization=_quantization(t.Quantization()))
    buffer = model.Buffers(t.Buffer())
    data = _buffer_bytes(buffer, raw)
    if data is not None and len(data):
        if dtype not in _DTYPES:
            raise InvalidArgument(f"{path}: constant tensor {index} '{name}' has type "
                                  f"{dtype}, which the importer does not read")
        np_type = np.dtype(_DTYPES[dtype])
        expected = int(np.prod(shape, dtype=np.int64)) * np_type.itemsize
        if len(data) != expected:
            raise DataLoss(f"{path}: tensor {index} '{name}' holds {len(data)} bytes; its "
                           f"shape {list(shape)} of {dtype} needs {expected} (truncated?)")
        tensor.data = np.frombuffer(bytes(data), dtype=np_type).reshape(shape)
    return tensor


def _buffer_bytes(buffer: Any, raw: bytes) -> bytes | None:
    offset = buffer.Offset() if hasattr(buffer, "Offset") else 0
    if offset > 1:  # models over 2 GB keep buffers after the flatbuffer
        size = buffer.Size()
        if offset + size > len(raw):
            raise DataLoss(f"buffer at byte {offset} (+{size}) lies past the end of the file")
        return raw[offset:offset + size]
    data = buffer.DataAsNumpy()
    return None if isinstance(data, int) else data.tobytes()


def _quantization(q: Any) -> Quantization | None:
    if q is None or q.ScaleLength() == 0:
        return None
    scale = np.asarray(q.ScaleAsNumpy(), np.float32).reshape(-1)
    zero = (np.asarray(q.ZeroPointAsNumpy(), np.int64).reshape(-1)
            if q.ZeroPointLength() else np.zeros_like(scale, np.int64))
    if zero.size == 1 and scale.size > 1:
        zero = np.repeat(zero, scale.size)
    return Quantization(scale=scale, zero_point=zero, axis=int(q.QuantizedDimension()))


def _ints(value: Any) -> list[int]:
    return [] if isinstance(value, int) else [int(v) for v in value]


def _enum_names(enum_class: Any) -> dict[int, str]:
    return {v: k for k, v in vars(enum_class).items()
            if not k.startswith("_") and isinstance(v, int)}


def _fold_constant_dequantize(fb: Flatbuffer) -> None:
    kept = []
    for op in fb.operators:
        if op.name == "DEQUANTIZE" and fb.tensors[op.inputs[0]].is_constant:
            source, target = fb.tensors[op.inputs[0]], fb.tensors[op.outputs[0]]
            target.data = source.real_value()
            target.quantization = None
            continue
        kept.append(op)
    fb.operators = kept


# -- the model source -------------------------------------------------------------------
def load(path: str | Path, args: Any = None, progress: Progress | None = None
         ) -> SegmentationModel:
    """The ``FILE_SOURCES`` entry for ``.tflite``: reads ``--labels``, ``--scale``/
    ``--offset`` or ``--mean``/``--std`` from ``args`` when given."""
    progress = progress or Progress(enabled=False)
    with progress.step(f"reading the TFLite flatbuffer {Path(path).name}"):
        fb = read(path)
    labels = getattr(args, "labels", None)
    return segmentation_model(fb, labels=labels, preprocessing=_preprocessing_option(args),
                              progress=progress)


def segmentation_model(fb: Flatbuffer, labels: str | Path | None = None,
                       preprocessing: tuple[float, float] | None = None,
                       progress: Progress | None = None) -> SegmentationModel:
    from edgeseg.labels import default_class_names, read_labels
    from exporters.tflite_graph import GraphRun
    from exporters.tflite_weights import plan_weights

    progress = progress or Progress(enabled=False)
    check_supported(fb)
    image = _input_tensor(fb)
    output, kind, num_classes = _output_kind(fb)
    names = (read_labels(labels, num_classes) if labels
             else _default_names(num_classes, default_class_names))
    pre = _input_preprocessing(image, preprocessing, progress)
    weights, specs = plan_weights(fb)

    def forward(images: Any, ctx: Any) -> Any:
        return GraphRun(fb, specs, ctx).run(images)

    ops: dict[str, int] = {}
    for op in fb.operators:
        ops[op.name] = ops.get(op.name, 0) + 1
    return SegmentationModel(
        name=_model_name(fb.path), input_size=(image.shape[1], image.shape[2]),
        class_names=names, weights=weights, forward=forward, preprocessing=pre,
        output=kind, quantization="own" if image.quantized or _any_quantized(fb) else "kit",
        source={"kind": "tflite", "file": fb.path.name, "input": image.name,
                "input_type": image.dtype, "output": output.name,
                "output_type": output.dtype, "operators": ops},
        tflite_source=fb.path)


def _input_tensor(fb: Flatbuffer) -> Tensor:
    if len(fb.inputs) != 1:
        raise InvalidArgument(f"{fb.path.name} has {len(fb.inputs)} inputs; expected one "
                              "image input")
    image = fb.tensors[fb.inputs[0]]
    if len(image.shape) != 4 or image.shape[3] != 3 or min(image.shape[1:3]) < 1:
        raise InvalidArgument(f"{fb.path.name}: input '{image.name}' has shape "
                              f"{list(image.shape)}; expected an RGB image [1, H, W, 3]")
    if image.dtype not in ("UINT8", "INT8", "FLOAT32"):
        raise InvalidArgument(f"{fb.path.name}: input '{image.name}' is {image.dtype}; "
                              "expected UINT8, INT8 or FLOAT32")
    return image


def _output_kind(fb: Flatbuffer) -> tuple[Tensor, OutputKind, int]:
    """The first output: class ids (an ARG_MAX) or per-pixel scores [1, h, w, C]."""
    output = fb.tensors[fb.outputs[0]]
    producer = fb.producer(output.index)
    if output.dtype in ("INT32", "INT64") and len(output.shape) == 3:
        if producer is None or producer.name != "ARG_MAX":
            raise InvalidArgument(f"{fb.path.name}: integer output '{output.name}' is not "
                                  "an ARG_MAX; cannot tell the number of classes")
        return output, "class_ids", fb.tensors[producer.inputs[0]].shape[-1]
    if len(output.shape) != 4:
        raise InvalidArgument(f"{fb.path.name}: output '{output.name}' has shape "
                              f"{list(output.shape)}; expected per-pixel scores [1, H, W, C] "
                              "or class ids [1, H, W]")
    probabilities = producer is not None and producer.name in ("SOFTMAX", "LOGISTIC")
    channels = output.shape[-1]
    return output, "probabilities" if probabilities else "logits", max(channels, 2)


def _default_names(num_classes: int, default: Any) -> list[str]:
    return ["background", "foreground"] if num_classes == 2 else default(num_classes)


def _input_preprocessing(image: Tensor, option: tuple[float, float] | None,
                         progress: Progress) -> Preprocessing:
    """Raw RGB 0..255 -> the input tensor's REAL values; the letterbox is filled with
    the raw value that maps to real 0 (the zero point for a quantized input)."""
    if option is not None:
        scale, offset = option
    elif image.quantized:
        assert image.quantization is not None
        s = float(image.quantization.scale[0])
        zero = float(image.quantization.zero_point[0])
        shift = 128.0 if image.dtype == "INT8" else 0.0  # int8 inputs take raw - 128
        scale, offset = s, -(zero + shift) * s
    else:
        scale, offset = 1.0 / 255.0, 0.0
        progress.say(f"float input '{image.name}': assuming RGB scaled to 0..1 "
                     "(pass --scale/--offset or --mean/--std if the model expects otherwise)")
    pad = float(np.clip(-offset / scale, 0.0, 255.0)) if scale else 0.0
    return Preprocessing(scale=scale, offset=offset, pad_value=pad)


def _preprocessing_option(args: Any) -> tuple[float, float] | None:
    """``--scale/--offset`` or ``--mean/--std`` (x' = (x - mean) / std)."""
    scale, offset = getattr(args, "scale", None), getattr(args, "offset", None)
    mean, std = getattr(args, "mean", None), getattr(args, "std", None)
    if (scale is not None or offset is not None) and (mean is not None or std is not None):
        raise InvalidArgument("give either --scale/--offset or --mean/--std, not both")
    if mean is not None or std is not None:
        std = 1.0 if std is None else std
        if std == 0:
            raise InvalidArgument("--std must not be 0")
        return 1.0 / std, -(mean or 0.0) / std
    if scale is not None or offset is not None:
        return (1.0 if scale is None else scale), (offset or 0.0)
    return None


def _any_quantized(fb: Flatbuffer) -> bool:
    return any(t.quantized for t in fb.tensors)


def _model_name(path: Path) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem) or "tflite_model"
