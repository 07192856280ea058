"""``edgeseg export SOURCE --output BASE …``: the CLI adapter over the one writer.

SOURCE is ``deeplabv3`` (the built-in architecture, random weights or ``--weights``)
or a model file; each source turns its input into a
:class:`~exporters.model.SegmentationModel` and :func:`exporters.writer.export` does
the rest. Errors are :class:`~edgeseg.errors.EdgesegError`; the CLI prints one line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from edgeseg.errors import InvalidArgument, NotFound
from edgeseg.progress import Progress
from exporters.model import SegmentationModel

# File sources by suffix -> "module:function(path, args, progress) -> SegmentationModel".
FILE_SOURCES: dict[str, str] = {
    ".tflite": "exporters.tflite:load",
    ".keras": "exporters.keras_file:load",
    ".h5": "exporters.keras_file:load",
    ".pb": "exporters.frozen_graph:load",
}


def parse_size(text: str) -> tuple[int, int]:
    """``513`` or ``HxW``."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected N or HxW with positive sizes, got {text!r}")
    return parts[0], parts[1]


def parse_rates(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}"
                                         ) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeseg export",
        description="Export a trained segmentation model as one SavedModel version with "
                    "tag-sets {serve} and {serve_quantized}, plus model.tflite (int8, "
                    "LiteRT), written atomically to BASE/N.")
    p.add_argument("source", help="'deeplabv3' (built-in architecture) or a model file")
    p.add_argument("--output", required=True, type=Path, metavar="BASE",
                   help="the model's base path; the version is written to BASE/N")
    p.add_argument("--version", type=int, help="version N (default: one above the highest)")
    p.add_argument("--force", action="store_true", help="replace an existing version")
    p.add_argument("--calibration-images", type=Path, metavar="DIR",
                   help="JPEG/PNG/BMP images to calibrate int8 activation ranges on")
    p.add_argument("--labels", type=Path, metavar="FILE", help="class names, one a line")
    p.add_argument("--no-tflite", dest="tflite", action="store_false",
                   help="do not write model.tflite (the int8 model for LiteRT and TF "
                        "Serving's --prefer_tflite_model)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    d = p.add_argument_group("built-in deeplabv3")
    d.add_argument("--weights", type=Path, metavar="FILE",
                   help="Keras .weights.h5 of this architecture (default: random weights)")
    d.add_argument("--input-size", type=parse_size, default=(513, 513), metavar="N|HxW")
    d.add_argument("--num-classes", type=int, default=21)
    d.add_argument("--depth-multiplier", type=float, default=1.0)
    d.add_argument("--output-stride", type=int, choices=(8, 16), default=16)
    d.add_argument("--atrous-rates", type=parse_rates, default=(), metavar="R1,R2,…",
                   help="ASPP atrous rates at output stride 16 (default: none, as DeepLab's "
                        "MobileNetV2 models; 6,12,18 for the paper's ASPP)")
    d.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    f = p.add_argument_group(
        "model files (.tflite, .keras/.h5, .pb)",
        "Pre-processing maps raw RGB 0..255 to the network's input: x * scale + offset, or "
        "(x - mean) / std. A quantized TFLite input brings its own; --input-size gives the "
        "size of a Keras or frozen-graph input that does not fix it.")
    f.add_argument("--input-tensor", metavar="NAME:0", help="frozen graph: the image input "
                   "(e.g. ImageTensor:0)")
    f.add_argument("--output-tensor", metavar="NAME:0", help="frozen graph: class ids or "
                   "per-pixel scores (e.g. SemanticPredictions:0)")
    f.add_argument("--scale", type=float, help="multiply raw RGB 0..255 by this")
    f.add_argument("--offset", type=float, help="then add this")
    f.add_argument("--mean", type=float, help="or subtract this mean…")
    f.add_argument("--std", type=float, help="…and divide by this standard deviation")
    return p


def builtin_deeplab(args: argparse.Namespace, progress: Progress) -> SegmentationModel:
    from edgeseg.labels import read_labels
    from exporters import deeplab

    names = tuple(read_labels(args.labels, args.num_classes)) if args.labels else ()
    cfg = deeplab.DeepLabConfig(num_classes=args.num_classes, input_size=args.input_size,
                                depth_multiplier=args.depth_multiplier,
                                output_stride=args.output_stride,
                                atrous_rates=args.atrous_rates, class_names=names)
    if args.weights is not None and not args.weights.is_file():
        raise NotFound(f"weights file {args.weights} does not exist")
    with progress.step("building the DeepLab-v3 Keras model"):
        model = deeplab.build_keras_model(cfg, seed=args.seed)
    if args.weights is None:
        progress.say("no --weights given: RANDOM weights (fine for tests and plumbing; the "
                     "masks mean nothing)")
        source = {"weights": f"random (seed {args.seed})"}
    else:
        with progress.step(f"loading weights from {args.weights}"):
            deeplab.load_weights(model, args.weights)
        source = {"weights": str(args.weights)}
    return deeplab.segmentation_model(model, cfg, source)


def resolve_source(args: argparse.Namespace) -> Callable[..., SegmentationModel]:
    if args.source == "deeplabv3":
        return builtin_deeplab
    path = Path(args.source)
    suffix = path.suffix.lower()
    if suffix in FILE_SOURCES:
        import importlib

        module_name, func = FILE_SOURCES[suffix].split(":")
        loader = getattr(importlib.import_module(module_name), func)
        return lambda a, progress: loader(path, a, progress)
    known = ", ".join(["deeplabv3", *(f"FILE{s}" for s in FILE_SOURCES)])
    raise InvalidArgument(f"unknown model source {args.source!r}; expected one of: {known}")


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    progress = Progress(prefix="edgeseg export", enabled=not args.quiet)
    load = resolve_source(args)

    from exporters.writer import export, preflight

    preflight(args.output, args.version, args.force, args.calibration_images)
    quiet_tensorflow()
    model = load(args, progress)

    result = export(model, args.output, version=args.version, force=args.force,
                    calibration_images=args.calibration_images, progress=progress,
                    tflite=args.tflite)
    print(summary(result), file=sys.stdout)
    return 0


def quiet_tensorflow() -> None:
    """TensorFlow's start-up chatter and TF1-API deprecation notices hide the lines that
    matter on a terminal; keep errors only (an explicit TF_CPP_MIN_LOG_LEVEL wins)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")


def summary(result: object) -> str:
    from exporters.writer import ExportResult

    assert isinstance(result, ExportResult)
    lines = [f"exported version {result.version} to {result.path} in {result.seconds:.1f} s",
             f"  tag-sets: serve, serve_quantized (one variables checkpoint: "
             f"{result.variables_bytes / 1e6:.2f} MB for {result.weight_bytes / 1e6:.2f} MB "
             f"of float weights)"]
    if result.card.get("quantization", {}).get("scheme") == "source":
        lines.append("  serve_quantized: the source's own int8 parameters, as "
                     "quantize/dequantize ops")
    elif result.pixel_agreement is None:
        lines.append("  int8 activations not calibrated (no --calibration-images): "
                     "serve_quantized quantizes weights only")
    if result.pixel_agreement is not None:
        lines.append(f"  serve vs serve_quantized pixel agreement on "
                     f"{result.calibration_images} calibration images: "
                     f"{100 * result.pixel_agreement:.2f}%")
    lines += tflite_summary(result.tflite)
    return "\n".join(lines)


def tflite_summary(tflite: object) -> list[str]:
    if tflite is None:
        return ["  model.tflite: skipped (--no-tflite)"]
    card = tflite.card()  # type: ignore[attr-defined]
    if not card["file"]:
        return [f"  model.tflite: NOT written: {card['reason']}"]
    agreement = card["agreement_with_serve_quantized"]
    return [f"  model.tflite: {card['bytes'] / 1e6:.2f} MB int8 for LiteRT, made in "
            f"{card['conversion_seconds']:.1f} s; activation ranges: "
            f"{card['activation_ranges']}",
            f"  model.tflite vs serve_quantized pixel agreement on "
            f"{card['agreement_measured_on']}: {100 * agreement:.2f}%"]
