"""`pip install edgeseg` without extras: no TensorFlow, yet the agent and the CLI work.

The light venv (.venv-light) is built by `make test` (`pip install .`, an install step: nothing
downloads here). In it: `import tensorflow` fails; `edgeseg agent --help` and `edgeseg serve
--help` work; `edgeseg export` says in one line which extra to install and exits 2; and the
agent streams masks from a clip through `edgeseg serve` (the full venv's, until the server
itself is TF-free) to a real Mosquitto. Outside make, without .venv-light, those tests skip.
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


# -- the light agent, end to end --

@pytest.fixture(scope="module")
def full_server(light_venv, tmp_path_factory):
    """`edgeseg serve` from the full venv on a small DeepLab export (random weights)."""
    work = tmp_path_factory.mktemp("light-e2e")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    base = work / "deeplab"
    out = subprocess.run([sys.executable, "-m", "edgeseg", "export", "deeplabv3", "--output",
                          str(base), "--input-size", "65", "--quiet"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    port = free_port()
    log = (work / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "edgeseg", "serve", f"--port={port}",
                             "--grpc_bind_address=127.0.0.1", "--model_name=deeplab",
                             f"--model_base_path={base}"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: proc.poll() is not None or "listening" in
                   (work / "serve.log").read_text(), 120, 0.2, "edgeseg serve to listen")
        assert proc.poll() is None, (work / "serve.log").read_text()[-2000:]
        wait_port(port)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)
        log.close()


def _clip(path: Path, count: int = 24) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (128, 96))
    for i in range(count):
        frame = np.full((96, 128, 3), 40, np.uint8)
        cv2.circle(frame, (20 + 3 * i, 48), 20, (30, 200, 220), -1)
        writer.write(frame)
    writer.release()
    return path


def test_light_agent_streams_masks_to_mosquitto(full_server, mosquitto, recorder_factory,
                                                tmp_path):
    rec = recorder_factory(mosquitto.port, "edgeseg/light/cam/#")
    clip = _clip(tmp_path / "clip.avi")
    agent = subprocess.run(
        [str(LIGHT / "bin" / "edgeseg"), "agent", "--source", str(clip), "--server",
         full_server, "--mqtt", mosquitto.address, "--device-id", "light", "--camera", "cam",
         "--max-in-flight", "1"], cwd=tmp_path, env=_light_env(), capture_output=True,
        text=True, timeout=180)
    assert agent.returncode == 0, agent.stderr[-3000:]
    wait_until(lambda: rec.statuses()[-1:] == ["offline"], 10, what="offline at the end")
    masks = rec.of("mask")
    assert len(masks) >= 12, f"{len(masks)} masks for 24 frames: {agent.stderr[-2000:]}"
    assert all(m["payload"].startswith(b"\x89PNG") for m in masks)
    decoded = cv2.imdecode(np.frombuffer(masks[-1]["payload"], np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (96, 128)  # the class map at the frame's size
