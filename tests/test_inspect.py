"""``edgeseg inspect`` on a real export."""

from __future__ import annotations

import json

import pytest

from edgeseg import cli
from edgeseg.errors import DataLoss, NotFound
from edgeseg.inspect import count_tfrecords, describe, resolve_version_dir
from exporters.writer import export
from tests.exporters.conftest import tiny_model


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    base = tmp_path_factory.mktemp("inspect") / "tiny"
    export(tiny_model(seed=1), base)
    export(tiny_model(seed=2, gpu_pinned=True), base)
    return base


def test_json_facts(base, capsys):
    assert cli.main(["inspect", str(base / "1"), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert [m["tags"] for m in facts["meta_graphs"]] == [["serve"], ["serve_quantized"]]
    sig = facts["meta_graphs"][0]["signatures"]["serving_default"]
    assert sig["inputs"]["images"] == {"dtype": "uint8", "shape": [-1, -1, -1, 3]}
    assert sig["outputs"]["segmentation_map"]["dtype"] == "uint8"
    assert facts["devices"] == []
    assert facts["assets_extra"]["tf_serving_warmup_requests"]["records"] == 2
    assert facts["assets_extra"]["labels.txt"]["classes"] == 4
    assert facts["model_card"]["name"] == "tiny"
    tflite = facts["tflite"]
    assert tflite["bytes"] == (base / "1" / "model.tflite").stat().st_size > 0
    assert tflite["signatures"]["serving_default"] == {
        "inputs": {"images": {"dtype": "uint8", "shape": [1, -1, -1, 3]}},
        "outputs": {"segmentation_map": {"dtype": "uint8", "shape": [1, -1, -1]}}}


def test_text_output_and_base_path_resolves_to_latest(base, capsys):
    assert cli.main(["inspect", str(base)]) == 0
    out = capsys.readouterr().out
    assert str(base / "2") in out
    assert "tag-set: 'serve'" in out and "tag-set: 'serve_quantized'" in out
    assert "device placements: none" in out
    assert "input  images: float [1, -1, -1, 3]" in out
    assert "model.tflite: " in out and "signature 'serving_default' (LiteRT):" in out
    assert "input  images: uint8 [1, -1, -1, 3]" in out


def test_a_version_without_model_tflite_says_so(tmp_path, capsys):
    export(tiny_model(seed=3), tmp_path / "m", tflite=False)
    assert describe(tmp_path / "m" / "1")["tflite"] is None
    assert cli.main(["inspect", str(tmp_path / "m")]) == 0
    assert "model.tflite: none" in capsys.readouterr().out


def test_devices_are_reported_when_present(base, tmp_path):
    """inspect would show devices: strip them back in by hand and look."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((base / "1" / "saved_model.pb").read_bytes())
    proto.meta_graphs[0].graph_def.node[0].device = "/device:GPU:0"
    copy = tmp_path / "7"
    copy.mkdir()
    (copy / "saved_model.pb").write_bytes(proto.SerializeToString())
    assert len(describe(copy)["devices"]) == 1


def test_errors(tmp_path):
    with pytest.raises(NotFound, match="does not exist"):
        resolve_version_dir(tmp_path / "nope")
    with pytest.raises(NotFound, match="holds no saved_model.pb"):
        resolve_version_dir(tmp_path)
    (tmp_path / "saved_model.pb").write_bytes(b"\xff\xff\xff garbage")
    with pytest.raises(DataLoss, match="not a SavedModel proto"):
        describe(tmp_path)
    bad = tmp_path / "records"
    bad.write_bytes(b"\x10" + b"\x00" * 7 + b"abc")
    with pytest.raises(DataLoss):
        count_tfrecords(bad)
