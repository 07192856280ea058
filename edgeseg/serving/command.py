"""``edgeseg serve``: start-up, readiness, config polling and graceful shutdown.

Contract: :func:`main` parses TF Serving's flags (flags.py), builds the model list from
``--model_config_file`` or ``--model_name``/``--model_base_path`` (config.py), loads every
model's aspired versions (a version that fails to load is reported and does not stop the
server), then opens gRPC on ``--grpc_bind_address:--port`` (and ``--grpc_socket_path``),
prints one line ``edgeseg serve: gRPC listening on HOST:PORT`` to stderr and tells systemd
READY=1. ``--validate-config`` stops after checking flags and config files and prints what
would be served. On SIGTERM or SIGINT it stops accepting calls, lets in-flight ones finish
within ``--shutdown_grace_seconds``, unloads every model and returns 0. Configuration
errors are raised as :class:`~edgeseg.errors.EdgesegError` (one line on stderr, exit != 0).
"""

from __future__ import annotations

import functools
import logging
import os
import resource
import signal
import sys
import threading
from pathlib import Path

from edgeseg import logstream
from edgeseg.errors import InvalidArgument, NotFound, Unavailable
from edgeseg.sdnotify import sd_notify
from edgeseg.serving.batching import BatchingOptions, parse_batching_parameters
from edgeseg.serving.config import (
    ModelConfig,
    load_model_config_file,
    parse_preserve,
    split_tags,
)
from edgeseg.serving.flags import ServerFlags, parse_flags, usage
from edgeseg.serving.metrics import SERVING
from edgeseg.serving.monitoring import parse_monitoring_config
from edgeseg.serving.policy import aspired_versions
from edgeseg.serving.session_options import thread_counts
from edgeseg.serving.source import list_versions
from edgeseg.serving.tls import TlsConfig, grpc_credentials, load_ssl_config, ssl_context

log = logging.getLogger("edgeseg.serving")


def models_from_flags(flags: ServerFlags) -> list[ModelConfig]:
    tags = split_tags(flags.saved_model_tags)
    preserve = parse_preserve(flags.aspired_version_policy)
    if flags.model_config_file:
        if flags.model_base_path:
            log.warning("--model_config_file is given: --model_base_path is ignored")
        return load_model_config_file(flags.model_config_file, tags, preserve)
    if not flags.model_base_path:
        raise InvalidArgument("give --model_base_path (with --model_name) or --model_config_file")
    if not flags.model_name:
        raise InvalidArgument("--model_name must not be empty")
    return [ModelConfig(flags.model_name, flags.model_base_path, tags=tags, preserve=preserve)]


def _check_flags(flags: ServerFlags) -> None:
    for name in ("max_num_load_retries", "grpc_max_threads", "grpc_max_message_bytes",
                 "grpc_max_concurrent_rpcs", "rest_api_max_connections"):
        if getattr(flags, name) < (1 if name != "max_num_load_retries" else 0):
            raise InvalidArgument(f"--{name} is out of range: {getattr(flags, name)}")
    if not 0.0 <= flags.per_process_gpu_memory_fraction <= 1.0:
        raise InvalidArgument("--per_process_gpu_memory_fraction must be in 0..1, got "
                              f"{flags.per_process_gpu_memory_fraction}")
    thread_counts(flags.tensorflow_intra_op_parallelism, flags.tensorflow_inter_op_parallelism,
                  flags.tensorflow_session_parallelism)  # TF Serving's rule; raises
    if flags.rest_api_num_threads < 0 or flags.rest_api_idle_timeout_s <= 0:
        raise InvalidArgument("--rest_api_num_threads must be >= 0 and "
                              "--rest_api_idle_timeout_s > 0")
    if not 0 <= flags.port < 65536:
        raise InvalidArgument(f"--port must be 0..65535, got {flags.port}")
    for name in ("num_tflite_pools", "num_tflite_interpreters_per_pool"):
        if getattr(flags, name) < 1:
            raise InvalidArgument(f"--{name} must be >= 1, got {getattr(flags, name)}")
    if flags.tflite_num_threads < 0:
        raise InvalidArgument(f"--tflite_num_threads must be >= 0, got {flags.tflite_num_threads}")


