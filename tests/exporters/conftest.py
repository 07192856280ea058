"""Exports shared across the exporter tests (building one costs seconds, so once)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from exporters.deeplab import DeepLabConfig, build_keras_model, segmentation_model, synthetic_image
from exporters.model import Preprocessing, SegmentationModel

SIZE = 65  # small, odd like DeepLab's 513, and fast on two cores


@pytest.fixture(scope="session")
def deeplab_cfg() -> DeepLabConfig:
    return DeepLabConfig(input_size=(SIZE, SIZE))


@pytest.fixture(scope="session")
def keras_model(deeplab_cfg: DeepLabConfig):
    return build_keras_model(deeplab_cfg, seed=3)


@pytest.fixture(scope="session")
def calibration_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("calibration")
    for i, (h, w) in enumerate([(SIZE, SIZE), (48, 90), (120, 80)]):
        cv2.imwrite(str(folder / f"frame{i}.png"), synthetic_image(h, w, seed=10 + i)[:, :, ::-1])
    (folder / "notes.txt").write_text("not an image; ignored\n")
    return folder


@pytest.fixture(scope="session")
def exported(tmp_path_factory, keras_model, deeplab_cfg, calibration_dir):
    from exporters.writer import export

    base = tmp_path_factory.mktemp("export") / "deeplab"
    return export(segmentation_model(keras_model, deeplab_cfg), base,
                  calibration_images=calibration_dir)


def tiny_model(seed: int = 0, classes: int = 4, gpu_pinned: bool = False) -> SegmentationModel:
    """A one-convolution segmenter: enough for the writer's file-level behaviour."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    weights = {"head/kernel": rng.normal(0, 0.05, (3, 3, 3, classes)).astype(np.float32),
               "head/bias": rng.normal(0, 0.1, classes).astype(np.float32)}

    @tf.function
    def pinned_relu(x):
        with tf.device("/device:GPU:0"):
            return tf.nn.relu(x)

    def forward(images, ctx):
        x = images / 255.0
        if gpu_pinned:
            with tf.device("/device:GPU:0"):
                x = x * 2.0 - 1.0
        y = tf.nn.conv2d(x, ctx.weight("head/kernel", channel_axis=3), 1, "SAME")
        y = ctx.activation("head", tf.nn.bias_add(y, ctx.weight("head/bias")))
        if gpu_pinned:
            y = pinned_relu(y) - pinned_relu(-y)
        return y

    return SegmentationModel(name="tiny", input_size=(32, 32),
                             class_names=[f"c{i}" for i in range(classes)], weights=weights,
                             forward=forward, preprocessing=Preprocessing(),
                             source={"kind": "test"})


def tree(path: Path) -> list[str]:
    """Every file and folder under ``path`` (relative), for before/after comparisons."""
    if not path.exists():
        return []
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))
