"""The one writer every model source goes through.

``export(model, base)`` writes ``base/N/``: ONE SavedModel whose ``saved_model.pb``
holds exactly two meta-graphs, tag-sets {serve} (float) and {serve_quantized} (int8 as
quantize/dequantize ops), both restoring from ONE ``variables/`` checkpoint; every
``NodeDef.device`` is empty, in the graphs and in their function libraries; the three
signatures of :mod:`exporters.signatures`; ``assets.extra/`` with TF Serving's warmup
requests, the class names, the palette and a JSON model card.

The version is built in a staging folder beside ``base``, loaded back and checked
(both tags, every signature), and only then renamed into place
(:mod:`exporters.versions`). Any failure removes the staging folder: ``base`` is left
as it was.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg import __version__
from edgeseg.errors import InvalidArgument, NotFound
from edgeseg.labels import voc_palette
from edgeseg.progress import Progress
from exporters import versions
from exporters.model import SegmentationModel

TAG_FLOAT = "serve"
TAG_QUANTIZED = "serve_quantized"
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
           progress: Progress | None = None) -> ExportResult:
    """Write ``model`` as version ``version`` (default: one above the highest) of ``base``."""
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
        card = _build(model, export_dir, images, progress)
        with progress.step("loading the export back and checking both tags"):
            agreement = _verify(export_dir, model, images)
        if agreement is not None:
            card["calibration"]["pixel_agreement"] = agreement
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
                        calibration_images=len(images), pixel_agreement=agreement, card=card)


def _build(model: SegmentationModel, export_dir: Path, images: list[np.ndarray],
           progress: Progress) -> dict[str, Any]:
    import tensorflow as tf

    from exporters import graphs

    builder = tf.compat.v1.saved_model.Builder(str(export_dir))
    with progress.step("building the float graph (serve)"):
        float_graph = graphs.build_graph(model, quantized=False)
    with float_graph.graph.as_default(), graphs.session(float_graph.graph) as sess:
        graphs.assign_weights(sess, float_graph, model.weights)
        ranges = None
        if images and model.quantization == "kit":
            ranges = graphs.calibrate(sess, float_graph, images, progress)
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
    return _model_card(model, len(images), bool(ranges))


def _verify(export_dir: Path, model: SegmentationModel,
            images: list[np.ndarray]) -> float | None:
    """Load each tag back, run every signature once; agreement on calibration images."""
    from exporters import graphs

    probe = graphs.probe_inputs(model)
    maps: dict[str, list[np.ndarray]] = {}
    for tag in (TAG_FLOAT, TAG_QUANTIZED):
        with graphs.loaded(export_dir, tag) as runner:
            for signature, feeds in probe.items():
                result = runner(signature, feeds)
                expected = feeds["images"].shape[1:3] if signature != "predict_encoded" else None
                if expected is not None and result.shape[1:3] != expected:
                    raise InvalidArgument(
                        f"export check failed: {tag}/{signature} returned a map of shape "
                        f"{result.shape}, expected spatial size {expected}")
            maps[tag] = [runner("serving_default", {"images": image[None]})[0]
                         for image in images]
    if not images:
        return None
    agree = sum(int((a == b).sum()) for a, b in zip(maps[TAG_FLOAT], maps[TAG_QUANTIZED],
                                                     strict=True))
    total = sum(a.size for a in maps[TAG_FLOAT])
    return agree / total


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
            "serving_default": "images uint8 [-1,-1,-1,3] -> segmentation_map uint8 [-1,H,W]",
            "predict_images": "images float32 [1,-1,-1,3], height int32 [1], width int32 [1] "
                              "-> segmentation_map int64 [1,height,width]",
            "predict_encoded": "images string [-1] (JPEG/PNG) -> segmentation_map uint8",
        },
        "quantization": scheme,
        "calibration": {"images": calibration_images, "pixel_agreement": None},
        "weights_bytes": model.weight_bytes,
    }


def _write_assets(export_dir: Path, model: SegmentationModel, card: dict[str, Any]) -> None:
    from exporters import warmup

    extra = export_dir / "assets.extra"
    extra.mkdir(exist_ok=True)
    warmup.write_warmup_requests(extra / warmup.WARMUP_FILE, model.input_size)
    (extra / "labels.txt").write_text("\n".join(model.class_names) + "\n", encoding="utf-8")
    palette = [list(c) for c in voc_palette(model.num_classes)]
    (extra / "palette.json").write_text(json.dumps(palette) + "\n", encoding="utf-8")
    (extra / "model_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
