"""The one writer every model source goes through.

``export(model, base)`` writes ``base/N/``: ONE SavedModel whose ``saved_model.pb``
holds exactly two meta-graphs, tag-sets {serve} (float) and {serve_quantized} (int8 as
quantize/dequantize ops), both restoring from ONE ``variables/`` checkpoint; every
``NodeDef.device`` is empty, in the graphs and in their function libraries; the three
signatures of :mod:`exporters.signatures`; ``assets.extra/`` with TF Serving's warmup
requests, the class names, the palette and a JSON model card; and, unless
``tflite=False``, ``model.tflite`` (:mod:`exporters.tflite_export`): the int8 model for
LiteRT and TF Serving's ``--prefer_tflite_model``, with the same signature.

The version is built in a staging folder beside ``base``, loaded back and checked
(both tags, every signature), and only then renamed into place
(:mod:`exporters.versions`). Any failure removes the staging folder: ``base`` is left
as it was.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg import __version__
from edgeseg.errors import InvalidArgument, NotFound
from edgeseg.labels import voc_palette
from edgeseg.model_contract import (
    ASSETS_EXTRA,
    IMAGES,
    LABELS_FILE,
    PREDICT_ENCODED,
    PREDICT_IMAGES,
    SEGMENTATION_MAP,
    SERVING_DEFAULT,
    TAG_FLOAT,
    TAG_QUANTIZED,
)
from edgeseg.progress import Progress
from exporters import versions
from exporters.model import SegmentationModel

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
MAX_CALIBRATION_IMAGES = 200


@dataclass
class ExportResult:
    path: Path
    version: int
    variables_bytes: int
    weight_bytes: int
    seconds: float
    calibration_images: int = 0
    pixel_agreement: float | None = None
    card: dict[str, Any] = field(default_factory=dict)
    tflite: Any = None  # exporters.tflite_export.TfliteResult, or None with tflite=False


def list_calibration_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise NotFound(f"calibration folder {folder} does not exist or is not a directory")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise InvalidArgument(f"calibration folder {folder} holds no images; expected "
                              f"files ending in {', '.join(IMAGE_SUFFIXES)}")
    return images[:MAX_CALIBRATION_IMAGES]


def preflight(base: Path, version: int | None, force: bool,
              calibration_images: str | Path | None) -> int:
    """Every check that needs no model: run it before the slow work. Returns the version."""
    versions.check_output(base)
    if version is None:
        version = versions.next_version(base)
    elif version < 0:
        raise InvalidArgument(f"version must be a non-negative integer, got {version}")
    target = base / str(version)
    if target.exists() and not force:
        raise versions.AlreadyExists(f"version {target} already exists; pass --force to "
                                     "replace it or --version to choose another")
    if calibration_images:
        list_calibration_images(calibration_images)
    return version


def read_rgb(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InvalidArgument(f"cannot decode image {path}; expected a JPEG, PNG or BMP file")
    return np.ascontiguousarray(image[:, :, ::-1])


def export(model: SegmentationModel, base: str | Path, version: int | None = None,
           force: bool = False, calibration_images: str | Path | None = None,
           progress: Progress | None = None, tflite: bool = True) -> ExportResult:
    """Write ``model`` as version ``version`` (default: one above the highest) of ``base``;
    ``tflite``: also ``model.tflite``."""
    started = time.monotonic()
    progress = progress or Progress(enabled=False)
    base = Path(base)
    version = preflight(base, version, force, calibration_images)
    target = base / str(version)
    calibration = list_calibration_images(calibration_images) if calibration_images else []
    images = [read_rgb(p) for p in calibration]

    staging = versions.make_staging(base)
    try:
        export_dir = staging / "saved_model"
        card, ranges = _build(model, export_dir, images, progress, tflite)
        frames, frames_are = _check_frames(model, images) if tflite else (images, "")
        with progress.step("loading the export back and checking both tags"):
            agreement, int8_maps = _verify(export_dir, model, images, frames)
        if agreement is not None:
            card["calibration"]["pixel_agreement"] = agreement
        tflite_result = None
        if tflite:
            tflite_result = _write_tflite(model, export_dir, ranges, len(images), frames,
                                          int8_maps, frames_are, progress)
            card["tflite"] = tflite_result.card()
        _write_assets(export_dir, model, card)
        versions.publish(export_dir, target, force)
    except Exception as exc:
        full = versions.disk_full(exc, base, staging)
        if full is not None:
            raise full from exc
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    variables_bytes = sum(p.stat().st_size for p in (target / "variables").iterdir())
    return ExportResult(path=target, version=version, variables_bytes=variables_bytes,
                        weight_bytes=model.weight_bytes, seconds=time.monotonic() - started,
                        calibration_images=len(images), pixel_agreement=agreement, card=card,
                        tflite=tflite_result)


SYNTHETIC_FRAMES = 3


def _check_frames(model: SegmentationModel, images: list[np.ndarray]
                  ) -> tuple[list[np.ndarray], str]:
    """The frames model.tflite is compared with serve_quantized on: the calibration
    images, or synthetic frames (one not of the network's size or aspect)."""
    if images:
        return images, f"{len(images)} calibration images"
    from exporters.deeplab import synthetic_image

    h, w = model.input_size
    sizes = [(h, w), (max(h // 2, 8) + 3, w + 5), (h + 7, max(w // 3, 8))]
    return ([synthetic_image(fh, fw, seed=20 + i) for i, (fh, fw) in enumerate(sizes)],
            f"{SYNTHETIC_FRAMES} synthetic frames (no calibration images)")


def _write_tflite(model: SegmentationModel, export_dir: Path, ranges: Any,
                  calibration_images: int, frames: list[np.ndarray],
                  int8_maps: list[np.ndarray], frames_are: str, progress: Progress) -> Any:
    from exporters import tflite_export

    ranges_from = (f"calibrated on {calibration_images} images (as serve_quantized)"
                   if calibration_images else
                   f"calibrated on {SYNTHETIC_FRAMES} SYNTHETIC frames: no --calibration-images "
                   "were given, so serve_quantized keeps activations float and model.tflite's "
                   "int8 ranges only fit frames like those")
    with progress.step("writing model.tflite (int8, LiteRT) and checking it"):
        result = tflite_export.write(model, export_dir, ranges, ranges_from, frames,
                                     int8_maps, frames_are)
    if not result.written:
        print(f"edgeseg export: warning: no model.tflite: {result.reason}; the SavedModel "
              "is written", file=sys.stderr)
    elif model.quantization == "kit" and not calibration_images:
        progress.say("model.tflite: int8 activation ranges from synthetic frames (no "
                     "--calibration-images); pass real frames for a usable int8 model")
    return result


def _build(model: SegmentationModel, export_dir: Path, images: list[np.ndarray],
           progress: Progress, tflite: bool) -> tuple[dict[str, Any], Any]:
    """Both meta-graphs; returns the model card and the activation ranges model.tflite
    uses (serve_quantized's; synthetic frames' when there are no calibration images)."""
    import tensorflow as tf

    from exporters import graphs

    builder = tf.compat.v1.saved_model.Builder(str(export_dir))
    with progress.step("building the float graph (serve)"):
        float_graph = graphs.build_graph(model, quantized=False)
    with float_graph.graph.as_default(), graphs.session(float_graph.graph) as sess:
        graphs.assign_weights(sess, float_graph, model.weights)
        ranges = tflite_ranges = None
        if images and model.quantization == "kit":
            ranges = tflite_ranges = graphs.calibrate(sess, float_graph, images, progress)
        elif tflite and model.quantization == "kit":
            frames, _ = _check_frames(model, [])
            tflite_ranges = graphs.calibrate(sess, float_graph, frames, progress)
        with progress.step("writing variables and the serve meta-graph"):
            builder.add_meta_graph_and_variables(
                sess, [TAG_FLOAT], signature_def_map=float_graph.signatures,
                clear_devices=True, strip_default_attrs=True)
    with progress.step("building the int8 graph (serve_quantized)"):
        quant_graph = graphs.build_graph(model, quantized=True, ranges=ranges)
    with quant_graph.graph.as_default():
        builder.add_meta_graph([TAG_QUANTIZED], signature_def_map=quant_graph.signatures,
                               clear_devices=True, strip_default_attrs=True)
    builder.save()
    graphs.strip_devices(export_dir / "saved_model.pb")
    return _model_card(model, len(images), bool(ranges)), tflite_ranges


def _verify(export_dir: Path, model: SegmentationModel, images: list[np.ndarray],
            frames: list[np.ndarray]) -> tuple[float | None, list[np.ndarray]]:
    """Load each tag back, run every signature once; agreement on calibration images;
    serve_quantized's maps of ``frames`` (model.tflite is checked against them)."""
    from exporters import graphs

    probe = graphs.probe_inputs(model)
    maps: dict[str, list[np.ndarray]] = {}
    for tag in (TAG_FLOAT, TAG_QUANTIZED):
        with graphs.loaded(export_dir, tag) as runner:
            for signature, feeds in probe.items():
                result = runner(signature, feeds)
                expected = feeds[IMAGES].shape[1:3] if signature != PREDICT_ENCODED else None
                if expected is not None and result.shape[1:3] != expected:
                    raise InvalidArgument(
                        f"export check failed: {tag}/{signature} returned a map of shape "
                        f"{result.shape}, expected spatial size {expected}")
            maps[tag] = [runner(SERVING_DEFAULT, {IMAGES: image[None]})[0]
                         for image in (images if tag == TAG_FLOAT else frames)]
    if not images:
        return None, maps[TAG_QUANTIZED]
    agree = sum(int((a == b).sum()) for a, b in zip(maps[TAG_FLOAT], maps[TAG_QUANTIZED],
                                                     strict=True))
    total = sum(a.size for a in maps[TAG_FLOAT])
    return agree / total, maps[TAG_QUANTIZED]


def _model_card(model: SegmentationModel, calibration_images: int,
                calibrated: bool) -> dict[str, Any]:
    if model.quantization == "own":
        scheme = {"scheme": "source", "detail": "the source's own int8 parameters, applied as "
                  "quantize/dequantize ops"}
    else:
        scheme = {"scheme": "kit",
                  "weights": "int8, symmetric, narrow range, per output channel",
                  "activations": (f"int8, per tensor, calibrated on {calibration_images} images"
                                  if calibrated else "float (no calibration images given)")}
    return {
        "format": "edgeseg-model-card/1",
        "name": model.name,
        "kit_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": model.source,
        "classes": model.class_names,
        "num_classes": model.num_classes,
        "input_size": list(model.input_size),
        "preprocessing": model.preprocessing.describe(),
        "output": model.output,
        "tag_sets": [[TAG_FLOAT], [TAG_QUANTIZED]],
        "signatures": {
            SERVING_DEFAULT: f"{IMAGES} uint8 [-1,-1,-1,3] -> {SEGMENTATION_MAP} uint8 [-1,H,W]",
            PREDICT_IMAGES: f"{IMAGES} float32 [1,-1,-1,3], height int32 [1], width int32 [1] "
                            f"-> {SEGMENTATION_MAP} int64 [1,height,width]",
            PREDICT_ENCODED: f"{IMAGES} string [-1] (JPEG/PNG) -> {SEGMENTATION_MAP} uint8",
        },
        "quantization": scheme,
        "calibration": {"images": calibration_images, "pixel_agreement": None},
        "weights_bytes": model.weight_bytes,
    }


def _write_assets(export_dir: Path, model: SegmentationModel, card: dict[str, Any]) -> None:
    from exporters import warmup

    extra = export_dir / ASSETS_EXTRA
    extra.mkdir(exist_ok=True)
    warmup.write_warmup_requests(extra / warmup.WARMUP_FILE, model.input_size)
    (extra / LABELS_FILE).write_text("\n".join(model.class_names) + "\n", encoding="utf-8")
    palette = [list(c) for c in voc_palette(model.num_classes)]
    (extra / "palette.json").write_text(json.dumps(palette) + "\n", encoding="utf-8")
    (extra / "model_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
