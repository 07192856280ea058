"""Shared fixtures for the agent's tests: REAL Mosquitto, model servers, clips, subscribers.

Everything binds to 127.0.0.1 on free ports and is torn down even when a test fails.
The model servers are child processes so tests can kill and restart them mid-stream.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.services import (  # noqa: F401 - re-exported for the agent's test modules
    Mosquitto,
    Recorder,
    _stop,
    free_port,
    mosquitto_binary,
    wait_port,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


# -- model servers --

class ChildServer:
    """A model server child process, restartable on the same port."""

    def __init__(self, argv: list[str], port: int, ready_text: str, log: Path,
                 timeout: float = 60.0) -> None:
        self.argv, self.port, self.ready_text, self.log = argv, port, ready_text, log
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: "
                                     f"{self.log.read_text()[-2000:]}")
            return self.ready_text in self.log.read_text()[offset:]

        wait_until(ready, self.timeout, 0.1, f"{self.argv[:3]} to listen")
        wait_port(self.port)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        _stop(self.proc)


@pytest.fixture
def fake_server_factory(tmp_path):
    """start(delay=0.0, input_size=None) -> a running FAKE model server (fake_model_server.py)."""
    servers: list[ChildServer] = []

    def start(delay: float = 0.0, input_size: tuple[int, int] | None = None) -> ChildServer:
        port = free_port()
        argv = [sys.executable, str(HERE / "fake_model_server.py"), "--port", str(port),
                "--delay", str(delay)]
        if input_size:
            argv += ["--input-size", str(input_size[0]), str(input_size[1])]
        server = ChildServer(argv, port, "listening", tmp_path / f"fake-server-{port}.log", 20)
        servers.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def fake_server(fake_server_factory):
    return fake_server_factory()


# -- clips --

def shared_dir() -> Path:
    return Path(os.environ.get("EDGESEG_SHARED") or REPO.parent / "shared")


def synthetic_frames(count: int, size=(96, 128)) -> list[np.ndarray]:
    """Dark frames with a bright square moving across: the fake model's class 15."""
    h, w = size
    frames = []
    for i in range(count):
        img = np.full((h, w, 3), 30, np.uint8)
        x = (i * 4) % max(1, w - h // 2)
        img[h // 4: h // 4 + h // 2, x: x + h // 2] = 230
        frames.append(img)
    return frames


def photo_frames(count: int, size=(96, 128)) -> list[np.ndarray]:
    """Frames panned across the shared photos (skip the test if they are absent)."""
    images_dir = shared_dir() / "models" / "images"
    paths = sorted(p for p in images_dir.glob("*") if p.suffix.lower() in {".png", ".jpg",
                   ".jpeg", ".bmp"} and "mask" not in p.name) if images_dir.is_dir() else []
    if not paths:
        pytest.skip(f"no photos under {images_dir} (set EDGESEG_SHARED to the shared folder)")
    h, w = size
    frames = []
    for i in range(count):
        photo = cv2.imread(str(paths[i * len(paths) // count]), cv2.IMREAD_COLOR)
        ph, pw = photo.shape[:2]
        scale = max(h / ph, w / pw) * 1.2
        photo = cv2.resize(photo, (int(pw * scale) + 1, int(ph * scale) + 1))
        dx = (i * 2) % max(1, photo.shape[1] - w)
        frames.append(np.ascontiguousarray(photo[:h, dx: dx + w]))
    return frames


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), "cv2.VideoWriter cannot write MJPG/AVI here"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def clip(tmp_path):
    """A 40-frame 128x96 synthetic AVI at 25 fps."""
    return write_clip(tmp_path / "clip.avi", synthetic_frames(40))


# -- the agent as a child process --

class AgentProcess:
    def __init__(self, args: list[str], log: Path, env: dict | None = None) -> None:
        self.log = log
        self.logfile = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgeseg", "agent", *args], cwd=REPO,
            stdout=self.logfile, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text()

    def cpu_seconds(self) -> float:
        """utime + stime of the agent from /proc/PID/stat."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def terminate(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.logfile.close()


@pytest.fixture
def agent_factory(tmp_path):
    agents: list[AgentProcess] = []

    def start(*args: str, env: dict | None = None) -> AgentProcess:
        agent = AgentProcess(list(args), tmp_path / f"agent-{len(agents)}.log", env)
        agents.append(agent)
        return agent

    try:
        yield start
    finally:
        for agent in agents:
            agent.close()


# -- the REAL model server (`edgeseg serve`) with a DeepLab export (`edgeseg export`) --

@pytest.fixture(scope="session")
def real_model(tmp_path_factory):
    """A DeepLab-v3 export (random weights, 65x65 card size) made once per session."""
    base = tmp_path_factory.mktemp("models") / "deeplab"
    out = subprocess.run([sys.executable, "-m", "edgeseg", "export", "deeplabv3", "--output",
                          str(base), "--input-size", "65"], cwd=REPO, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    if "not available in this build" in out.stderr:
        pytest.skip("`edgeseg export` is not in this build yet")
    assert out.returncode == 0, out.stderr[-3000:]
    return base


def real_server(model_base: Path, log: Path) -> ChildServer:
    port = free_port()
    argv = [sys.executable, "-m", "edgeseg", "serve", f"--port={port}",
            "--grpc_bind_address=127.0.0.1", "--model_name=deeplab",
            f"--model_base_path={model_base}"]
    server = ChildServer(argv, port, "listening", log, timeout=120)
    server.start()
    return server


@pytest.fixture(scope="session")
def shared_real_server(real_model, tmp_path_factory):
    """`edgeseg serve` for tests that do not kill it (started once per session)."""
    server = real_server(real_model, tmp_path_factory.mktemp("serve") / "serve.log")
    try:
        yield server
    finally:
        server.stop()


def scrape(port: int) -> dict[str, float]:
    """The agent's /metrics page as {'name{labels}': value}."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out
