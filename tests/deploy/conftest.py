"""Fixtures for the deploy tests: the repo's deploy files, a staged install, free ports.

Everything runs as child processes of the test bound to 127.0.0.1 and is killed in the
fixture's finalizer. Tools these tests need come from Debian (Makefile SYSTEM_PACKAGES):
systemd (systemd-analyze), mosquitto (mosquitto, mosquitto_passwd), openssl.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
SYSTEMD = REPO / "systemd"
INSTALL = DEPLOY / "install.sh"
UNINSTALL = DEPLOY / "uninstall.sh"
VENV = REPO / ".venv"
# The camera instance every staged install enables.
CAMERA = "front"


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian: see SYSTEM_PACKAGES in the Makefile)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_script(script: Path, *args: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True,
                          timeout=60, env=env, check=False)


def install_into(stage: Path, *extra: str) -> subprocess.CompletedProcess:
    """A staged install as the tests use it: the repo's .venv through --venv-from."""
    if not (VENV / "bin" / "edgeseg").exists():
        pytest.skip(f"{VENV}/bin/edgeseg is missing: run `make test` (it builds .venv)")
    result = run_script(INSTALL, f"--destdir={stage}", f"--venv-from={VENV}",
                        f"--camera={CAMERA}", "--broker", *extra)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="session")
def staged(tmp_path_factory) -> Path:
    """One staged install (read-only for the tests that use it)."""
    stage = tmp_path_factory.mktemp("stage")
    install_into(stage)
    return stage
