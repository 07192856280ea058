"""The loader's cheap checks before TensorFlow is asked: graph file present, memory enough."""

from __future__ import annotations

import pytest

from edgeseg.errors import NotFound, ResourceExhausted
from edgeseg.serving import loader
from edgeseg.serving.loader import RAM_ESTIMATE_MULTIPLIER, Loader


@pytest.fixture
def version(tmp_path):
    (tmp_path / "saved_model.pb").write_bytes(b"x" * 1000)
    (tmp_path / "variables").mkdir()
    (tmp_path / "variables" / "variables.data-00000-of-00001").write_bytes(b"x" * 9000)
    (tmp_path / "variables" / "variables.index").write_bytes(b"x" * 100)
    (tmp_path / "assets.extra").mkdir()
    (tmp_path / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"x" * 10**6)
    return tmp_path


def test_estimate_is_graph_plus_variables_with_a_margin(version):
    assert Loader(version, ["serve"]).estimate_ram_bytes() == int(10100 * RAM_ESTIMATE_MULTIPLIER)


def test_a_folder_without_a_graph_is_refused_before_tf_is_asked(tmp_path):
    with pytest.raises(NotFound, match="no saved_model.pb"):
        Loader(tmp_path, ["serve"]).check()


def test_not_enough_memory_is_refused_before_loading(version, monkeypatch):
    monkeypatch.setattr(loader, "available_ram_bytes", lambda: 5000)
    with pytest.raises(ResourceExhausted, match="needs about 12120 bytes of RAM; 5000 are"):
        Loader(version, ["serve"]).load()


def test_available_ram_is_read():
    free = loader.available_ram_bytes()
    assert free is None or free > 0

