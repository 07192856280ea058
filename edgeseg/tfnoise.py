"""Keep TensorFlow's start-up noise off stderr: CUDA probing on machines without a GPU
driver, and log lines below the TF_CPP_MIN_LOG_LEVEL that TensorFlow itself ignores before
its logging is initialised.

Contract: :func:`quiet_native_stderr` is called once by the ``edgeseg`` program (cli.py)
before TensorFlow is imported, for the commands that import it, unless ``--verbose``. It
routes file descriptor 2 (where TensorFlow's C++ code writes) through a small filter
process that drops only:

- on a machine where the CUDA driver (libcuda.so.1) cannot be loaded, the lines of
  TensorFlow's GPU probe: ``failed call to cuInit``, ``Could not find cuda drivers``,
  ``Unable to register cuDNN/cuFFT/cuBLAS factory``, ``Could not find TensorRT``,
  cuda_diagnostics and computation-placer lines: none of them can matter without a GPU;
- TensorFlow's ``I``/``W`` lines when TF_CPP_MIN_LOG_LEVEL asks for fewer (TensorFlow drops
  them itself once its logging is up; the filter catches the ones printed before).

Every other line, errors included, passes unchanged. Python's own ``sys.stderr`` is moved
to a duplicate of the original descriptor, so edgeseg's logs never wait on the filter and
are never lost, even at ``os._exit``. The filter ignores SIGINT/SIGTERM and exits when the
last writer closes the pipe, so a crash's last lines (a FATAL check failure) still arrive.
"""

from __future__ import annotations

import ctypes
import io
import os
import re
import subprocess
import sys
from collections.abc import Mapping

CUDA_NOISE = (
    r"cuInit",
    r"Could not find cuda drivers",
    r"Unable to register cu(?:DNN|FFT|BLAS) factory",
    r"TF-TRT Warning: Could not find TensorRT",
    r"cuda_diagnostics\.cc",
    r"computation placer already registered",
)
_ABSL = r"^(?:{levels})\d{{4}} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "  # I0000 00:00:... file:1]
_TSL = r"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: (?:{levels}) "  # 2026-01-01 00:00:00.1: W
# what TensorFlow prints before its logging is initialised, whatever the level
_EARLY = (r"^WARNING: All log messages before absl::InitializeLog\(\) is called",
          r"^To enable the following instructions: .* rebuild TensorFlow")

_FILTER = """
import re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
noise = re.compile(sys.argv[1].encode())
out = sys.stdout.buffer
for line in sys.stdin.buffer:
    if not noise.search(line):
        out.write(line)
        out.flush()
"""


def cuda_driver_loadable() -> bool:
    """Whether TensorFlow could talk to a GPU here at all (it needs libcuda.so.1)."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def noise_pattern(min_log_level: int, gpu_driver: bool) -> str | None:
    """The regex of the lines to drop; None when nothing is to be dropped."""
    parts = [] if gpu_driver else list(CUDA_NOISE)
    levels = "IWEF"[:max(0, min(min_log_level, 2))]  # never drop errors this way
    if levels:
        parts += [_ABSL.format(levels="|".join(levels)), _TSL.format(levels="|".join(levels)),
                  *_EARLY]
    return "|".join(f"(?:{p})" for p in parts) or None


def quiet_native_stderr(environ: Mapping[str, str] | None = None) -> bool:
    """Filter fd 2 as the module says; False (nothing changed) when there is nothing to drop
    or stderr is not a real file descriptor."""
    environ = os.environ if environ is None else environ
    try:
        level = int(environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        level = 0
    pattern = noise_pattern(level, cuda_driver_loadable())
    try:
        if pattern is None or sys.stderr is None or sys.stderr.fileno() != 2:
            return False
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False
    re.compile(pattern)  # fail here, not silently in the filter, should a pattern be wrong
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    try:
        subprocess.Popen([sys.executable, "-I", "-S", "-c", _FILTER, pattern],
                         stdin=read_end, stdout=original, stderr=subprocess.DEVNULL)
    except OSError:
        for fd in (original, read_end, write_end):
            os.close(fd)
        return False
    os.close(read_end)
    sys.stderr = io.TextIOWrapper(os.fdopen(original, "wb", buffering=0),
                                  encoding=sys.stderr.encoding, errors="backslashreplace",
                                  line_buffering=True)
    os.dup2(write_end, 2)  # inheritable: child processes' native lines are filtered too
    os.close(write_end)
    return True
