"""`edgeseg serve` with its log file, working directory, HOME and TMPDIR on a FULL file
system: it starts, loads new versions and answers Predict; when space returns it says once
how many log writes were lost and logs again; SIGTERM still stops it cleanly (exit 0)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import grpc
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.diskfull import fill, free_bytes, small_tmpfs

from .conftest import EDGESEG, REPO, copy_version, free_port, tfs_data
from .tfs_requests import predict_request

LOST = "log write(s) lost: No space left on device"


@pytest.fixture(scope="module")
def full_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("diskfull")
    base = root / "models"
    base.mkdir()
    copy_version(tfs_data("saved_model_half_plus_two_cpu/00000123"), base, 1)
    with small_tmpfs(root / "var", "64k") as var:
        filler = fill(var)
        assert free_bytes(var) == 0
        port = free_port()
        with open(var / "serve.log", "wb") as log:
            proc = subprocess.Popen(
                [*EDGESEG, "serve", "--grpc_bind_address=127.0.0.1", f"--port={port}",
                 "--model_name=m", f"--model_base_path={base}",
                 "--file_system_poll_wait_seconds=1"],
                cwd=var, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(var),
                     "HOME": str(var)})
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            yield {"proc": proc, "stub": stub, "base": base, "var": var, "filler": filler}
        finally:
            channel.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def answer(server, timeout: float = 120.0) -> tuple[int, float]:
    """(version, y) for x = 2, waiting for the server to answer at all."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = server["stub"].Predict(predict_request("m", [[2.0]]), timeout=10)
            return reply.model_spec.version.value, reply.outputs["y"].float_val[0]
        except grpc.RpcError:
            code = server["proc"].poll()
            assert code is None, f"the server died with exit status {code}"
            assert time.monotonic() < deadline, "the server never answered"
            time.sleep(0.2)


def wait_for_version(server, version: int, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while (found := answer(server))[0] != version:
        assert time.monotonic() < deadline, f"version {version} never served"
        time.sleep(0.2)
    return found[1]


def test_serves_and_loads_versions_with_the_log_disk_full(full_server):
    assert answer(full_server) == (1, 3.0)
    copy_version(tfs_data("saved_model_half_plus_three/00000123"), full_server["base"], 2)
    assert wait_for_version(full_server, 2) == 4.0
    assert full_server["proc"].poll() is None
    # the disk really was full for it: not one byte of its log got written
    assert (full_server["var"] / "serve.log").stat().st_size == 0


def test_logs_again_once_space_returns_saying_what_was_lost(full_server):
    full_server["filler"].unlink()
    copy_version(tfs_data("saved_model_half_plus_two_cpu/00000123"), full_server["base"], 3)
    assert wait_for_version(full_server, 3) == 3.0
    log = full_server["var"] / "serve.log"
    deadline = time.monotonic() + 30
    while "m version 3 is AVAILABLE" not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.1)
    text = log.read_text(errors="replace")
    assert text.count(LOST) == 1 and text.index(LOST) < text.index("version 3 is AVAILABLE")
    assert "Logging error" not in text and "Traceback" not in text


def test_sigterm_with_the_disk_full_again_still_exits_cleanly(full_server):
    fill(full_server["var"])
    proc = full_server["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
