"""TFLite import: the real Coral DeepLab on real photos, a float model made here, and
every bad input refused with nothing written.

The Coral model is exported ONCE (module fixture); each tag-set is run once over the
photos and the maps are shared by the tests.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from edgeseg.errors import DataLoss, InvalidArgument, Unimplemented
from exporters import command, graphs, tflite

from .conftest import tree
from .reference import interpreter_maps, iou, letterbox, read_rgb

PHOTOS = ("astronaut.png", "grace_hopper.bmp", "chelsea.png", "bird_segmentation.bmp",
          "dog_segmentation.bmp")
CORAL = "deeplab/deeplabv3_mnv2_pascal_quant.tflite"
CORAL_DM05 = "deeplab/deeplabv3_mnv2_dm05_pascal_quant.tflite"
BIRD, DOG = 3, 12


def export_file(source: Path, base: Path, *extra: str) -> Path:
    assert command.main([str(source), "--output", str(base), "--quiet", *extra]) == 0
    return base / "1"


def run_tag(export_dir: Path, tag: str, frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    with graphs.loaded(export_dir, tag) as run:
        return {name: run("serving_default", {"images": f[None]})[0]
                for name, f in frames.items()}


# -- the Coral DeepLab ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def coral(shared_models: Path) -> Path:
    return shared_models / CORAL


@pytest.fixture(scope="module")
def photos(shared_models: Path) -> dict[str, np.ndarray]:
    return {name: read_rgb(shared_models / "images" / name) for name in PHOTOS}


@pytest.fixture(scope="module")
def frames(photos) -> dict[str, np.ndarray]:
    return {name: letterbox(image) for name, image in photos.items()}


@pytest.fixture(scope="module")
def coral_export(coral: Path, tmp_path_factory) -> Path:
    return export_file(coral, tmp_path_factory.mktemp("coral") / "deeplab")


@pytest.fixture(scope="module")
def reference(coral, frames):
    return interpreter_maps(coral, frames)


@pytest.fixture(scope="module")
def quantized_maps(coral_export, frames):
    return run_tag(coral_export, "serve_quantized", frames)


@pytest.fixture(scope="module")
def float_maps(coral_export, frames):
    return run_tag(coral_export, "serve", frames)


def test_reads_size_classes_and_preprocessing_from_the_flatbuffer(coral):
    model = tflite.load(coral)
    assert model.input_size == (513, 513)
    assert model.num_classes == 21 and model.class_names[15] == "person"
    assert model.output == "class_ids" and model.quantization == "own"
    # uint8 input, scale 1/128, zero point 128: raw RGB in, real = (x - 128) / 128.
    assert model.preprocessing.scale == pytest.approx(1 / 128)
    assert model.preprocessing.offset == pytest.approx(-1.0)
    assert model.preprocessing.pad_value == pytest.approx(128.0)
    assert model.source["operators"]["CONV_2D"] == 38
    assert model.source["operators"]["DEPTHWISE_CONV_2D"] == 17


def test_serve_quantized_reproduces_the_interpreter(quantized_maps, reference):
    for name in PHOTOS:
        agreement = float(np.mean(quantized_maps[name] == reference[name]))
        assert agreement >= 0.99, f"{name}: serve_quantized agrees on {agreement:.4f}"


def test_serve_agrees_with_the_interpreter(float_maps, reference):
    agree = sum(int((float_maps[n] == reference[n]).sum()) for n in PHOTOS)
    total = sum(reference[n].size for n in PHOTOS)
    assert agree / total >= 0.97
    for name in PHOTOS:  # chelsea (cat) is the borderline photo, ~92%
        assert np.mean(float_maps[name] == reference[name]) >= 0.9, name


def test_segments_the_photos(reference, quantized_maps):
    person = {n: float(np.mean(quantized_maps[n] == 15)) for n in PHOTOS}
    assert 0.3 < person["astronaut.png"] < 0.55 and 0.55 < person["grace_hopper.bmp"] < 0.8
    assert np.mean(quantized_maps["chelsea.png"] == 8) > 0.6


def test_bird_and_dog_match_their_ground_truth(coral_export, photos, shared_models):
    images = shared_models / "images"
    bird_truth = cv2.imread(str(images / "bird_segmentation_mask.bmp"), cv2.IMREAD_UNCHANGED)
    dog_truth = cv2.imread(str(images / "dog_segmentation_mask.bmp"), cv2.IMREAD_UNCHANGED)
    with graphs.loaded(coral_export, "serve") as run:
        # The original photos: the signature letterboxes and maps back to their size.
        bird = run("serving_default", {"images": photos["bird_segmentation.bmp"][None]})[0]
        dog = run("serving_default", {"images": photos["dog_segmentation.bmp"][None]})[0]
    assert bird.shape == bird_truth.shape and dog.shape == dog_truth.shape
    assert iou(bird == BIRD, bird_truth == 3) >= 0.8
    assert iou(dog == DOG, dog_truth == 0) >= 0.8  # Oxford-IIIT trimap, minus 1: 0 = pet


# -- model.tflite of the Coral export: the source's int8 operators, spliced -----------------
ALL_PHOTOS = (*PHOTOS, "coffee.png")


def test_model_tflite_agrees_with_serve_quantized_on_every_photo(coral_export, shared_models):
    """The issue's target (>= 99% of pixels of each photo) against TFLite's builtin int8
    kernels; the splice reuses the very kernels serve_quantized reproduces, and the
    letterbox is TF's bilinear to the bit, so every pixel agrees."""
    from exporters import tflite_export

    photos = {n: read_rgb(shared_models / "images" / n) for n in ALL_PHOTOS}
    expected = run_tag(coral_export, "serve_quantized", photos)
    data = (coral_export / "model.tflite").read_bytes()
    segment = tflite_export.runner(data, reference=True)
    agreement = {}
    for name, photo in photos.items():
        got = segment(photo)  # the original photo, of its own size
        assert got.shape == photo.shape[:2] and got.dtype == np.uint8
        agreement[name] = float(np.mean(got == expected[name]))
    assert min(agreement.values()) >= 0.99, agreement
    assert np.mean(expected["chelsea.png"] == 8) > 0.6  # a real segmentation, not a blank