def validate(flags: ServerFlags, models: list[ModelConfig]) -> int:
    print(f"edgeseg serve: configuration OK: {len(models)} model(s)")
    for model in models:
        try:
            on_disk = list_versions(model.base_path)
            found = f"versions on disk {sorted(on_disk)}, would serve " \
                    f"{aspired_versions(on_disk, model.policy)}"
        except OSError as exc:
            found = f"WARNING: base path not readable now ({exc.strerror})"
        lite = flags.prefer_tflite_model if model.prefer_tflite is None else model.prefer_tflite
        print(f"  {model.name}: {model.base_path} (tags {','.join(model.tags)}; "
              f"{'model.tflite preferred; ' if lite else ''}"
              f"{model.policy.kind.value}; {model.preserve.value}) {found}")
    return 0


def main(argv: list[str]) -> int:
    flags = parse_flags(argv)
    if flags.help:
        print(usage())
        return 0
    _check_flags(flags)
    models = models_from_flags(flags)
    tls = load_ssl_config(flags.ssl_config_file) if flags.ssl_config_file else None
    metrics_path = _metrics_path(flags)
    batching = _batching(flags)
    if flags.validate_config:
        return validate(flags, models)
    logstream.install("edgeseg serve")  # a full log disk must not stop the server
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s edgeseg serve %(levelname)s %(name)s: %(message)s",
    )
    return _serve(flags, models, tls, metrics_path, batching)


def _metrics_path(flags: ServerFlags) -> str | None:
    if not flags.monitoring_config_file:
        return None
    try:
        text = Path(flags.monitoring_config_file).read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read --monitoring_config_file "
                              f"{flags.monitoring_config_file}: {exc.strerror}") from None
    path = parse_monitoring_config(text, f"monitoring config file {flags.monitoring_config_file}")
    if path and not flags.rest_api_port:
        raise InvalidArgument("Prometheus metrics are served on the REST port: give "
                              "--rest_api_port with --monitoring_config_file")
    return path


def _version_states(core):  # the metrics gauge's collector
    counts: dict[tuple[str, str], int] = {}
    for name in core.manager.model_names():
        try:
            servables = core.version_states(name)
        except NotFound:  # no versions yet
            servables = []
        for servable in servables:
            key = (name, servable.state.name)
            counts[key] = counts.get(key, 0) + 1
    return counts.items()


def _batching(flags: ServerFlags) -> BatchingOptions | None:
    if flags.batching_parameters_file and not flags.enable_batching:
        raise InvalidArgument("--batching_parameters_file needs --enable_batching")
    if not flags.enable_batching:
        return None
    if not flags.batching_parameters_file:
        return BatchingOptions()
    try:
        text = Path(flags.batching_parameters_file).read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read --batching_parameters_file "
                              f"{flags.batching_parameters_file}: {exc.strerror}") from None
    return parse_batching_parameters(text, f"batching parameters file "
                                           f"{flags.batching_parameters_file}")


def _build_core(flags: ServerFlags, batching: BatchingOptions | None):
    """The ServerCore the flags describe, its metrics collectors attached (imports no TF)."""
    from edgeseg.serving import session_options
    from edgeseg.serving.loader import LIVE_BATCHERS, version_loader
    from edgeseg.serving.server_core import CoreOptions, ServerCore
    from edgeseg.serving.tflite_loader import TfLiteOptions

    # built at the first SavedModel load: it imports TensorFlow, which model.tflite needs not
    session = functools.cache(lambda: session_options.from_flags(flags))
    core = ServerCore(CoreOptions(
        file_system_poll_wait_s=flags.file_system_poll_wait_seconds,
        max_load_retries=flags.max_num_load_retries,
        load_retry_interval_s=flags.load_retry_interval_micros / 1e6,
        allow_labels_for_unavailable=flags.allow_version_labels_for_unavailable_models,
        method_name_check=flags.enable_signature_method_name_check,
        default_tags=split_tags(flags.saved_model_tags),
        default_preserve=parse_preserve(flags.aspired_version_policy),
    ), functools.partial(version_loader, session_config=lambda: session()[0],
                         warmup=flags.enable_model_warmup, batching=batching,
                         session_summary=lambda: session()[1],
                         prefer_tflite=flags.prefer_tflite_model,
                         tflite=TfLiteOptions(flags.num_tflite_pools,
                                              flags.num_tflite_interpreters_per_pool,
                                              flags.tflite_num_threads,
                                              flags.tflite_reference_kernels)))
    SERVING.watch_versions(lambda: _version_states(core))
    if batching is not None:
        SERVING.watch_batch_queues(
            lambda: [((), sum(b.queued_batches for b in list(LIVE_BATCHERS)))])
    return core


