"""No CUDA noise on a machine without a GPU driver, unless --verbose (tfnoise.py).

TensorFlow's GPU probe prints an E-level ``failed call to cuInit`` and ``Could not find cuda
drivers`` lines at every start of a CPU-only `edgeseg serve`; the filter drops exactly
those, and lets everything else through.
"""

from __future__ import annotations

import re

import pytest

from edgeseg import tfnoise

from .models import two_tag_model

NOISE = re.compile(r"cuInit|Could not find cuda drivers|Unable to register cu")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "m"
    two_tag_model(base / "1")
    return base


@pytest.mark.skipif(tfnoise.cuda_driver_loadable(), reason="a GPU driver is here: no noise")
@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_serve_stderr_has_no_cuda_probe_unless_verbose(serve, model, verbose):
    server = serve(f"--model_base_path={model}", *(["--verbose"] if verbose else []))
    server.wait_for_line("version 1 is AVAILABLE")
    assert server.terminate() == 0
    log = server.log()
    assert "gRPC listening on" in log and "edgeseg serve: stopped" in log  # ours all arrive
    # --verbose is the control: the probe's lines are there, so the quiet run proves the filter
    assert bool(NOISE.search(log)) is verbose, log


def absl(level: str, where: str, text: str) -> str:
    """A line as TensorFlow 2.18+ prints it (absl); 2.17 uses the tsl format below."""
    return f"{level}0000 00:00:1796195404.293453    7711 {where}] {text}"


TSL = "2026-12-02 07:12:37.283229: {} external/local_xla/xla/stream_executor/cuda/{}] {}"


@pytest.mark.parametrize(
    ("line", "level", "driver", "dropped"),
    [
        (absl("E", "cuda_platform.cc:52", "failed call to cuInit: INTERNAL"), 0, False, True),
        (absl("E", "cuda_platform.cc:52", "failed call to cuInit: INTERNAL"), 0, True, False),
        (absl("I", "cudart_stub.cc:31", "Could not find cuda drivers on your machine"), 0,
         False, True),
        (TSL.format("E", "cuda_fft.cc:485", "Unable to register cuFFT factory"), 0, False, True),
        (absl("I", "port.cc:153", "oneDNN custom operations are on."), 1, True, True),
        (absl("I", "port.cc:153", "oneDNN custom operations are on."), 0, False, False),
        (absl("W", "loader.cc:9", "a warning"), 1, False, False),
        (absl("W", "loader.cc:9", "a warning"), 2, False, True),
        (TSL.format("W", "x.cc:9", "a warning"), 2, False, True),
        # real errors always pass, whatever the level
        (absl("E", "loader.cc:9", "Failed to load SavedModel"), 3, False, False),
        (TSL.format("F", "x.cc:1", "Check failed: a == b"), 3, False, False),
        ("edgeseg serve: gRPC listening on 127.0.0.1:8500", 2, False, False),
    ],
)
def test_noise_pattern(line, level, driver, dropped):
    pattern = tfnoise.noise_pattern(level, driver)
    assert bool(pattern and re.search(pattern, line)) is dropped
