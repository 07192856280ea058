"""TfLiteLoader in-process with the real LiteRT runtime: signatures (TF Serving's generated
ones, its metadata SignatureDefs, LiteRT-native ones), runs, resizing and load errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from tensorflow.core.protobuf import meta_graph_pb2

from edgeseg.errors import DataLoss, InvalidArgument, NotFound, Status, Unimplemented
from edgeseg.serving import predict
from edgeseg.serving.loader import Loader, version_loader
from edgeseg.serving.tflite_loader import TfLiteLoader, TfLiteOptions

from .conftest import REPO, SHARED, tfs_data
from .tflite_models import custom_op_model, signed_model, with_legacy_signature_defs

OPTIONS = TfLiteOptions(pools=1, per_pool=2, num_threads=1)
CORAL = SHARED / "models" / "deeplab" / "deeplabv3_mnv2_pascal_quant.tflite"


def _hpt_bytes() -> bytes:
    return (tfs_data("saved_model_half_plus_two_tflite") / "00000123" / "model.tflite").read_bytes()


def _folder(tmp_path, data: bytes, name: str = "m"):
    folder = tmp_path / name / "1"
    folder.mkdir(parents=True)
    (folder / "model.tflite").write_bytes(data)
    return folder


def _shape(info):
    return [d.size for d in info.tensor_shape.dim]


def test_a_file_without_signatures_gets_tf_servings_generated_serving_default(tmp_path):
    model = TfLiteLoader(_folder(tmp_path, _hpt_bytes()), OPTIONS).load()
    try:
        (key, sig), = model.signature_defs.items()
        assert key == "serving_default"
        assert sig.method_name == "tensorflow/serving/predict"
        assert (sig.inputs["x"].name, sig.inputs["x"].dtype, _shape(sig.inputs["x"])) == (
            "x", 1, [1, 1])
        assert (sig.outputs["y"].name, sig.outputs["y"].dtype) == ("y", 1)
        # TF Serving's own request: x of shape [1] against [1,1] (the input is resized)
        out = predict.run_signature(model, sig, {"x": np.array([2.0], np.float32)})
        assert out["y"].tolist() == [3.0]
        out = predict.run_signature(model, sig, {"x": np.array([[1.0], [3.0]], np.float32)})
        assert out["y"].tolist() == [[2.5], [3.5]]
    finally:
        model.close()


def test_tf_serving_metadata_signature_defs_are_read_and_their_names_fixed(tmp_path):
    sig = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    for info, name in ((sig.inputs["x"], "x:0"), (sig.outputs["y"], "y:0")):
        info.name, info.dtype = name, 1
        info.tensor_shape.dim.add(size=-1)
        info.tensor_shape.dim.add(size=1)
    path = with_legacy_signature_defs(_hpt_bytes(), {"serving_default": sig},
                                      tmp_path / "legacy" / "1" / "model.tflite")
    model = TfLiteLoader(path.parent, OPTIONS).load()
    try:
        got = model.signature_defs["serving_default"]
        assert (got.inputs["x"].name, got.outputs["y"].name) == ("x", "y")  # ':0' dropped
        assert _shape(got.inputs["x"]) == [-1, 1]  # as stored, not the tensor's [1,1]
        out = predict.run_signature(model, got, {"x": np.array([[4.0]], np.float32)})
        assert out["y"].tolist() == [[4.0]]
    finally:
        model.close()


def test_native_signatures_each_run_in_their_own_subgraph(tmp_path):
    path = signed_model(tmp_path / "signed" / "1" / "model.tflite")
    model = TfLiteLoader(path.parent, OPTIONS).load()
    try:
        assert set(model.signature_defs) == {"serving_default", "double"}
        sig = model.signature_defs["serving_default"]
        assert set(sig.inputs) == {"x"} and set(sig.outputs) == {"y", "z"}
        assert _shape(sig.inputs["x"]) == [-1, 64]  # shape_signature: -1 where dynamic
        x = np.arange(3 * 64, dtype=np.float32).reshape(3, 64)
        out = predict.run_signature(model, sig, {"x": x}, ["y"])
        np.testing.assert_array_equal(out["y"], 0.5 * x + 2)
        double = model.signature_defs["double"]
        out = predict.run_signature(model, double, {"x": np.array([1, 2], np.float32)})
        assert out["doubled"].tolist() == [2.0, 4.0]
    finally:
        model.close()


def test_request_errors_are_the_saved_model_ones(tmp_path):
    model = TfLiteLoader(_folder(tmp_path, _hpt_bytes()), OPTIONS).load()
    sig = model.signature_defs["serving_default"]
    try:
        with pytest.raises(InvalidArgument, match="expected dtype DT_FLOAT, got DT_INT32"):
            predict.run_signature(model, sig, {"x": np.array([[1]], np.int32)})
        with pytest.raises(InvalidArgument, match=r"Sent extra: \{q\}\. Missing but required: "
                                                  r"\{x\}"):
            predict.run_signature(model, sig, {"q": np.array([[1.0]], np.float32)})
        with pytest.raises(InvalidArgument, match="output tensor alias not found"):
            predict.run_signature(model, sig, {"x": np.array([[1.0]], np.float32)}, ["w"])
    finally:
        model.close()


def test_a_shape_the_model_cannot_take_names_the_input_and_the_model_recovers(tmp_path):
    if not CORAL.is_file():
        pytest.skip(f"Coral DeepLab not found at {CORAL} (set EDGESEG_SHARED)")
    model = TfLiteLoader(_folder(tmp_path, CORAL.read_bytes()), TfLiteOptions(1, 1, 2)).load()
    try:
        (alias, info), = model.signature_defs["serving_default"].inputs.items()
        sig = model.signature_defs["serving_default"]
        with pytest.raises(InvalidArgument, match=r"expected shape \[1,513,513,3\], got "
                                                  r"\[1,100,513,3\] \(running the model failed"):
            predict.run_signature(model, sig, {alias: np.zeros((1, 100, 513, 3), np.uint8)})
        out = predict.run_signature(model, sig, {alias: np.zeros((1, 513, 513, 3), np.uint8)})
        assert out["ArgMax"].shape == (1, 513, 513) and out["ArgMax"].dtype == np.int64
    finally:
        model.close()


@pytest.mark.parametrize(("content", "error", "message"), [
    (b"", DataLoss, "is empty"),
    (b"not a flatbuffer\n" * 40, DataLoss, "is not a TFLite model: expected the identifier TFL3"),
    (None, DataLoss, "is truncated or corrupt: the flatbuffer reads past its end"),  # truncated
])
def test_corrupt_files_fail_the_load_with_data_loss(tmp_path, content, error, message):
    data = _hpt_bytes()[:300] if content is None else content
    with pytest.raises(error, match=message):
        TfLiteLoader(_folder(tmp_path, data), OPTIONS).load()


def test_an_op_litert_lacks_fails_the_load_naming_it(tmp_path):
    path = custom_op_model(tmp_path / "custom" / "1" / "model.tflite")
    with pytest.raises(Unimplemented, match="op BesselI0e is not in LiteRT's builtin op "
                                            "resolver") as err:
        TfLiteLoader(path.parent, OPTIONS).load()
    assert err.value.status is Status.UNIMPLEMENTED


def test_version_loader_prefers_model_tflite_only_when_asked_and_present(tmp_path):
    folder = _folder(tmp_path, _hpt_bytes())
    assert isinstance(version_loader(folder, ("serve",), prefer_tflite=True), TfLiteLoader)
    assert isinstance(version_loader(folder, ("serve",)), Loader)
    empty = tmp_path / "sm" / "1"
    empty.mkdir(parents=True)
    assert isinstance(version_loader(empty, ("serve",), prefer_tflite=True), Loader)
    with pytest.raises(NotFound, match="no model.tflite"):
        TfLiteLoader(empty).load()


def test_threads_default_to_the_cpus_shared_out():
    assert TfLiteOptions(1, 1, 3).threads == 3
    assert TfLiteOptions(64, 1).threads == 1


def test_the_tflite_path_never_imports_tensorflow():
    """Issue 12 takes TensorFlow out of a TFLite-only server: the runtime part is ready."""
    path = tfs_data("saved_model_half_plus_two_tflite") / "00000123"
    code = (
        "import sys, numpy as np\n"
        "from edgeseg.serving.tflite_loader import TfLiteLoader\n"
        f"m = TfLiteLoader({str(path)!r}).load()\n"
        "print(m.run({'x': np.array([[2.0]], np.float32)}, ['y'])[0].tolist())\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] == 'tensorflow'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=120, check=True)
    assert result.stdout.split("\n")[:2] == ["[[3.0]]", "[]"], result.stdout + result.stderr


def _warmup(folder, x: float, key: str = "x") -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog()
    log.predict_log.request.model_spec.name = "m"
    log.predict_log.request.inputs[key].CopyFrom(tf.make_tensor_proto(np.float32([[x]])))
    (folder / "assets.extra").mkdir()
    with tf.io.TFRecordWriter(str(folder / "assets.extra" / "tf_serving_warmup_requests")) as w:
        w.write(log.SerializeToString())


def test_warmup_records_replay_against_model_tflite(tmp_path):
    good = _folder(tmp_path, _hpt_bytes(), "good")
    _warmup(good, 1.0)
    TfLiteLoader(good, OPTIONS).load().close()
    bad = _folder(tmp_path, _hpt_bytes(), "bad")
    _warmup(bad, 1.0, key="images")  # recorded for another signature: the load fails
    with pytest.raises(InvalidArgument, match="warmup record 1 of .* failed: .*Sent extra: "
                                              r"\{images\}"):
        TfLiteLoader(bad, OPTIONS).load()


def test_batching_merges_concurrent_calls_into_one_invoke(tmp_path):
    import threading

    from edgeseg.serving.batching import BatchingOptions

    path = signed_model(tmp_path / "signed" / "1" / "model.tflite")
    options = BatchingOptions(max_batch_size=4, batch_timeout_s=0.2, num_batch_threads=1)
    model = TfLiteLoader(path.parent, OPTIONS, batching=options).load()
    sig = model.signature_defs["serving_default"]
    results, sizes = {}, []
    model._on_batch = sizes.append  # observe the batches

    def call(k: int) -> None:
        x = np.full((1, 64), k, np.float32)
        results[k] = predict.run_signature(model, sig, {"x": x}, ["y"])["y"]

    threads = [threading.Thread(target=call, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    model.close()
    assert {k: float(v[0, 0]) for k, v in results.items()} == {k: 0.5 * k + 2 for k in range(4)}
    assert max(sizes) > 1  # at least two calls shared one invoke
