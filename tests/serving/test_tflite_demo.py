"""``edgeseg demo --tflite``: the int8 LiteRT path end to end (server, agent, MQTT), and a
clear refusal when the export has no model.tflite."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from edgeseg import masks
from edgeseg.demo import tflite_flags
from edgeseg.errors import FailedPrecondition
from edgeseg.progress import Progress
from tests.services import free_port, wait_until

from .conftest import REPO

SAVED_MODEL_CLASS, TFLITE_CLASS = 0, 15  # each runtime paints every pixel its own class


class _Constant(tf.Module):
    """The export's serving_default contract: uint8 frames of any size in, a uint8 map of
    the frame's size out; the map is one class everywhere."""

    def __init__(self, value: int) -> None:
        super().__init__()
        self.value = value

    @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8, name="images")])
    def serve(self, images):
        size = tf.shape(images)
        return {"segmentation_map": tf.fill([1, size[1], size[2]],
                                            tf.constant(self.value, tf.uint8))}


def _export(version_dir) -> None:
    """A version folder with both runtimes' files and the assets the agent reads."""
    saved = _Constant(SAVED_MODEL_CLASS)
    tf.saved_model.save(saved, str(version_dir), signatures={"serving_default": saved.serve})
    lite = _Constant(TFLITE_CLASS)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [lite.serve.get_concrete_function()], lite)
    (version_dir / "model.tflite").write_bytes(converter.convert())
    labels = ["background"] + [f"class{i}" for i in range(1, 21)]
    (version_dir / "assets.extra").mkdir(exist_ok=True)
    (version_dir / "assets.extra" / "labels.txt").write_text("\n".join(labels) + "\n")


def test_an_export_without_model_tflite_is_refused_saying_so(tmp_path):
    with pytest.raises(FailedPrecondition, match="has no model.tflite"):
        tflite_flags(tmp_path, Progress(prefix="t"))
    (tmp_path / "model.tflite").write_bytes(b"x")
    assert tflite_flags(tmp_path, Progress(prefix="t")) == ["--prefer_tflite_model=true"]


def test_demo_tflite_streams_masks_made_by_litert(tmp_path, mosquitto, recorder_factory):
    workdir = tmp_path / "demo"
    _export(workdir / "models" / "deeplab" / "1")  # reused by the demo (no --fresh)
    recorder = recorder_factory(mosquitto.port, "edgeseg/demo/cam0/#")
    run = subprocess.run(
        [sys.executable, "-m", "edgeseg", "demo", "--tflite", "--workdir", str(workdir),
         "--frames", "10", "--mqtt", mosquitto.address, "--grpc-port", str(free_port()),
         "--preview-port", str(free_port())],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "edgeseg serve --prefer_tflite_model=true" in run.stderr
    assert "LiteRT, " in (workdir / "logs" / "serve.log").read_text()
    wait_until(lambda: len(recorder.of("mask")) >= 10, 10, what="10 masks")
    class_map = masks.decode_mask(recorder.of("mask")[-1]["payload"])
    assert class_map.shape == (480, 640)
    assert np.unique(class_map).tolist() == [TFLITE_CLASS]  # model.tflite answered
