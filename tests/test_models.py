"""``edgeseg models``: pinned downloads into the cache, verified; never the network.

Downloads come from a local HTTP server on 127.0.0.1 or a file:// address; the
offline case is a closed loopback port.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from edgeseg import models
from edgeseg.errors import DataLoss, InvalidArgument, Unavailable

PAYLOAD = b"not really a model, but pinned\n" * 100


def spec_for(payload: bytes, url: str = "http://127.0.0.1:9/model.bin") -> models.ModelSpec:
    return models.ModelSpec(name="test-model", url=url,
                            sha256=hashlib.sha256(payload).hexdigest(),
                            filename="model.bin", description="test")


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "model.bin").write_bytes(PAYLOAD)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_is_verified_and_cached(server, tmp_path):
    cache = tmp_path / "cache"
    spec = spec_for(PAYLOAD, f"{server}/model.bin")
    path = models.fetch(spec, cache=cache)
    assert path == cache / "model.bin" and path.read_bytes() == PAYLOAD
    # Cached: no network needed the second time.
    offline = spec_for(PAYLOAD, f"http://127.0.0.1:{closed_port()}/model.bin")
    assert models.fetch(offline, cache=cache) == path


def test_wrong_hash_is_refused_and_nothing_is_cached(server, tmp_path):
    cache = tmp_path / "cache"
    spec = spec_for(b"something else", f"{server}/model.bin")
    with pytest.raises(DataLoss, match="not the pinned test-model"):
        models.fetch(spec, cache=cache)
    assert list(cache.iterdir()) == []


def test_offline_says_so_and_how_to_pass_a_file(tmp_path):
    spec = spec_for(PAYLOAD, f"http://127.0.0.1:{closed_port()}/model.bin")
    with pytest.raises(Unavailable) as caught:
        models.fetch(spec, cache=tmp_path / "cache", timeout=5)
    message = str(caught.value)
    assert "offline" in message and "--from FILE" in message
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_file_on_the_server(server, tmp_path):
    with pytest.raises(Unavailable, match="HTTP 404"):
        models.fetch(spec_for(PAYLOAD, f"{server}/gone.bin"), cache=tmp_path / "cache")


def test_file_url_and_local_copy(tmp_path):
    local = tmp_path / "copy.bin"
    local.write_bytes(PAYLOAD)
    spec = spec_for(PAYLOAD, local.as_uri())
    assert models.fetch(spec, cache=tmp_path / "a").read_bytes() == PAYLOAD
    assert models.fetch(spec_for(PAYLOAD), cache=tmp_path / "b", source=local).is_file()
    with pytest.raises(DataLoss):
        models.fetch(spec_for(b"other"), cache=tmp_path / "c", source=local)


def test_unsupported_scheme(tmp_path):
    with pytest.raises(InvalidArgument, match="https://"):
        models.fetch(spec_for(PAYLOAD, "ftp://example.invalid/x"), cache=tmp_path)


def test_path_finds_the_shared_copy_without_network(shared_models, tmp_path, monkeypatch,
                                                     capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("EDGESEG_SHARED", str(shared_models.parent))
    assert models.main(["path", "deeplabv3-mnv2-voc"]) == 0
    printed = Path(capsys.readouterr().out.strip())
    assert printed == shared_models / "deeplab/deeplabv3_mnv2_pascal_quant.tflite"


def test_fetch_from_the_shared_copy_verifies_the_real_pin(shared_models, tmp_path,
                                                          monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    source = shared_models / "deeplab/deeplabv3_mnv2_pascal_quant.tflite"
    assert models.main(["fetch", "deeplabv3-mnv2-voc", "--from", str(source)]) == 0
    cached = Path(capsys.readouterr().out.strip())
    assert cached.parent == tmp_path / "cache/edgeseg/models"
    assert cached.read_bytes() == source.read_bytes()


def test_path_without_a_copy_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("EDGESEG_SHARED", str(tmp_path / "no-shared"))
    with pytest.raises(models.NotFound, match="edgeseg models fetch deeplabv3-mnv2-voc"):
        models.main(["path", "deeplabv3-mnv2-voc"])


def test_models_url_env_points_fetch_at_a_mirror(server, tmp_path, monkeypatch):
    monkeypatch.setenv(models.MODELS_URL_ENV, server + "/")
    spec = spec_for(PAYLOAD, "http://127.0.0.1:9/elsewhere/model.bin")
    assert models.download_url(spec) == f"{server}/model.bin"
    cached = models.fetch(spec, cache=tmp_path / "cache")
    assert cached.read_bytes() == PAYLOAD
    monkeypatch.delenv(models.MODELS_URL_ENV)
    assert models.download_url(spec) == spec.url


def test_download_progress_counts_every_byte(server, tmp_path):
    import io

    from edgeseg.progress import Progress

    stream = io.StringIO()
    spec = spec_for(PAYLOAD, f"{server}/model.bin")
    models.fetch(spec, cache=tmp_path / "cache", progress=Progress(prefix="t", stream=stream))
    lines = stream.getvalue().splitlines()
    size = f"{len(PAYLOAD) / 1e6:.1f}"
    assert lines[-1] == f"t: fetching model.bin {size}/{size} MB done"
    assert len(lines) >= 2  # at least one quarter mark before the end
