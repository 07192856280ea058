"""Command-line flags of ``edgeseg serve``, spelled as tensorflow_model_server's.

Contract: :func:`parse_flags` accepts ``--flag=value`` and ``--flag value``; booleans as
``--flag``, ``--flag=true|false`` (also 1/0, yes/no); hyphens and underscores in names are
the same (``--validate-config`` = ``--validate_config``). An unknown flag, a missing or
malformed value, or a positional argument raises :class:`~edgeseg.errors.InvalidArgument`
naming it (the CLI turns that into one line on stderr and exit status 2). Pure: no I/O.

Every flag is a field of :class:`ServerFlags` with its help text beside it; the ones
marked "(edgeseg)" are not in TF Serving.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edgeseg.errors import InvalidArgument
from edgeseg.model_contract import TAG_FLOAT

MIB = 1024 * 1024


def _cpus() -> int:
    """TF Serving's NumSchedulableCPUs: the default --num_tflite_pools."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _flag(default, help_text: str):  # a dataclass field with help
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True)
class ServerFlags:
    port: int = _flag(8500, "gRPC port (0 picks a free one, printed when ready)")
    grpc_bind_address: str = _flag("0.0.0.0", "(edgeseg) address the gRPC and REST ports bind to")
    grpc_socket_path: str = _flag("", "also serve gRPC on this Unix socket")
    rest_api_port: int = _flag(0, "REST port (TF Serving's /v1/models API); 0 = off")
    rest_api_timeout_in_ms: int = _flag(
        30000, "a REST :predict running longer ends with 504 (DEADLINE_EXCEEDED); 0 = none")
    model_name: str = _flag("default", "name of the one model served with --model_base_path")
    model_base_path: str = _flag("", "folder holding the model's numbered version folders")
    model_config_file: str = _flag("", "model_config_list text proto (instead of the above)")
    model_config_file_poll_wait_seconds: int = _flag(
        0, "re-read --model_config_file this often; 0 = only at start-up")
    file_system_poll_wait_seconds: int = _flag(
        1, "look for new or removed versions this often; 0 = once at start-up")
    saved_model_tags: str = _flag(TAG_FLOAT, "comma-separated meta-graph tags to load")
    max_num_load_retries: int = _flag(5, "retries of a failed load before giving up")
    load_retry_interval_micros: int = _flag(60_000_000, "wait between load retries")
    aspired_version_policy: str = _flag(
        "availability_preserving",
        "(edgeseg) availability_preserving or resource_preserving (unload before load)")
    allow_version_labels_for_unavailable_models: bool = _flag(
        False, "let version_labels name versions that are not AVAILABLE yet")
    enable_signature_method_name_check: bool = _flag(
        False, "Classify/Regress require the classify/regress method_name")
    grpc_max_threads: int = _flag(16, "threads serving gRPC requests")
    # --- front-door limits (issue 17; docs/serving.md "Under load") ---
    grpc_max_concurrent_rpcs: int = _flag(
        128, "(edgeseg) Predict/ModelService calls running or queued at once; more get "
             "RESOURCE_EXHAUSTED at once (health checks are not counted)")
    rest_api_num_threads: int = _flag(
        0, "threads answering REST requests; 0 = 4 x the number of cores, as TF Serving")
    rest_api_idle_timeout_s: float = _flag(
        5.0, "(edgeseg) a REST connection must send a complete request head within this "
             "many seconds of opening or of its previous answer, else it is closed")
    rest_api_max_connections: int = _flag(
        4096, "(edgeseg) open REST connections at most (lowered to fit the open-files "
              "limit); more get 503 and are closed at once")
    grpc_max_message_bytes: int = _flag(
        256 * MIB, "(edgeseg) max gRPC receive/send message size")
    monitoring_config_file: str = _flag(
        "", "MonitoringConfig text proto: prometheus_config { enable, path } (REST port)")
    ssl_config_file: str = _flag(
        "", "SSLConfig text proto (server_key, server_cert, custom_ca, client_verify): TLS")
    grpc_channel_arguments: str = _flag(
        "", "comma-separated grpc server arguments, e.g. grpc.max_connection_age_ms=2000")
    tensorflow_intra_op_parallelism: int = _flag(
        0, "threads one TF op may use; 0 = TensorFlow's choice (all cores)")
    tensorflow_inter_op_parallelism: int = _flag(
        0, "TF ops run at once; 0 = TensorFlow's choice")
    per_process_gpu_memory_fraction: float = _flag(
        0.0, "share of each GPU's memory TF may take; 0 = TensorFlow's default")
    gpu_allow_growth: bool = _flag(
        False, "(edgeseg) let TF take GPU memory as needed instead of all at start-up")
    # -- session options (session_options.py) --
    tensorflow_session_parallelism: int = _flag(
        0, "threads for both of the above when neither is given; 0 = TensorFlow's choice")
    auto_mixed_precision: bool = _flag(
        False, "(edgeseg) grappler's mixed-precision rewrite: float16 on a GPU, bfloat16 on a "
        "CPU with avx512_bf16/amx_bf16; elsewhere a logged no-op")
    enable_batching: bool = _flag(False, "merge concurrent requests into one model run")
    batching_parameters_file: str = _flag(
        "", "BatchingParameters text proto (max_batch_size, batch_timeout_micros, ...)")
    enable_model_warmup: bool = _flag(
        True, "replay assets.extra/tf_serving_warmup_requests before a version serves")
    prefer_tflite_model: bool = _flag(
        False, "serve a version folder's model.tflite (LiteRT) instead of its saved_model.pb; "
        "folders without one fall back to the SavedModel")
    num_tflite_pools: int = _flag(
        _cpus(), "interpreter pools per model.tflite version; pools run in parallel "
        "(default: the CPUs)")
    num_tflite_interpreters_per_pool: int = _flag(
        1, "interpreters in each pool; each serves one request at a time")
    tflite_num_threads: int = _flag(
        0, "(edgeseg) LiteRT/XNNPACK threads per interpreter; 0 = the CPUs divided among "
        "all interpreters (at least 1)")
    tflite_reference_kernels: bool = _flag(
        False, "(edgeseg) run model.tflite on TFLite's builtin int8 kernels instead of "
        "XNNPACK: bit-exact with serve_quantized's integer arithmetic, about 2x slower "
        "(XNNPACK rounds differently: 95-99% of pixels agree)")
    shutdown_grace_seconds: float = _flag(
        10.0, "(edgeseg) on SIGTERM, how long in-flight requests may take to finish")
    validate_config: bool = _flag(
        False, "(edgeseg) check flags and config files, print what would be served, exit")
    help: bool = _flag(False, "show this help")


