"""``edgeseg agent``: flags and config file in, a running pipeline, signals, exit codes.

Contract: ``main(argv) -> int``. Flags override the YAML given with ``--config``; only
flags that are given override (argparse defaults are None). ``--validate-config`` loads
and checks the config, prints one line and exits 0 — or raises InvalidArgument naming
the key (the CLI turns it into one line on stderr and exit 2) — without opening any
device or connection, as systemd's ExecStartPre wants; a source that can never be read here
(a GStreamer pipeline without GStreamer-enabled OpenCV or PyGObject) fails it, naming the
packages. SIGTERM and SIGINT stop the
pipeline in order (offline published, outbox flushed) and the exit status is 0.
Passwords are never flags: only a file path or an environment variable name.
"""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Sequence

from edgeseg import logstream
from edgeseg.agent import config as config_mod
from edgeseg.model_contract import AGENT_SIGNATURES, ASSETS_EXTRA, LABELS_FILE
from edgeseg.mqtt_contract import PUBLISHED

# flag dest -> dotted config key
_OVERRIDES = {
    "source": "source.uri", "loop": "source.loop", "fps": "source.fps",
    "pace": "source.pace", "max_fps": "source.max_fps",
    "read_timeout": "source.read_timeout_s", "open_timeout": "source.open_timeout_s",
    "source_backoff_initial": "source.backoff_initial_s",
    "source_backoff_max": "source.backoff_max_s",
    "server": "server.address", "model": "server.model", "signature": "server.signature",
    "model_version": "server.version", "version_label": "server.version_label",
    "deadline": "server.deadline_s", "max_in_flight": "server.max_in_flight",
    "input_size": "server.input_size",
    "mqtt": "mqtt.address", "topic_prefix": "mqtt.topic_prefix",
    "qos_mask": "mqtt.qos_mask", "qos_meta": "mqtt.qos_meta", "qos_status": "mqtt.qos_status",
    "mqtt_username": "mqtt.username", "mqtt_password_file": "mqtt.password_file",
    "mqtt_password_env": "mqtt.password_env", "mqtt_ca": "mqtt.tls.ca_file",
    "mqtt_cert": "mqtt.tls.cert_file", "mqtt_key": "mqtt.tls.key_file",
    "server_ca": "server.tls.ca_file",
    "device_id": "device_id", "camera": "camera", "labels": "labels_file",
    "max_frames": "max_frames", "metrics_port": "health.metrics_port",
    "preview_port": "preview.port", "preview_host": "preview.host",
    "publish_frames": "preview.publish_frames_fps",
}