def _serve(flags: ServerFlags, models: list[ModelConfig], tls: TlsConfig | None,
           metrics_path: str | None, batching: BatchingOptions | None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # keep TF's C++ INFO lines out of logs
    core = _build_core(flags, batching)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda signum, frame: stop.set())
    core.start()
    try:
        core.apply_config(models)
        server, health = _start_grpc(flags, core, tls, models)
        rest = _start_rest(flags, core, tls, metrics_path) if flags.rest_api_port else None
        sd_notify("READY=1")
    except BaseException:
        core.stop(0)
        raise
    _report_loads(core)
    if flags.model_config_file and flags.model_config_file_poll_wait_seconds > 0:
        threading.Thread(target=_poll_config_file, args=(flags, core, stop), daemon=True,
                         name="config-poll").start()
    while not stop.wait(0.2):
        pass
    _shutdown(flags.shutdown_grace_seconds, core, server, health, rest)
    _exit_now(0)
    return 0


def _shutdown(grace: float, core, server, health, rest) -> None:
    """Stop accepting, let in-flight calls finish within grace, unload everything."""
    print(f"edgeseg serve: stopping; in-flight requests have {grace:g}s to finish",
          file=sys.stderr, flush=True)
    sd_notify("STOPPING=1")
    health.shutdown()  # health checks say NOT_SERVING while in-flight calls finish
    if rest is not None:
        rest.stop()
    server.stop(grace).wait()
    core.stop(grace)  # unloading waits for REST calls still holding a handle
    print("edgeseg serve: stopped", file=sys.stderr, flush=True)


