"""Session options: the ConfigProto every servable's session gets (threads, GPU memory,
mixed precision), decided once at start-up from the flags, as TF Serving's server.cc does.

Contract: :func:`thread_counts` applies TF Serving's rule for
``--tensorflow_session_parallelism`` (it sets both intra- and inter-op threads unless either
of those is given; all three at once is an error) and raises InvalidArgument without
importing TensorFlow, so ``--validate-config`` checks it. :func:`session_config` builds the
ConfigProto field by field; :func:`from_flags` adds what only the running machine can say
(GPUs visible, the CPU's instruction set) and returns the ConfigProto with the one-line
summary the loader logs for every version it loads.

``TF_FORCE_GPU_ALLOW_GROWTH`` is honoured as TensorFlow's GPU allocator reads it: ``true``
or ``false`` override ``gpu_options.allow_growth``; any other value is ignored with a
warning.

``--auto_mixed_precision`` turns on grappler's rewrite: ``auto_mixed_precision`` (float16)
when a GPU is visible, else ``auto_mixed_precision_onednn_bfloat16`` when the CPU has
bfloat16 instructions (x86 ``avx512_bf16`` or ``amx_bf16`` in /proc/cpuinfo). Anywhere
else it is a logged no-op: the models run in float32, as without the flag.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.errors import InvalidArgument

log = logging.getLogger(__name__)

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
OFF, FLOAT16, BFLOAT16, UNSUPPORTED = "off", "float16", "bfloat16", "unsupported"


@dataclass(frozen=True)
class MixedPrecision:
    """What ``--auto_mixed_precision`` does on this machine, and why."""

    mode: str  # OFF, FLOAT16 (GPU), BFLOAT16 (CPU) or UNSUPPORTED (logged no-op)
    reason: str = ""

    def describe(self) -> str:
        if self.mode == OFF:
            return "mixed precision off"
        if self.mode == UNSUPPORTED:
            return f"mixed precision requested but not applied ({self.reason}): float32"
        return f"mixed precision {self.mode} ({self.reason})"


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``) from /proc/cpuinfo."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def mixed_precision(requested: bool, gpus: int, cpu: frozenset[str]) -> MixedPrecision:
    """The rewrite ``--auto_mixed_precision`` asks for on a machine like this one (pure)."""
    if not requested:
        return MixedPrecision(OFF)
    if gpus:
        return MixedPrecision(FLOAT16, f"{gpus} GPU(s)")
    have = [flag for flag in BF16_CPU_FLAGS if flag in cpu]
    if have:
        return MixedPrecision(BFLOAT16, f"CPU has {', '.join(have)}")
    return MixedPrecision(UNSUPPORTED, "no GPU, and the CPU has no bfloat16 instructions "
                                       f"({' or '.join(BF16_CPU_FLAGS)})")


def thread_counts(intra: int, inter: int, session_parallelism: int) -> tuple[int, int]:
    """(intra_op, inter_op) threads by TF Serving's rule; 0 = TensorFlow's choice."""
    if min(intra, inter, session_parallelism) < 0:
        raise InvalidArgument("--tensorflow_*_parallelism flags must be >= 0")
    if intra > 0 and inter > 0 and session_parallelism > 0:
        raise InvalidArgument(
            "Either configure --tensorflow_session_parallelism or "
            "(--tensorflow_intra_op_parallelism, --tensorflow_inter_op_parallelism) "
            "separately. You cannot configure all.")
    if intra > 0 or inter > 0:
        return intra, inter
    return session_parallelism, session_parallelism


def allow_growth(flag: bool, environ: Mapping[str, str]) -> bool:
    """``gpu_options.allow_growth`` as TensorFlow decides it: TF_FORCE_GPU_ALLOW_GROWTH wins."""
    forced = environ.get("TF_FORCE_GPU_ALLOW_GROWTH")
    if forced is None:
        return flag
    if forced in ("true", "false"):
        return forced == "true"
    log.warning("TF_FORCE_GPU_ALLOW_GROWTH=%r is neither true nor false; ignored", forced)
    return flag


def session_config(intra_op: int = 0, inter_op: int = 0, gpu_memory_fraction: float = 0.0,
                   gpu_allow_growth: bool = False, precision: str = OFF) -> Any:
    """The tf ConfigProto for every servable's session (0 / False: TensorFlow's defaults).

    Jetson-class devices share one memory between CPU and GPU: a fraction or growth keeps
    TensorFlow from taking it all for itself at the first load.
    """
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2

    config = config_pb2.ConfigProto(allow_soft_placement=True)
    config.intra_op_parallelism_threads = intra_op
    config.inter_op_parallelism_threads = inter_op
    if gpu_memory_fraction:
        config.gpu_options.per_process_gpu_memory_fraction = gpu_memory_fraction
    config.gpu_options.allow_growth = gpu_allow_growth
    rewrites = config.graph_options.rewrite_options
    if precision == FLOAT16:
        rewrites.auto_mixed_precision = rewriter_config_pb2.RewriterConfig.ON
    elif precision == BFLOAT16:
        rewrites.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    return config


def visible_gpus() -> int:
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def from_flags(flags: Any, environ: Mapping[str, str] | None = None,
               cpu: frozenset[str] | None = None, gpus: int | None = None) -> tuple[Any, str]:
    """(ConfigProto, one-line summary for the load log) for ``edgeseg serve``'s flags."""
    environ = os.environ if environ is None else environ
    intra, inter = thread_counts(flags.tensorflow_intra_op_parallelism,
                                 flags.tensorflow_inter_op_parallelism,
                                 flags.tensorflow_session_parallelism)
    precision = mixed_precision(
        flags.auto_mixed_precision,
        (visible_gpus() if gpus is None else gpus) if flags.auto_mixed_precision else 0,
        cpu_flags() if cpu is None else cpu)
    if precision.mode == UNSUPPORTED:
        log.info("--auto_mixed_precision: %s", precision.describe())
    growth = allow_growth(flags.gpu_allow_growth, environ)
    config = session_config(intra, inter, flags.per_process_gpu_memory_fraction, growth,
                            precision.mode)
    threads = f"intra_op {intra or 'auto'}, inter_op {inter or 'auto'}"
    return config, f"{threads}; {precision.describe()}"
