"""Tag-sets: --saved_model_tags picks the meta-graph; per-model tags serve both side by side.

The model is ONE SavedModel with {serve} (y = x + 1) and {serve_quantized} (y = x + 100)
sharing one variables checkpoint, as `edgeseg export` writes them.
"""

from __future__ import annotations

import os
import time

import grpc
import pytest

from .models import two_tag_model
from .tfs_requests import predict_request


@pytest.fixture(scope="module")
def tagged(serve, tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "two_tags"
    two_tag_model(base / "1")
    config = tmp_path_factory.mktemp("config") / "models.config"
    config.write_text(f"""model_config_list {{
      config {{ name: "float" base_path: "{base}" saved_model_tags: "serve" }}
      config {{ name: "int8" base_path: "{base}" }}
    }}""")
    server = serve(f"--model_config_file={config}", "--saved_model_tags=serve_quantized",
                   "--model_config_file_poll_wait_seconds=1",
                   "--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=1")
    server.config, server.base = config, base
    return server


@pytest.mark.parametrize(("name", "expected"), [("int8", [101.0, 102.0]), ("float", [2.0, 3.0])],
                         ids=["flag-serve_quantized", "per-model-serve"])
def test_each_model_serves_its_meta_graph(tagged, name, expected):
    response = tagged.predict.Predict(predict_request(name, [1.0, 2.0]), timeout=30)
    assert list(response.outputs["y"].float_val) == expected


def write_atomically(path, text):
    staging = path.with_suffix(".partial")
    staging.write_text(text)
    os.replace(staging, path)


def answer(server, name):
    try:
        response = server.predict.Predict(predict_request(name, [1.0]), timeout=30)
    except grpc.RpcError as exc:
        return exc.code()
    return response.outputs["y"].float_val[0]


def eventually(fn, expected, timeout=60.0):
    deadline = time.monotonic() + timeout
    while (got := fn()) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    return got


def test_config_file_changes_are_polled_and_bad_ones_ignored(tagged):
    write_atomically(tagged.config, f"""model_config_list {{
      config {{ name: "float" base_path: "{tagged.base}" saved_model_tags: "serve" }}
      config {{ name: "renamed" base_path: "{tagged.base}" }}
    }}""")
    assert eventually(lambda: answer(tagged, "renamed"), 101.0) == 101.0
    assert eventually(lambda: answer(tagged, "int8"), grpc.StatusCode.NOT_FOUND) == (
        grpc.StatusCode.NOT_FOUND)
    write_atomically(tagged.config, "improperly formatted file")
    assert eventually(lambda: "not applying" in tagged.log(), True) is True
    assert answer(tagged, "renamed") == 101.0 and answer(tagged, "float") == 2.0