_FIELDS = {f.name: f for f in dataclasses.fields(ServerFlags)}
_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}


def _convert(name: str, kind: type, raw: str):
    if kind is bool:
        low = raw.lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise InvalidArgument(f"--{name} expects true or false, got {raw!r}")
    try:
        return kind(raw)
    except ValueError:
        raise InvalidArgument(f"--{name} expects {kind.__name__}, got {raw!r}") from None


def parse_flags(argv: Sequence[str]) -> ServerFlags:
    values: dict[str, Any] = {}  # checked by _convert against each field's type
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg in ("-h", "--help"):
            values["help"] = True
            continue
        if not arg.startswith("--") or arg == "--":
            raise InvalidArgument(f"unexpected argument {arg!r}; flags are --name=value")
        name, eq, raw = arg[2:].partition("=")
        name = name.replace("-", "_")
        spec = _FIELDS.get(name)
        if spec is None:
            raise InvalidArgument(f"unknown flag --{name} (see edgeseg serve --help)")
        kind = {"int": int, "str": str, "float": float, "bool": bool}[str(spec.type)]
        if not eq:
            if kind is bool:
                raw = "true"
            elif i < len(args):
                raw = args[i]
                i += 1
            else:
                raise InvalidArgument(f"--{name} needs a value")
        values[name] = _convert(name, kind, raw)
    return ServerFlags(**values)


def usage() -> str:
    lines = ["usage: edgeseg serve [--flag=value ...]", "",
             "A TensorFlow-Serving-compatible gRPC model server. Flags:"]
    for f in dataclasses.fields(ServerFlags):
        lines.append(f"  --{f.name}={f.default}\n      {f.metadata['help']}")
    lines.append("  --verbose\n      (edgeseg) show all of TensorFlow's own log lines, its GPU "
                 "probe included (read by the edgeseg command)")
    return "\n".join(lines)
