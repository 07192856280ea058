"""``model.tflite`` in every export: LiteRT runs it, its signature is the SavedModel's,
its int8 maps agree with ``serve_quantized``, and a model the converter refuses still
gets its SavedModel.

The small DeepLab export is the shared ``exported`` fixture (calibrated). The target
check uses the built-in DeepLab with trained weights (the Coral model's, which has this
architecture) exported once with the shared photos as calibration images.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from exporters import command, graphs, tflite_export
from exporters.deeplab import synthetic_image
from exporters.writer import export, list_calibration_images, read_rgb

from .conftest import tiny_model

PHOTOS = ("astronaut.png", "grace_hopper.bmp", "chelsea.png", "bird_segmentation.bmp",
          "dog_segmentation.bmp", "coffee.png")
CORAL = "deeplab/deeplabv3_mnv2_pascal_quant.tflite"


def litert_signature(path: Path) -> dict:
    return tflite_export.signature(path.read_bytes())[tflite_export.SIGNATURE]


def int8_maps(export_dir: Path, frames: list[np.ndarray]) -> list[np.ndarray]:
    with graphs.loaded(export_dir, "serve_quantized") as run:
        return [run("serving_default", {"images": f[None]})[0] for f in frames]


# -- the small calibrated DeepLab ------------------------------------------------------------
def test_every_export_has_model_tflite_with_the_savedmodel_signature(exported):
    path = exported.path / "model.tflite"
    assert path.read_bytes()[4:8] == b"TFL3"
    sig = litert_signature(path)
    assert sig["inputs"] == {"images": {"dtype": "uint8", "shape": [1, -1, -1, 3]}}
    assert sig["outputs"] == {"segmentation_map": {"dtype": "uint8", "shape": [1, -1, -1]}}


def test_any_frame_size_gives_a_map_of_that_size(exported):
    data = (exported.path / "model.tflite").read_bytes()
    reference, xnnpack = tflite_export.runner(data, reference=True), tflite_export.runner(data)
    frames = [synthetic_image(65, 65), synthetic_image(37, 120, seed=4),
              synthetic_image(200, 51, seed=5)]
    expected = int8_maps(exported.path, frames)
    for frame, want in zip(frames, expected, strict=True):
        for segment in (reference, xnnpack):
            got = segment(frame)
            assert got.shape == frame.shape[:2] and got.dtype == np.uint8
        # Random weights make argmax touchy (serve vs serve_quantized agree on ~20% at
        # 513); far above chance (1/21) says it is the same network and letterbox.
        assert np.mean(reference(frame) == want) > 0.5


def test_core_is_integer_and_the_card_tells_the_truth(exported, calibration_dir):
    data = (exported.path / "model.tflite").read_bytes()
    interpreter = tflite_export.runner(data, reference=True).interpreter
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    convs = [op for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"]
    int8 = [op for op in convs if tensors[op["inputs"][1]]["dtype"] == np.int8]
    assert len(int8) >= 0.9 * len(convs) > 0

    card = json.loads((exported.path / "assets.extra" / "model_card.json").read_text())
    entry = card["tflite"]
    assert entry["file"] == "model.tflite" and entry["bytes"] == len(data)
    assert "calibrated on 3 images" in entry["activation_ranges"]
    assert entry["agreement_measured_on"] == "3 calibration images"
    images = [read_rgb(p) for p in list_calibration_images(calibration_dir)]
    measured, _ = tflite_export.agreement(data, images, int8_maps(exported.path, images))
    assert entry["agreement_with_serve_quantized"] == pytest.approx(measured)
    assert measured > 0.5


def test_no_calibration_images_says_the_ranges_are_synthetic(tmp_path, capsys):
    from edgeseg.progress import Progress

    result = export(tiny_model(seed=5), tmp_path / "m", progress=Progress())
    entry = json.loads((result.path / "assets.extra" / "model_card.json").read_text())["tflite"]
    assert entry["file"] == "model.tflite"
    assert "SYNTHETIC" in entry["activation_ranges"]
    assert "synthetic frames" in entry["agreement_measured_on"]
    assert 0.0 <= entry["agreement_with_serve_quantized"] <= 1.0
    assert "synthetic frames" in capsys.readouterr().err


def test_no_tflite_skips_the_file(tmp_path):
    assert command.parser().parse_args(["deeplabv3", "--output", "x", "--no-tflite"]).tflite \
        is False
    result = export(tiny_model(seed=6), tmp_path / "m", tflite=False)
    assert not (result.path / "model.tflite").exists()
    assert (result.path / "saved_model.pb").is_file()
    assert "model.tflite: skipped" in command.summary(result)


def test_a_model_the_converter_refuses_still_gets_its_savedmodel(tmp_path, capsys):
    """BesselI1e has no TFLite builtin: the conversion fails for real, naming the op."""
    import tensorflow as tf

    model = tiny_model(seed=7)
    forward = model.forward
    model = dataclasses.replace(
        model, forward=lambda images, ctx: forward(images, ctx)
        + tf.math.special.bessel_i1e(images[..., :1]))
    base = tmp_path / "m"
    result = export(model, base)
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if "no model.tflite" in line]
    assert len(warning) == 1 and "unsupported operation tf.BesselI1e" in warning[0], err
    assert "the SavedModel is written" in warning[0]
    assert [p.name for p in base.parent.iterdir()] == ["m"]  # no staging folder left
    assert "model.tflite" not in [p.name for p in result.path.iterdir()]
    with graphs.loaded(result.path, "serve_quantized") as run:
        assert run("serving_default", {"images": synthetic_image(20, 30)[None]}).shape \
            == (1, 20, 30)
    card = json.loads((result.path / "assets.extra" / "model_card.json").read_text())
    assert card["tflite"]["file"] is None and "BesselI1e" in card["tflite"]["reason"]
    assert "NOT written" in command.summary(result)


# -- the built-in DeepLab with trained weights: the target ---------------------------
@pytest.fixture(scope="module")
def builtin_trained(shared_models: Path, tmp_path_factory):
    from exporters.deeplab import (
        DeepLabConfig,
        build_keras_model,
        segmentation_model,
        weights_from_tflite,
    )

    photos = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        (photos / name).symlink_to(shared_models / "images" / name)
    cfg = DeepLabConfig(input_size=(513, 513))
    model = segmentation_model(build_keras_model(cfg), cfg)
    model = dataclasses.replace(
        model, weights=weights_from_tflite(shared_models / CORAL, model.weights))
    base = tmp_path_factory.mktemp("builtin") / "deeplab"
    return export(model, base, calibration_images=photos), photos


def test_builtin_deeplab_agrees_with_serve_quantized_on_each_photo(builtin_trained):
    result, photos = builtin_trained
    frames = [read_rgb(photos / name) for name in PHOTOS]
    data = (result.path / "model.tflite").read_bytes()
    total, per_photo = tflite_export.agreement(data, frames, int8_maps(result.path, frames))
    assert min(per_photo) >= 0.97, dict(zip(PHOTOS, per_photo, strict=True))
    card = json.loads((result.path / "assets.extra" / "model_card.json").read_text())
    assert card["tflite"]["agreement_with_serve_quantized"] == pytest.approx(total)
    assert card["tflite"]["agreement_measured_on"] == f"{len(PHOTOS)} calibration images"


def test_builtin_deeplab_non_square_frame(builtin_trained):
    result, photos = builtin_trained
    frame = read_rgb(photos / "coffee.png")[:301, :177]
    got = tflite_export.runner((result.path / "model.tflite").read_bytes(), reference=True)(
        frame)
    assert got.shape == (301, 177)
    assert np.mean(got == int8_maps(result.path, [frame])[0]) >= 0.97