def _exit_now(status: int) -> None:
    """Exit without the interpreter's teardown: with TensorFlow imported it takes ~2 s and
    does nothing left to do (models are unloaded, sockets closed); logs are flushed first."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _grpc_options(flags: ServerFlags) -> list[tuple[str, object]]:
    options: dict[str, object] = {
        "grpc.max_receive_message_length": flags.grpc_max_message_bytes,
        "grpc.max_send_message_length": flags.grpc_max_message_bytes,
        "grpc.so_reuseport": 0,
    }
    for item in filter(None, (s.strip() for s in flags.grpc_channel_arguments.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"--grpc_channel_arguments: expected key=value, got {item!r}")
        options[key.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value
    return list(options.items())


def _start_grpc(flags: ServerFlags, core, tls: TlsConfig | None,
                models: tuple[ModelConfig, ...] | list[ModelConfig] = ()):
    import grpc

    from edgeseg.serving.grpc_admission import Admission
    from edgeseg.serving.grpc_api import add_services
    from edgeseg.serving.health import HealthReporter
    from edgeseg.serving.profiler import wanted

    admission = Admission(flags.grpc_max_threads, flags.grpc_max_concurrent_rpcs,
                          on_reject=lambda reason: SERVING.reject("grpc", reason))
    SERVING.watch_transport("grpc", admission.stats)
    server = grpc.server(admission.executor, interceptors=[admission],
                         options=_grpc_options(flags))
    reporter = HealthReporter(core)
    add_services(server, core, reporter.servicer, wanted(models, flags.prefer_tflite_model))
    shown = _listen(server, flags, tls)
    reporter.start()
    server.start()
    print(f"edgeseg serve: gRPC listening on {shown}{' (TLS)' if tls else ''}",
          file=sys.stderr, flush=True)
    if flags.grpc_socket_path:
        print(f"edgeseg serve: gRPC listening on unix:{flags.grpc_socket_path}",
              file=sys.stderr, flush=True)
    return server, reporter


def _listen(server, flags: ServerFlags, tls: TlsConfig | None) -> str:
    """Bind the TCP port, with TLS when configured (and the Unix socket, plain); the TCP
    address actually bound."""
    host = flags.grpc_bind_address
    address = f"[{host}]:{flags.port}" if ":" in host else f"{host}:{flags.port}"
    try:
        port = (server.add_secure_port(address, grpc_credentials(tls)) if tls
                else server.add_insecure_port(address))
    except RuntimeError as exc:
        raise Unavailable(f"cannot listen for gRPC on {address}: {exc}") from None
    if not port:
        raise Unavailable(f"cannot listen for gRPC on {address}")
    if flags.grpc_socket_path:
        if Path(flags.grpc_socket_path).is_socket():
            Path(flags.grpc_socket_path).unlink()  # a stale socket from a previous run
        if not server.add_insecure_port(f"unix:{flags.grpc_socket_path}"):
            raise Unavailable(f"cannot listen for gRPC on unix:{flags.grpc_socket_path}")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _start_rest(flags: ServerFlags, core, tls: TlsConfig | None,
                metrics_path: str | None):
    from edgeseg.serving.http_message import Limits
    from edgeseg.serving.rest_api import RestServer

    host = flags.grpc_bind_address
    limits = Limits(num_threads=flags.rest_api_num_threads or 4 * (os.cpu_count() or 1),
                    idle_timeout_s=flags.rest_api_idle_timeout_s,
                    max_connections=_fit_fd_limit(flags.rest_api_max_connections),
                    max_body_bytes=flags.grpc_max_message_bytes)
    try:
        rest = RestServer(core, host, flags.rest_api_port, limits,
                          ssl_context(tls) if tls else None, metrics_path,
                          flags.rest_api_timeout_in_ms)
    except OSError as exc:
        raise Unavailable(f"cannot listen for REST on {host}:{flags.rest_api_port}: "
                          f"{exc.strerror}") from None
    rest.start()
    scheme = "https" if tls else "http"
    print(f"edgeseg serve: REST listening on {host}:{rest.port} ({scheme})", file=sys.stderr,
          flush=True)
    return rest


FD_RESERVE = 256  # descriptors kept for model files, gRPC, logs beside REST connections


def _fit_fd_limit(max_connections: int) -> int:
    """Raise the open-files soft limit to the hard one; max_connections, lowered (with a
    warning) when the limit cannot hold that many sockets besides FD_RESERVE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit to %d: %s", hard, exc)
    fits = max(1, soft - FD_RESERVE)
    if max_connections > fits:
        log.warning("--rest_api_max_connections=%d lowered to %d to fit the open-files "
                    "limit of %d", max_connections, fits, soft)
    return min(max_connections, fits)


def _report_loads(core) -> None:
    for name in sorted(core.models):
        try:
            servables = core.version_states(name)
        except Exception:  # no versions at all
            log.warning("model %s: no versions loaded", name)
            continue
        for s in servables:
            if s.error is not None:
                log.error("model %s version %d failed to load: %s", name, s.version, s.error)


def _poll_config_file(flags: ServerFlags, core, stop: threading.Event) -> None:
    last = Path(flags.model_config_file).read_text(errors="replace")
    while not stop.wait(flags.model_config_file_poll_wait_seconds):
        try:
            text = Path(flags.model_config_file).read_text(errors="replace")
            if text == last:
                continue
            last = text
            core.apply_config(models_from_flags(flags))
            log.info("applied the changed %s", flags.model_config_file)
        except Exception as exc:  # keep serving the last good config
            log.error("not applying %s: %s", flags.model_config_file, exc)