def _size(text: str) -> list[int]:
    parts = text.lower().replace("x", ",").split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH, got {text!r}")
    return [int(p) for p in parts]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edgeseg agent", argument_default=None,
        description="Camera agent: frames -> gRPC Predict -> masks over MQTT "
                    "(docs/mqtt.md says what is published).")
    p.add_argument("--config", help="YAML config file (flags override it)")
    p.add_argument("--validate-config", action="store_true",
                   help="check the config, print one line, exit (for ExecStartPre)")
    g = p.add_argument_group("capture")
    g.add_argument("--source", help="device index, /dev/videoN, file, rtsp/http URL, "
                   "csi://N (a Jetson CSI sensor through nvarguscamerasrc), or a GStreamer "
                   "pipeline ending in appsink")
    g.add_argument("--loop", action="store_true", default=None, help="loop a video file")
    g.add_argument("--pace", type=float, metavar="FPS",
                   help="play a video file at FPS frames per second (default: its own rate)")
    g.add_argument("--max-fps", type=float, metavar="FPS",
                   help="cap on frames per second handed to inference (the rest are skipped)")
    g.add_argument("--fps", type=float, help="deprecated: --pace for a file, --max-fps for "
                   "a live source")
    g.add_argument("--read-timeout", type=float, metavar="S",
                   help="no frame for S seconds: the camera hangs, reconnect (default 5)")
    g.add_argument("--open-timeout", type=float, metavar="S",
                   help="give up opening the source after S seconds (default 10)")
    g.add_argument("--source-backoff-initial", type=float, metavar="S",
                   help="first delay before reconnecting to the source (default 0.25)")
    g.add_argument("--source-backoff-max", type=float, metavar="S",
                   help="cap on the reconnect delay (default 1; only a cheap probe, e.g. a "
                        "TCP connect, runs between full opens)")
    g = p.add_argument_group("inference")
    g.add_argument("--server", help="model server gRPC HOST:PORT")
    g.add_argument("--model", help="model name")
    g.add_argument("--signature", choices=list(AGENT_SIGNATURES))
    g.add_argument("--model-version", type=int, help="pin a model version")
    g.add_argument("--version-label", help="pin a version label")
    g.add_argument("--deadline", type=float, help="seconds per Predict call")
    g.add_argument("--max-in-flight", type=int, help="pipelined Predict calls")
    g.add_argument("--input-size", type=_size, help="HEIGHTxWIDTH sent to the model")
    g.add_argument("--server-ca", help="CA file: connect to the model server with TLS")
    g.add_argument("--labels", help=f"class names file (the export's {ASSETS_EXTRA}/{LABELS_FILE})")
    g = p.add_argument_group("publishing")
    g.add_argument("--mqtt", help="broker HOST:PORT")
    g.add_argument("--topic-prefix", help="default edgeseg/<device-id>/<camera>")
    g.add_argument("--device-id", help="default: the host name")
    g.add_argument("--camera", help="camera name (default cam0)")
    g.add_argument("--qos", type=int, choices=[0, 1, 2],
                   help=f"QoS of every topic ({', '.join(PUBLISHED)}); the flags below "
                        "override it")
    for topic in PUBLISHED:
        g.add_argument(f"--qos-{topic}", type=int, choices=[0, 1, 2],
                       help=f"QoS of <prefix>/{topic} (default 1)")
    g.add_argument("--mqtt-username")
    g.add_argument("--mqtt-password-file", help="file whose first line is the password")
    g.add_argument("--mqtt-password-env", help="environment variable holding the password")
    g.add_argument("--mqtt-ca", help="CA file: connect to the broker with TLS")
    g.add_argument("--mqtt-cert", help="client certificate for the broker (with --mqtt-key)")
    g.add_argument("--mqtt-key", help="client key for the broker")
    g = p.add_argument_group("preview")
    g.add_argument("--preview-port", type=int,
                   help="serve the live preview page on PORT (0: any free port)")
    g.add_argument("--preview-host", help="address of the preview page (default 127.0.0.1)")
    g.add_argument("--publish-frames", type=float, nargs="?", const=1.0, metavar="FPS",
                   help="also publish JPEG frames to <prefix>/frame (default 1 per second), "
                        "for edgeseg view")
    g = p.add_argument_group("health")
    g.add_argument("--metrics-port", type=int, help="serve Prometheus text on 127.0.0.1:PORT")
    g.add_argument("--max-frames", type=int, help="exit 0 after N masks")
    g.add_argument("--log-level", default="INFO",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def load_config(args: argparse.Namespace) -> config_mod.AgentConfig:
    overrides = {key: getattr(args, dest) for dest, key in _OVERRIDES.items()}
    for topic in PUBLISHED:  # --qos N is the default of --qos-TOPIC
        if overrides[f"mqtt.qos_{topic}"] is None:
            overrides[f"mqtt.qos_{topic}"] = args.qos
    return config_mod.load(args.config, overrides)


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    cfg = load_config(args)
    if args.validate_config:
        from edgeseg.agent.sources import check_source, parse_source, redact

        backend = check_source(parse_source(cfg.source.uri), cfg.source)
        print(f"edgeseg agent: config OK ({args.config or 'flags only'}): source "
              f"{redact(cfg.source.uri)!r} ({backend}) -> {cfg.server.address} "
              f"model {cfg.server.model!r} -> "
              f"mqtt {cfg.mqtt.address} {cfg.topic_prefix}/{{mask,meta,status}}")
        return 0
    logstream.install("edgeseg agent")  # a full log disk must not stop the agent
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from edgeseg.agent.pipeline import Pipeline  # the heavy imports only when running

    pipeline = Pipeline(cfg)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: pipeline.stop())
    return pipeline.run()
