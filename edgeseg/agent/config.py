"""The agent's configuration: typed, validated at start-up, errors that name the key.

Contract: :func:`load` reads an optional YAML file, replaces ``${VAR}`` / ``${VAR:-default}``
in its string values from the environment (for secrets and per-device values), applies
CLI overrides (dotted keys, e.g. ``{"mqtt.address": "host:1883"}``) on top, and returns
an :class:`AgentConfig` — or raises InvalidArgument whose message names the file and the
offending key (``mqtt.tls.ca_file: …``). Unknown keys are refused everywhere. Nothing
here opens a camera, a socket or a password file: ``--validate-config`` is safe to run in
systemd's ExecStartPre.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from edgeseg.errors import InvalidArgument
from edgeseg.model_contract import (
    AGENT_SIGNATURES,
    ASSETS_EXTRA,
    LABELS_FILE,
    PREDICT_ENCODED,
    SERVING_DEFAULT,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _address(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what} must be HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


class ClientTlsConfig(_Strict):
    """TLS for a client connection; the files are read when the agent connects."""

    ca_file: Path | None = Field(None, description="CA bundle that signs the server's cert "
                                 "(default: the system's trust store).")
    cert_file: Path | None = Field(None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(None, description="Client private key (with cert_file).")
    server_name: str | None = Field(None, description="Name to check the server's cert "
                                    "against, when it differs from the host in the address.")

    @model_validator(mode="after")
    def _cert_with_key(self) -> ClientTlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class SourceConfig(_Strict):
    """Where frames come from (capture.py)."""

    uri: str = Field(description="Device index (0), /dev/videoN, a video file, an rtsp:// or "
                     "http(s):// URL, or a GStreamer pipeline ending in appsink.")
    loop: bool = Field(False, description="Restart a video file at its end (else the agent "
                       "exits 0 after the last frame).")
    pace: float | None = Field(None, gt=0, description="Files only: play at this many "
                               "frames per second, like a camera (default: the file's own "
                               "rate).")
    max_fps: float | None = Field(None, gt=0, description="Cap on frames handed to inference "
                                  "per second; the frames between are read and skipped.")
    fps: float | None = Field(None, gt=0, description="Deprecated: pace for a file, max_fps "
                              "for a live source.")
    open_timeout_s: float = Field(10.0, gt=0, description="Give up opening after this long.")
    read_timeout_s: float = Field(5.0, gt=0, description="No frame for this long means the "
                                  "camera hangs: it is reopened.")
    backoff_initial_s: float = Field(0.25, gt=0, description="First reconnect delay.")
    backoff_max_s: float = Field(1.0, gt=0, description="Reconnect delay cap. Between full "
                                 "opens only a cheap probe runs (a TCP connect for network "
                                 "cameras), so a low cap costs little.")

    @model_validator(mode="after")
    def _check(self) -> SourceConfig:
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError("backoff_initial_s must not exceed backoff_max_s")
        if self.fps is not None and (self.pace is not None or self.max_fps is not None):
            raise ValueError("fps is deprecated: give pace and/or max_fps instead, not with it")
        return self

    @field_validator("uri", mode="before")
    @classmethod
    def _index_as_text(cls, value: object) -> object:
        # YAML reads `uri: 0` as an int; a device index is still a source
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class ServerConfig(_Strict):
    """The TF-Serving-compatible model server (inference.py)."""

    address: str = Field("127.0.0.1:8500", description="gRPC HOST:PORT.")
    model: str = Field("deeplab", description="Model name.")
    signature: str = Field(
        SERVING_DEFAULT, description=f"{SERVING_DEFAULT}: raw uint8 images; {PREDICT_ENCODED}: "
        "JPEG bytes (less to send, more to decode).",
        json_schema_extra={"enum": list(AGENT_SIGNATURES)})
    version: int | None = Field(None, ge=1, description="Pin a version (default: latest).")
    version_label: str | None = Field(None, description="Pin a version label (e.g. stable).")
    input_size: tuple[int, int] | None = Field(
        None, description="[height, width] frames are resized to before sending (default: "
        "the signature's fixed size if it has one, else the frame's own size).")
    deadline_s: float = Field(5.0, gt=0, description="Deadline per Predict call.")
    max_in_flight: int = Field(2, ge=1, le=64, description="Pipelined requests at once.")
    jpeg_quality: int = Field(90, ge=10, le=100, description=f"For {PREDICT_ENCODED}.")
    max_message_mb: int = Field(64, ge=1, description="gRPC send/receive message size cap.")
    backoff_initial_s: float = Field(0.2, gt=0)
    backoff_max_s: float = Field(5.0, gt=0)
    tls: ClientTlsConfig | None = None

    @field_validator("signature")
    @classmethod
    def _known_signature(cls, value: str) -> str:
        if value not in AGENT_SIGNATURES:
            raise ValueError(f"unknown signature {value!r}; expected one of "
                             f"{', '.join(AGENT_SIGNATURES)}")
        return value

    @model_validator(mode="after")
    def _check(self) -> ServerConfig:
        _address(self.address, "server.address")
        if self.version is not None and self.version_label is not None:
            raise ValueError("give version or version_label, not both")
        return self


class MqttConfig(_Strict):
    """The broker and topics (publisher.py, docs/mqtt.md)."""

    address: str = Field("127.0.0.1:1883", description="Broker HOST:PORT.")
    topic_prefix: str | None = Field(None, description="Default edgeseg/<device_id>/<camera>.")
    client_id: str | None = Field(None, description="Default edgeseg-<device_id>-<camera>.")
    qos_mask: Literal[0, 1, 2] = Field(1, description="1: acknowledged masks survive a "
                                       "broker restart (docs/mqtt.md, Accounting).")
    qos_meta: Literal[0, 1, 2] = 1
    qos_status: Literal[0, 1, 2] = 1
    session_expiry_s: int = Field(3600, ge=0, description="MQTT 5 session expiry: the "
                                  "broker keeps the session this long across a restart.")
    degraded_after: int = Field(5, ge=1, description="Frames refused by the broker in a "
                                "row before the status goes to degraded.")
    keepalive_s: int = Field(15, ge=2, description="Broker sends the Last Will after ~1.5x this.")
    outbox_size: int = Field(64, ge=1, description="Messages kept while the broker is away; "
                             "the oldest are dropped and counted beyond it.")
    username: str | None = None
    password_file: Path | None = Field(None, description="File whose first line is the "
                                       "password (e.g. $CREDENTIALS_DIRECTORY/mqtt).")
    password_env: str | None = Field(None, description="Environment variable with the password.")
    tls: ClientTlsConfig | None = None
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> MqttConfig:
        _address(self.address, "mqtt.address")
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("give password_file or password_env, not both")
        has_password = self.password_file is not None or self.password_env is not None
        if has_password and not self.username:
            raise ValueError("a password needs a username")
        if self.tls is not None and self.tls.server_name:
            # paho checks the certificate against the host in mqtt.address; no override
            raise ValueError("tls.server_name is not supported for MQTT: put the name "
                             "the broker's certificate carries in mqtt.address")
        if self.topic_prefix is not None and any(c in self.topic_prefix for c in "#+"):
            raise ValueError("topic_prefix must not contain MQTT wildcards")
        return self


class HealthConfig(_Strict):
    metrics_port: int | None = Field(None, ge=0, lt=65536, description="Serve Prometheus "
                                     "text on this port (0: any free port); off by default.")
    metrics_host: str = Field("127.0.0.1", description="Address the metrics page binds to.")
    stall_s: float = Field(10.0, gt=0, description="No frame for this long stops the "
                           "systemd watchdog pings (so systemd restarts a stuck agent).")
    ledger_file: Path | None = Field(None, description="Append one line per settled frame "
                                     "(unix time, frame id, outcome: acknowledged or the drop "
                                     "reason) to this file, to audit the accounting frame by "
                                     "frame; off by default.")


class PreviewConfig(_Strict):
    """The live preview page (issue 7) and low-rate frames over MQTT for ``edgeseg view``."""

    port: int | None = Field(None, ge=0, lt=65536, description="Serve the preview page on "
                             "this port (0: any free port); off by default.")
    host: str = Field("127.0.0.1", description="Address the preview binds to; expose it "
                      "beyond the machine only on purpose.")
    max_fps: float = Field(10.0, gt=0, description="Cap on preview frames per viewer.")
    publish_frames_fps: float | None = Field(
        None, gt=0, description="Publish JPEG frames to <prefix>/frame at most this often "
        "(for edgeseg view); off by default.")


class AgentConfig(_Strict):
    device_id: str = Field(default_factory=socket.gethostname)
    camera: str = Field("cam0", pattern=r"^[A-Za-z0-9_.-]+$")
    source: SourceConfig
    server: ServerConfig = Field(default_factory=ServerConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    preview: PreviewConfig = Field(default_factory=PreviewConfig)
    labels_file: Path | None = Field(None, description="Class names, one a line (the "
                                     f"export's {ASSETS_EXTRA}/{LABELS_FILE}); default "
                                     "class_N.")
    result_queue: int = Field(4, ge=1, description="Masks waiting for encoding.")
    max_frames: int | None = Field(None, ge=1, description="Exit 0 after this many masks.")

    @property
    def topic_prefix(self) -> str:
        return self.mqtt.topic_prefix or f"edgeseg/{self.device_id}/{self.camera}"


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute_env(value: Any, env: dict[str, str], path: str = "") -> Any:
    """``${VAR}`` and ``${VAR:-default}`` replaced in every string of a parsed YAML tree."""
    if isinstance(value, dict):
        return {k: substitute_env(v, env, f"{path}{k}.") for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, env, f"{path}{i}.") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise InvalidArgument(f"{path.rstrip('.')}: environment variable ${{{name}}} is not set")

    return _ENV_REF.sub(repl, value)


def apply_overrides(tree: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``tree`` with each dotted key set (None values are skipped)."""
    out = _deep_copy(tree)
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = out
        *parents, leaf = dotted.split(".")
        for key in parents:
            child = node.get(key)
            node[key] = child = child if isinstance(child, dict) else {}
            node = child
        node[leaf] = value
    return out


def _deep_copy(tree: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in tree.items()}


def describe(error: ValidationError, origin: str) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{key}: {msg}")
    return f"{origin}: " + "; ".join(lines)


def load(path: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None,
         env: dict[str, str] | None = None) -> AgentConfig:
    env = dict(os.environ) if env is None else env
    tree: dict[str, Any] = {}
    origin = "command line"
    if path is not None:
        origin = f"config {path}"
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise InvalidArgument(f"{origin}: cannot read: {exc.strerror}") from None
        try:
            tree = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise InvalidArgument(f"{origin}: not valid YAML: {exc}") from None
        if not isinstance(tree, dict):
            raise InvalidArgument(f"{origin}: the top level must be a mapping")
        try:
            tree = substitute_env(tree, env)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{origin}: {exc.message}") from None
    tree = apply_overrides(tree, overrides or {})
    try:
        return AgentConfig.model_validate(tree)
    except ValidationError as exc:
        raise InvalidArgument(describe(exc, origin)) from None
