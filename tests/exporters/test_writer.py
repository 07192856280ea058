"""The one writer: two tag-sets over one checkpoint, no devices, three signatures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from exporters import graphs
from exporters.deeplab import synthetic_image
from exporters.writer import export

from .conftest import SIZE, tiny_model


def read_proto(version_dir: Path) -> saved_model_pb2.SavedModel:
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    return proto


def op_types(meta) -> set[str]:
    ops = {n.op for n in meta.graph_def.node}
    for function in meta.graph_def.library.function:
        ops |= {n.op for n in function.node_def}
    return ops


def test_exactly_two_tag_sets(exported):
    proto = read_proto(exported.path)
    assert sorted(list(m.meta_info_def.tags) for m in proto.meta_graphs) == [
        ["serve"], ["serve_quantized"]]
    for meta in proto.meta_graphs:
        assert set(meta.signature_def) == {"serving_default", "predict_images",
                                           "predict_encoded"}


def test_one_checkpoint_holds_each_weight_once(exported):
    files = sorted(p.name for p in (exported.path / "variables").iterdir())
    assert files == ["variables.data-00000-of-00001", "variables.index"]
    data = (exported.path / "variables" / files[0]).stat().st_size
    assert 0.98 * exported.weight_bytes <= data <= 1.02 * exported.weight_bytes
    # Both meta-graphs restore the same checkpoint: same saver file pattern, and the
    # int8 graph declares the same variables rather than storing int8 copies.
    proto = read_proto(exported.path)
    names = [sorted(n.name for n in m.graph_def.node if n.op == "VarHandleOp")
             for m in proto.meta_graphs]
    assert names[0] == names[1] and len(names[0]) == 110
    assert len({m.saver_def.filename_tensor_name.split("/")[0] for m in proto.meta_graphs}) == 1


def test_int8_graph_quantizes_and_float_graph_does_not(exported):
    metas = {m.meta_info_def.tags[0]: m for m in read_proto(exported.path).meta_graphs}
    assert "FakeQuantWithMinMaxVarsPerChannel" in op_types(metas["serve_quantized"])
    assert "FakeQuantWithMinMaxArgs" in op_types(metas["serve_quantized"])  # calibrated
    assert not {o for o in op_types(metas["serve"]) if o.startswith("FakeQuant")}


def test_no_device_strings_anywhere(exported):
    proto = read_proto(exported.path)
    assert sum(len(m.graph_def.library.function) for m in proto.meta_graphs) > 0
    assert [n.name for n in graphs.iter_nodes(proto) if n.device] == []


def test_devices_cleared_for_gpu_pinned_model_functions_included(tmp_path):
    result = export(tiny_model(gpu_pinned=True), tmp_path / "pinned")
    proto = read_proto(result.path)
    functions = [f for m in proto.meta_graphs for f in m.graph_def.library.function]
    assert any(n.op == "Relu" for f in functions for n in f.node_def)  # the pinned function
    assert [n.name for n in graphs.iter_nodes(proto) if n.device] == []


def test_strip_devices_reaches_function_libraries(tmp_path):
    """The case clear_devices=True misses: a device inside graph_def.library."""
    proto = saved_model_pb2.SavedModel()
    meta = proto.meta_graphs.add()
    meta.graph_def.node.add(name="a", op="NoOp", device="/device:GPU:0")
    function = meta.graph_def.library.function.add()
    function.node_def.add(name="b", op="Relu", device="/job:worker/device:GPU:1")
    path = tmp_path / "saved_model.pb"
    path.write_bytes(proto.SerializeToString())
    assert graphs.strip_devices(path) == 2
    assert graphs.strip_devices(path) == 0


@pytest.mark.parametrize("tag", ["serve", "serve_quantized"])
def test_each_tag_loads_with_the_tf1_loader_and_every_signature_runs(exported, tag):
    frame = synthetic_image(50, 77, seed=5)
    png = cv2.imencode(".png", frame[:, :, ::-1])[1].tobytes()
    with graphs.loaded(exported.path, tag) as run:
        out = run("serving_default", {"images": np.stack([frame, frame[::-1]])})
        assert out.dtype == np.uint8 and out.shape == (2, 50, 77)
        feeds = {"images": frame[None].astype(np.float32),
                 "height": np.array([50], np.int32), "width": np.array([77], np.int32)}
        tutorial = run("predict_images", feeds)
        assert tutorial.dtype == np.int64 and tutorial.shape == (1, 50, 77)
        np.testing.assert_array_equal(tutorial[0], out[0])
        feeds.update(height=np.array([100], np.int32), width=np.array([154], np.int32))
        bigger = run("predict_images", feeds)
        assert bigger.shape == (1, 100, 154)
        assert set(np.unique(bigger)) == set(np.unique(out[0]))
        encoded = run("predict_encoded", {"images": np.array([png, png], dtype=object)})
        assert encoded.dtype == np.uint8
        np.testing.assert_array_equal(encoded[0], out[0])


def test_predict_encoded_refuses_mixed_sizes(exported):
    a = cv2.imencode(".png", synthetic_image(40, 40))[1].tobytes()
    b = cv2.imencode(".jpg", synthetic_image(30, 40))[1].tobytes()
    with graphs.loaded(exported.path, "serve") as run:
        with pytest.raises(tf.errors.InvalidArgumentError, match="size of the first"):
            run("predict_encoded", {"images": np.array([a, b], dtype=object)})


@pytest.mark.parametrize("tag", ["serve", "serve_quantized"])
def test_each_tag_loads_with_tf_saved_model_load(exported, tag):
    loaded = tf.saved_model.load(str(exported.path), tags=[tag])
    frame = synthetic_image(SIZE, SIZE)
    out = loaded.signatures["serving_default"](images=tf.constant(frame[None]))
    assert out["segmentation_map"].shape == (1, SIZE, SIZE)


def test_saved_model_cli_lists_both_tag_sets(exported):
    cli = Path(sys.executable).with_name("saved_model_cli")
    shown = subprocess.run([str(cli), "show", "--dir", str(exported.path), "--all"],
                           capture_output=True, text=True, timeout=120, check=True).stdout
    assert "tag-set: 'serve'" in shown and "tag-set: 'serve_quantized'" in shown
    assert "segmentation_map" in shown


def test_same_map_as_the_in_memory_model(exported, keras_model):
    """The Keras model (batch norm unfolded, eager) and the loaded export agree."""
    frames = np.stack([synthetic_image(SIZE, SIZE, seed=s) for s in range(3)])
    expected = np.asarray(keras_model(frames.astype(np.float32))).argmax(-1)
    with graphs.loaded(exported.path, "serve") as run:
        got = run("serving_default", {"images": frames})
    assert (got == expected).mean() >= 0.999
    assert len(np.unique(expected)) >= 5  # a constant map would agree trivially


def test_letterbox_matches_padding_by_hand(exported, keras_model):
    """A frame of full height and 40 columns is padded on the right with 127.5, run,
    and cropped back — the same as padding it by hand and running Keras."""
    frame = synthetic_image(SIZE, 40, seed=8)
    padded = np.full((1, SIZE, SIZE, 3), 127.5, np.float32)
    padded[0, :, :40] = frame
    expected = np.asarray(keras_model(padded)).argmax(-1)[0, :, :40]
    with graphs.loaded(exported.path, "serve") as run:
        got = run("serving_default", {"images": frame[None]})[0]
    assert got.shape == (SIZE, 40)
    assert (got == expected).mean() >= 0.999


def test_quantized_graph_reads_the_same_variables(exported, calibration_dir):
    """Same variables: the int8 map tracks the float one; agreement is reported."""
    agreement = exported.pixel_agreement
    assert agreement is not None and 0.0 < agreement <= 1.0
    assert exported.card["calibration"] == {"images": 3, "pixel_agreement": agreement}
    frame = synthetic_image(SIZE, SIZE, seed=21)
    with graphs.loaded(exported.path, "serve") as run:
        float_map = run("serving_default", {"images": frame[None]})
    with graphs.loaded(exported.path, "serve_quantized") as run:
        int8_map = run("serving_default", {"images": frame[None]})
    assert (float_map == int8_map).mean() > 0.25  # random weights: many near-ties
    assert not np.array_equal(float_map, int8_map) or agreement == 1.0


def test_assets(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    extra = exported.path / "assets.extra"
    records = list(tf.data.TFRecordDataset(str(extra / "tf_serving_warmup_requests")))
    assert 1 <= len(records) <= 1000
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        images = tf.make_ndarray(request.inputs["images"])
        assert images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3
    labels = (extra / "labels.txt").read_text().split()
    assert labels[0] == "background" and labels[15] == "person" and len(labels) == 21
    palette = json.loads((extra / "palette.json").read_text())
    assert palette[15] == [192, 128, 128] and len(palette) == 21
    card = json.loads((extra / "model_card.json").read_text())
    assert card["input_size"] == [SIZE, SIZE] and card["classes"] == labels
    assert card["quantization"]["activations"].startswith("int8, per tensor, calibrated on 3")
    assert card["kit_version"] and card["preprocessing"]["resize"] == "letterbox"