def test_model_tflite_of_the_coral_export_is_described(coral_export):
    import json

    from edgeseg.inspect import describe

    facts = describe(coral_export)["tflite"]
    assert facts["bytes"] == (coral_export / "model.tflite").stat().st_size
    assert facts["signatures"]["serving_default"] == {
        "inputs": {"images": {"dtype": "uint8", "shape": [1, -1, -1, 3]}},
        "outputs": {"segmentation_map": {"dtype": "uint8", "shape": [1, -1, -1]}}}
    card = json.loads((coral_export / "assets.extra" / "model_card.json").read_text())
    assert card["tflite"]["activation_ranges"] == \
        "the source flatbuffer's own quantization parameters"
    assert card["tflite"]["agreement_with_serve_quantized"] == 1.0
    assert "synthetic frames" in card["tflite"]["agreement_measured_on"]


def test_depth_multiplier_half_imports_and_runs(shared_models, photos, tmp_path):
    model_path = shared_models / CORAL_DM05
    export_dir = export_file(model_path, tmp_path / "dm05")
    frame = {"bird": letterbox(photos["bird_segmentation.bmp"])}
    ours = run_tag(export_dir, "serve_quantized", frame)["bird"]
    theirs = interpreter_maps(model_path, frame)["bird"]
    assert np.mean(ours == theirs) >= 0.99
    assert np.mean(ours == BIRD) > 0.1


# -- MediaPipe selfie: float input, probability output, a MediaPipe custom op -----------
SELFIE = "mediapipe/selfie_segmentation.tflite"


class FloatContext:
    """A bare GraphContext: weights as constants, activations untouched."""

    quantized = False

    def __init__(self, weights):
        self.weights = weights

    def weight(self, name, channel_axis=None):
        return tf.constant(self.weights[name])

    def activation(self, name, tensor):
        return tensor


