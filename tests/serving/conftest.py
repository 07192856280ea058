"""Shared fixtures for the serving tests: test data, REAL `edgeseg serve` processes, stubs.

Servers are child processes started with --port=0 on 127.0.0.1; the test waits for the
"gRPC listening on" line, reads the port from it, and always stops the process (SIGTERM,
then SIGKILL) in a finalizer. Server output goes to a log file that failures print.
TF Serving's own test models live in shared/tfserving-testdata beside the repository
(override with EDGESEG_SHARED); tests that need them skip, saying why, when it is absent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("EDGESEG_SHARED", REPO.parent / "shared"))
TESTDATA = SHARED / "tfserving-testdata"
READY = re.compile(r"gRPC listening on 127\.0\.0\.1:(\d+)")
EDGESEG = [sys.executable, "-m", "edgeseg"]
START_TIMEOUT_S = 120


def tfs_data(name: str = "") -> Path:
    """A path in TF Serving's test data; skips the test when the data is absent."""
    if not TESTDATA.is_dir():
        pytest.skip(f"TF Serving test data not found at {TESTDATA} (set EDGESEG_SHARED)")
    return TESTDATA / name


class Server:
    """One `edgeseg serve` child process and stubs for it."""

    def __init__(self, args: Sequence[str], log_path: Path, env: dict | None = None) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # closed in stop(
        cmd = [*EDGESEG, "serve", "--grpc_bind_address=127.0.0.1", "--port=0", *args]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                                          **(env or {})})
        self.port = self._wait_ready()
        self.channel = grpc.insecure_channel(
            f"127.0.0.1:{self.port}",
            options=[("grpc.max_receive_message_length", 64 << 20),
                     ("grpc.max_send_message_length", 64 << 20)],
        )
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_ready(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            match = READY.search(self.log())
            if match:
                return int(match.group(1))
            if self.proc.poll() is not None:
                self.stop()
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"server not ready in {START_TIMEOUT_S}s:\n{self.log()}")

    def wait_for_line(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.log()}"
            time.sleep(0.1)

    def serve_rest(self, port: int) -> str:
        """Wait for the REST port given with --rest_api_port; its /v1/models URL."""
        self.wait_for_line(f"REST listening on 127.0.0.1:{port}")
        return f"http://127.0.0.1:{port}/v1/models"

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM and wait; the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if getattr(self, "channel", None) is not None:
            self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="module")
def serve(tmp_path_factory) -> Iterator:
    """Factory: serve(*flags) -> a started Server, stopped when the module ends."""
    started: list[Server] = []
    logs = tmp_path_factory.mktemp("server-logs")

    def start(*args: str, env: dict | None = None) -> Server:
        server = Server(args, logs / f"server{len(started)}.log", env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def free_port() -> int:
    """A loopback port free right now (for --rest_api_port, where 0 means off)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rest_call(url: str, body: object = None, raw: bytes | None = None) -> tuple[int, object]:
    """(HTTP status, parsed JSON body) of a GET, or a POST when there is a body."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def run_serve(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`edgeseg serve ARGS` to completion (for flag/config errors and --validate-config)."""
    return subprocess.run([*EDGESEG, "serve", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def copy_version(src: Path, base: Path, version: int) -> Path:
    """Publish src as base/version atomically: copy beside it, then rename into place."""
    staging = base / f".{version}.partial"
    shutil.copytree(src, staging)
    final = base / str(version)
    os.rename(staging, final)
    return final
