"""A version with empty or truncated files is refused (END with DATA_LOSS naming the file)
and the version already serving keeps answering: integrity.py alone, then a real server."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from tensorflow_serving.apis import get_model_status_pb2

from edgeseg.errors import DataLoss, Status
from edgeseg.serving.integrity import check_saved_model, check_tflite

from .conftest import SHARED, copy_version, tfs_data
from .test_server_lifecycle import states, wait_for
from .tfs_requests import predict_request

STATE = get_model_status_pb2.ModelVersionStatus.State
HALF_PLUS_TWO = "saved_model_half_plus_two_cpu/00000123"
DATA = "variables/variables.data-00000-of-00001"
INDEX = "variables/variables.index"


def writable_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for root, dirs, files in os.walk(dst):
        for name in [*dirs, *files]:
            os.chmod(os.path.join(root, name), 0o755 if name in dirs else 0o644)
    return dst


def truncate(name: str, keep: float) -> Callable[[Path], None]:
    def damage(version: Path) -> None:
        path = version / name
        path.write_bytes(path.read_bytes()[:int(path.stat().st_size * keep)])
    return damage


# name, damage, words the error must hold
DAMAGES = [
    ("short-data", truncate(DATA, 0.5), ["variables.data-00000-of-00001 10 bytes",
                                         "truncated or corrupt"]),
    ("empty-data", truncate(DATA, 0), ["variables.data-00000-of-00001 0 bytes"]),
    ("empty-graph", truncate("saved_model.pb", 0), ["saved_model.pb is empty"]),
    ("short-graph", truncate("saved_model.pb", 0.5), ["saved_model.pb (6053 bytes)",
                                                      "truncated or corrupt"]),
    ("empty-index", truncate(INDEX, 0), ["variables.index is empty"]),
    ("short-index", truncate(INDEX, 0.6), ["variables.index 103 bytes",
                                           "truncated or corrupt"]),
]


def test_a_good_saved_model_passes(tmp_path):
    check_saved_model(tfs_data(HALF_PLUS_TWO))
    check_saved_model(tfs_data("saved_model_half_plus_two_tf2_cpu/00000123"))


@pytest.mark.parametrize(("damage", "words"), [d[1:] for d in DAMAGES],
                         ids=[d[0] for d in DAMAGES])
def test_damaged_saved_model_is_refused(tmp_path, damage, words):
    version = writable_copy(tfs_data(HALF_PLUS_TWO), tmp_path / "1")
    damage(version)
    with pytest.raises(DataLoss) as raised:
        check_saved_model(version)
    assert str(raised.value).startswith(f"cannot load SavedModel {version}: ")
    for word in words:
        assert word in str(raised.value)


def tflite_models() -> list[Path]:
    found = sorted((SHARED / "models").rglob("*.tflite")) if (SHARED / "models").is_dir() else []
    found += [tfs_data("saved_model_half_plus_two_tflite/00000123/model.tflite")]
    return found


def test_real_tflite_models_pass_and_every_cut_into_them_is_refused(tmp_path):
    cut_file = tmp_path / "model.tflite"
    for model in tflite_models():
        check_tflite(model)
        data = model.read_bytes()
        end = _flatbuffer_end(data)
        for keep in (0, 3, 8, 100, len(data) // 3, len(data) // 2, end - 64, end - 1):
            cut_file.write_bytes(data[:keep])
            with pytest.raises(DataLoss, match="model.tflite") as raised:
                check_tflite(cut_file)
            assert f"({keep} bytes)" in str(raised.value) or "empty" in str(raised.value)


def _flatbuffer_end(data: bytes) -> int:
    """MediaPipe appends a metadata zip after the flatbuffer; it is not the model's."""
    zip_at = data.find(b"PK\x03\x04")
    return zip_at if zip_at > 0 else len(data)


def test_tflite_with_another_identifier_is_refused(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00XXXX" + b"\x00" * 64)
    with pytest.raises(DataLoss, match=r"expected the identifier TFL3 at bytes 4\.\.8"):
        check_tflite(path)


# --- a real server: version 1 serves, damaged versions end with DATA_LOSS ---------------

@pytest.fixture(scope="module")
def guarded(serve, tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "guarded"
    base.mkdir()
    copy_version(tfs_data(HALF_PLUS_TWO), base, 1)
    server = serve("--model_name=guarded", f"--model_base_path={base}",
                   "--file_system_poll_wait_seconds=1", "--max_num_load_retries=0")
    server.base = base
    wait_for(lambda: STATE.Name(states(server, "guarded")[1].state) == "AVAILABLE",
             what="version 1 AVAILABLE")
    return server


@pytest.mark.parametrize(("version", "damage", "words"),
                         [(n, d[1], d[2]) for n, d in enumerate(DAMAGES[:4], start=2)],
                         ids=[d[0] for d in DAMAGES[:4]])
def test_server_refuses_a_damaged_version_and_keeps_serving(guarded, tmp_path, version,
                                                            damage, words):
    staging = writable_copy(tfs_data(HALF_PLUS_TWO), tmp_path / "staged")
    damage(staging)
    staging.rename(guarded.base / str(version))

    def ended() -> bool:
        found = states(guarded, "guarded").get(version)
        return found is not None and STATE.Name(found.state) == "END"

    wait_for(ended, what=f"version {version} to be refused")
    refused = states(guarded, "guarded")[version]
    assert refused.status.error_code == Status.DATA_LOSS
    for word in [str(guarded.base / str(version)), *words]:
        assert word in refused.status.error_message
    assert STATE.Name(states(guarded, "guarded")[1].state) == "AVAILABLE"
    response = guarded.predict.Predict(predict_request("guarded", [[2.0]]), timeout=30)
    assert (response.model_spec.version.value, response.outputs["y"].float_val[0]) == (1, 3.0)
