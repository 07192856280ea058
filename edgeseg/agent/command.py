"""``edgeseg agent``: flags and config file in, a running pipeline, signals, exit codes.

Contract: ``main(argv) -> int``. Flags override the YAML given with ``--config``; only
flags that are given override (argparse defaults are None). ``--validate-config`` loads
and checks the config, prints one line and exits 0 — or raises InvalidArgument naming
the key (the CLI turns it into one line on stderr and exit 2) — without opening any
device or connection, as systemd's ExecStartPre wants. SIGTERM and SIGINT stop the
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

# flag dest -> dotted config key
_OVERRIDES = {
    "source": "source.uri", "loop": "source.loop", "fps": "source.fps",
    "server": "server.address", "model": "server.model", "signature": "server.signature",
    "model_version": "server.version", "version_label": "server.version_label",
    "deadline": "server.deadline_s", "max_in_flight": "server.max_in_flight",
    "input_size": "server.input_size",
    "mqtt": "mqtt.address", "topic_prefix": "mqtt.topic_prefix", "qos": "mqtt.qos_meta",
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
                   "or a GStreamer pipeline ending in appsink")
    g.add_argument("--loop", action="store_true", default=None, help="loop a video file")
    g.add_argument("--fps", type=float, help="cap on frames per second")
    g = p.add_argument_group("inference")
    g.add_argument("--server", help="model server gRPC HOST:PORT")
    g.add_argument("--model", help="model name")
    g.add_argument("--signature", choices=["serving_default", "predict_encoded"])
    g.add_argument("--model-version", type=int, help="pin a model version")
    g.add_argument("--version-label", help="pin a version label")
    g.add_argument("--deadline", type=float, help="seconds per Predict call")
    g.add_argument("--max-in-flight", type=int, help="pipelined Predict calls")
    g.add_argument("--input-size", type=_size, help="HEIGHTxWIDTH sent to the model")
    g.add_argument("--server-ca", help="CA file: connect to the model server with TLS")
    g.add_argument("--labels", help="class names file (the export's assets.extra/labels.txt)")
    g = p.add_argument_group("publishing")
    g.add_argument("--mqtt", help="broker HOST:PORT")
    g.add_argument("--topic-prefix", help="default edgeseg/<device-id>/<camera>")
    g.add_argument("--device-id", help="default: the host name")
    g.add_argument("--camera", help="camera name (default cam0)")
    g.add_argument("--qos", type=int, choices=[0, 1, 2], help="QoS of meta")
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
    return config_mod.load(args.config, overrides)


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    cfg = load_config(args)
    if args.validate_config:
        print(f"edgeseg agent: config OK ({args.config or 'flags only'}): source "
              f"{cfg.source.uri!r} -> {cfg.server.address} model {cfg.server.model!r} -> "
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
