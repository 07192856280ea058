"""`pip install edgeseg` without extras: no TensorFlow, yet the agent and the CLI work.

The light venv (.venv-light) is built by `make test` (`pip install .`, an install step: nothing
downloads here). In it: `import tensorflow` fails; `edgeseg agent --help` and `edgeseg serve
--help` work; `edgeseg export` says in one line which extra to install and exits 2; and the
light `edgeseg serve --prefer_tflite_model=true` answers the official stubs (full venv,
test side) on an export's model.tflite without ever importing TensorFlow (no TF library in
its /proc/PID/maps), and the light agent streams masks from a clip through it to a real
Mosquitto. Outside make, without .venv-light, those tests skip.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.services import _stop, free_port, wait_port, wait_until

REPO = Path(__file__).resolve().parents[1]
LIGHT = Path(os.environ.get("EDGESEG_LIGHT_VENV", REPO / ".venv-light"))
HINT = "pip install 'edgeseg[tensorflow]'"


def _light_env() -> dict[str, str]:
    """The light venv's own installed copy, not this checkout (no PYTHONPATH)."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def light(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(LIGHT / "bin" / args[0]), *args[1:]], cwd=cwd, env=_light_env(),
                          capture_output=True, text=True, timeout=timeout)


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory) -> Path:
    if not (LIGHT / "bin" / "edgeseg").exists():
        pytest.skip(f"{LIGHT} is absent: `make light-venv` (part of `make test`) builds it")
    where = light("python", "-c", "import edgeseg, os; print(os.path.dirname(edgeseg.__file__))",
                  cwd=tmp_path_factory.mktemp("light"))
    assert where.returncode == 0, where.stderr
    if _digest(Path(where.stdout.strip())) != _digest(REPO / "edgeseg"):
        pytest.skip(f"{LIGHT} holds an older edgeseg than this checkout: run `make light-venv`")
    return LIGHT


def test_tensorflow_is_not_installed(light_venv, tmp_path):
    for module in ("tensorflow", "tensorflow_serving"):
        out = light("python", "-c", f"import {module}", cwd=tmp_path)
        assert out.returncode != 0 and "ModuleNotFoundError" in out.stderr, module


@pytest.mark.parametrize("command", ["agent", "serve", "subscribe", "view", "models"])
def test_help_works_without_tensorflow(light_venv, tmp_path, command):
    out = light("edgeseg", command, "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "usage: edgeseg " + command in out.stdout and "Traceback" not in out.stderr


def test_export_names_the_extra_in_one_line(light_venv, tmp_path):
    out = light("edgeseg", "export", "deeplabv3", "--output", str(tmp_path / "m"), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and HINT in out.stderr, out.stderr
    assert not (tmp_path / "m").exists()


def test_the_message_without_tensorflow_is_the_same_here(tmp_path):
    """The same path in this (full) venv, TensorFlow hidden: runs even without .venv-light."""
    code = ("import sys; sys.modules['tensorflow'] = sys.modules['tensorflow_serving'] = None; "
            "from edgeseg.cli import main; "
            f"sys.exit(main(['export', 'deeplabv3', '--output', {str(tmp_path / 'm')!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 2 and out.stderr.strip() == (
        f"edgeseg export: this command needs TensorFlow, which is not installed; "
        f"install it with: {HINT}")


# -- the light server (LiteRT, no TensorFlow) and the light agent, end to end --

TF_LIBRARIES = ("libtensorflow_framework", "_pywrap_tensorflow", "libtensorflow_cc")
TFLITE_CLASS = 15  # the stand-in model.tflite paints every pixel this class


def _constant_tflite(path: Path) -> None:
    """A model.tflite with the export's serving_default contract (uint8 ``images`` of any
    size in, uint8 ``segmentation_map`` of that size out), for an export made before the
    exporter wrote one: every pixel is TFLITE_CLASS."""
    import tensorflow as tf  # the full venv, test side only

    class Constant(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8,
                                                    name="images")])
        def serve(self, images):
            size = tf.shape(images)
            return {"segmentation_map": tf.fill([1, size[1], size[2]],
                                                tf.constant(TFLITE_CLASS, tf.uint8))}

    module = Constant()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.serve.get_concrete_function()], module)
    path.write_bytes(converter.convert())