def without_last_ops(raw: bytes, keep: int, output: int) -> bytes:
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(raw, 0))
    model.subgraphs[0].operators = model.subgraphs[0].operators[:keep]
    model.subgraphs[0].outputs = [output]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_selfie_body_matches_the_interpreter(shared_models, photos, tmp_path):
    """Plain TFLite cannot run the custom op, so compare everything before it (244
    operators: fp16 weights, HARD_SWISH, squeeze-excite MUL/LOGISTIC, resizes)."""
    body = tmp_path / "selfie_body.tflite"
    body.write_bytes(without_last_ops((shared_models / SELFIE).read_bytes(), 244, 245))
    model = tflite.load(body)
    frame = cv2.resize(photos["grace_hopper.bmp"], (256, 256)).astype(np.float32)[None]
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        images = tf.compat.v1.placeholder(tf.float32, [1, 256, 256, 3])
        ours = sess.run(model.forward(images * model.preprocessing.scale,
                                      FloatContext(model.weights)), {images: frame})
    interpreter = tf.lite.Interpreter(str(body))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], frame / 255)
    interpreter.invoke()
    theirs = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert ours.shape == theirs.shape == (1, 128, 128, 16)
    assert np.max(np.abs(ours - theirs)) < 1e-3 * max(np.max(np.abs(theirs)), 1.0)


def test_selfie_imports_as_a_person_mask(shared_models, photos, coral_export, tmp_path):
    model = tflite.load(shared_models / SELFIE)
    assert model.input_size == (256, 256) and model.output == "probabilities"
    assert model.num_classes == 2 and model.source["input_type"] == "FLOAT32"
    export_dir = export_file(shared_models / SELFIE, tmp_path / "selfie")
    people = {n: photos[n] for n in ("astronaut.png", "grace_hopper.bmp")}
    selfie = run_tag(export_dir, "serve", people)
    deeplab = run_tag(coral_export, "serve", people)
    ious = {n: iou(selfie[n] == 1, deeplab[n] == 15) for n in people}
    assert min(ious.values()) >= 0.65 and np.mean(list(ious.values())) >= 0.75, ious


# -- another shape of model, made here: float input and output ------------------------
def tiny_net() -> tf.types.experimental.ConcreteFunction:
    """A small float network: conv (SAME, stride 2), depthwise, pad, mean, mul, sub,
    concat, conv with bias, resize back (half-pixel centers). Random weights, fixed seed."""
    rng = np.random.default_rng(7)
    k1 = tf.constant(rng.normal(0, 0.3, (3, 3, 3, 8)), tf.float32)
    k2 = tf.constant(rng.normal(0, 0.3, (3, 3, 8, 1)), tf.float32)
    k3 = tf.constant(rng.normal(0, 0.3, (1, 1, 16, 4)), tf.float32)
    b3 = tf.constant(rng.normal(0, 0.3, (4,)), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([1, 33, 33, 3], tf.float32, name="image")])
    def net(x):
        y = tf.nn.relu6(tf.nn.conv2d(x, k1, 2, "SAME"))
        y = tf.nn.relu(tf.nn.depthwise_conv2d(tf.pad(y, [[0, 0], [1, 1], [1, 1], [0, 0]]),
                                              k2, [1, 1, 1, 1], "VALID"))
        pooled = tf.reduce_mean(y, axis=[1, 2], keepdims=True)
        y = tf.concat([y * 1.5 - 0.25, y - pooled], axis=-1)
        y = tf.nn.conv2d(y, k3, 1, "SAME") + b3
        return tf.compat.v1.image.resize_bilinear(y, [33, 33], half_pixel_centers=True)

    return net


@pytest.fixture(scope="module")
def float_tflite(tmp_path_factory) -> Path:
    net = tiny_net()
    probabilities = tf.function(lambda x: tf.nn.softmax(net(x)),
                                input_signature=net.input_signature)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [probabilities.get_concrete_function()], probabilities)
    path = tmp_path_factory.mktemp("float") / "tiny.tflite"
    path.write_bytes(converter.convert())
    return path