@pytest.fixture(scope="module")
def tflite_export(tmp_path_factory) -> Path:
    """A small DeepLab export made by the full venv's `edgeseg export`, with a model.tflite."""
    base = tmp_path_factory.mktemp("light-e2e") / "deeplab"
    out = subprocess.run([sys.executable, "-m", "edgeseg", "export", "deeplabv3", "--output",
                          str(base), "--input-size", "65", "--quiet"], cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    (version,) = [d for d in base.iterdir() if d.name.isdigit()]
    if not (version / "model.tflite").is_file():
        _constant_tflite(version / "model.tflite")
    return base


def start_server(command: list[str], base: Path, log_path: Path, env: dict[str, str]):
    """`edgeseg serve --prefer_tflite_model=true` on ``base``; (process, address) once
    it listens."""
    port = free_port()
    log = log_path.open("w")
    proc = subprocess.Popen([*command, "serve", f"--port={port}", "--grpc_bind_address=127.0.0.1",
                             "--model_name=deeplab", f"--model_base_path={base}",
                             "--prefer_tflite_model=true"], cwd=log_path.parent, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        wait_until(lambda: proc.poll() is not None or "listening" in log_path.read_text(),
                   120, 0.2, "edgeseg serve to listen")
        assert proc.poll() is None, log_path.read_text()[-2000:]
        wait_port(port)
    except BaseException:
        _stop(proc)
        raise
    return proc, f"127.0.0.1:{port}"


def tensorflow_libraries(pid: int) -> list[str]:
    """TensorFlow's shared libraries mapped into process ``pid`` (any `import tensorflow`
    maps them)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return sorted({line.split()[-1] for line in maps.splitlines()
                   if any(lib in line for lib in TF_LIBRARIES)})


@pytest.fixture(scope="module")
def light_server(light_venv, tflite_export):
    """`edgeseg serve --prefer_tflite_model=true` from the light venv on the export."""
    proc, address = start_server([str(LIGHT / "bin" / "edgeseg")], tflite_export,
                                 tflite_export.parent / "light-serve.log", _light_env())
    try:
        yield proc, address
    finally:
        _stop(proc)


def _predict(address: str, frame: np.ndarray):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import (  # the official stubs, client side
        get_model_metadata_pb2,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    with grpc.insecure_channel(address) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "deeplab"
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(frame))
        response = stub.Predict(request, timeout=60)
        meta = stub.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=request.model_spec, metadata_field=["signature_def"]), timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert meta.metadata["signature_def"].Unpack(signatures)
    return response, tf.make_ndarray(response.outputs["segmentation_map"]), signatures


def test_the_light_server_answers_the_official_stubs_without_tensorflow(light_server):
    proc, address = light_server
    frame = np.random.default_rng(0).integers(0, 255, (1, 48, 64, 3), dtype=np.uint8)
    response, class_map, signatures = _predict(address, frame)
    assert response.model_spec.name == "deeplab"
    assert response.model_spec.signature_name == "serving_default"
    assert class_map.shape == (1, 48, 64) and class_map.dtype == np.uint8
    sig = signatures.signature_def["serving_default"]
    assert set(sig.inputs) == {"images"} and "segmentation_map" in sig.outputs
    assert proc.poll() is None
    assert tensorflow_libraries(proc.pid) == []


def test_the_full_venv_serving_only_model_tflite_never_imports_tensorflow(tflite_export):
    """The same server in the full venv (TensorFlow installed): still not imported."""
    work = tflite_export.parent
    proc, address = start_server([sys.executable, "-m", "edgeseg"], tflite_export,
                                 work / "full-serve.log", {**os.environ, "PYTHONPATH": str(REPO)})
    try:
        frame = np.zeros((1, 40, 40, 3), np.uint8)
        _, class_map, _ = _predict(address, frame)
        assert class_map.shape == (1, 40, 40)
        assert tensorflow_libraries(proc.pid) == []
        # the check itself can fail: a process that imported TensorFlow shows its libraries
        import tensorflow  # noqa: F401

        assert tensorflow_libraries(os.getpid())
    finally:
        _stop(proc)


def _clip(path: Path, count: int = 24) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (128, 96))
    for i in range(count):
        frame = np.full((96, 128, 3), 40, np.uint8)
        cv2.circle(frame, (20 + 3 * i, 48), 20, (30, 200, 220), -1)
        writer.write(frame)
    writer.release()
    return path


def test_light_agent_streams_masks_to_mosquitto(light_server, mosquitto, recorder_factory,
                                                tmp_path):
    """The light agent through the light server: no TensorFlow anywhere on the path."""
    rec = recorder_factory(mosquitto.port, "edgeseg/light/cam/#")
    clip = _clip(tmp_path / "clip.avi")
    agent = subprocess.run(
        [str(LIGHT / "bin" / "edgeseg"), "agent", "--source", str(clip), "--server",
         light_server[1], "--mqtt", mosquitto.address, "--device-id", "light", "--camera", "cam",
         "--max-in-flight", "1"], cwd=tmp_path, env=_light_env(), capture_output=True,
        text=True, timeout=180)
    assert agent.returncode == 0, agent.stderr[-3000:]
    wait_until(lambda: rec.statuses()[-1:] == ["offline"], 10, what="offline at the end")
    masks = rec.of("mask")
    assert len(masks) >= 12, f"{len(masks)} masks for 24 frames: {agent.stderr[-2000:]}"
    assert all(m["payload"].startswith(b"\x89PNG") for m in masks)
    decoded = cv2.imdecode(np.frombuffer(masks[-1]["payload"], np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (96, 128)  # the class map at the frame's size