def test_int8_per_channel_model_matches_the_interpreter(tmp_path):
    """Full-integer quantization as today's converter does it: int8, per-channel
    filters, uint8 input (QUANTIZE to int8), int8 output."""
    from exporters.deeplab import synthetic_image

    net = tiny_net()

    def calibration():
        for seed in range(20):
            yield [synthetic_image(33, 33, seed=seed)[None].astype(np.float32) / 255]

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [net.get_concrete_function()], net)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type, converter.inference_output_type = tf.uint8, tf.int8
    path = tmp_path / "int8.tflite"
    path.write_bytes(converter.convert())
    fb = tflite.read(path)
    assert any(t.dtype == "INT8" and t.quantization.scale.size > 1 for t in fb.tensors
               if t.is_constant and t.quantization is not None)  # per-channel filters
    export_dir = export_file(path, tmp_path / "int8")
    frames = {f"s{i}": synthetic_image(33, 33, seed=30 + i) for i in range(4)}
    expected = {name: logits.argmax(-1)
                for name, logits in interpreter_maps(path, frames).items()}
    ours = run_tag(export_dir, "serve_quantized", frames)
    assert np.mean([np.mean(ours[n] == expected[n]) for n in frames]) >= 0.99


def test_float_model_matches_the_interpreter(float_tflite, tmp_path):
    from exporters.deeplab import synthetic_image

    model = tflite.load(float_tflite)
    assert model.output == "probabilities" and model.num_classes == 4
    assert model.preprocessing.scale == pytest.approx(1 / 255)  # float input: RGB/255
    export_dir = export_file(float_tflite, tmp_path / "tiny")
    frames = {f"s{i}": synthetic_image(33, 33, seed=i) for i in range(3)}
    interpreter = tf.lite.Interpreter(str(float_tflite))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    with graphs.loaded(export_dir, "serve") as run:
        for frame in frames.values():
            interpreter.set_tensor(inp["index"], frame[None].astype(np.float32) / 255)
            interpreter.invoke()
            expected = interpreter.get_tensor(out["index"])[0].argmax(-1)
            assert np.mean(run("serving_default", {"images": frame[None]})[0]
                           == expected) >= 0.999


# -- refusals: a clear error and nothing under BASE -------------------------------------
def refused(source: Path, base: Path, error: type, *words: str) -> None:
    with pytest.raises(error) as caught:
        command.main([str(source), "--output", str(base), "--quiet"])
    for word in words:
        assert word in str(caught.value)
    assert tree(base) == []


def test_unknown_custom_op_is_refused_by_name_and_index(shared_models, tmp_path):
    # The selfie model with its custom op renamed to one nobody implements.
    raw = (shared_models / "mediapipe/selfie_segmentation.tflite").read_bytes()
    renamed = tmp_path / "selfie_renamed.tflite"
    renamed.write_bytes(raw.replace(b"Convolution2DTransposeBias",
                                    b"Convolution2DTransposeBiaX"))
    refused(renamed, tmp_path / "selfie", Unimplemented,
            "operator 244 is CUSTOM:Convolution2DTransposeBiaX")


def test_truncated_flatbuffer(coral, tmp_path):
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(coral.read_bytes()[: coral.stat().st_size // 2])
    refused(cut, tmp_path / "base", DataLoss, "cut.tflite", "truncated")


def test_not_a_flatbuffer(tmp_path, capsys):
    from edgeseg.cli import main as edgeseg

    fake = tmp_path / "model.tflite"
    fake.write_text("this is not a model\n")
    refused(fake, tmp_path / "base", InvalidArgument, "not a TFLite flatbuffer", "TFL3")
    # On the command line: one line on stderr, a usage-type exit status.
    assert edgeseg(["export", str(fake), "--output", str(tmp_path / "base"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.tflite is not a TFLite flatbuffer" in err[0]


def test_unsupported_builtin_op_is_named_with_its_index(tmp_path):
    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32)])
    def net(x):
        return tf.nn.softmax(tf.math.cos(x) * 2.0)

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [net.get_concrete_function()], net)
    path = tmp_path / "cos.tflite"
    path.write_bytes(converter.convert())
    refused(path, tmp_path / "base", Unimplemented, "operator 0 is COS", "cos.tflite")
