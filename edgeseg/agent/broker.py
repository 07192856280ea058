"""Reaching an MQTT broker: address, TLS, user name and password, and why a connect failed.

Shared by the agent's publisher and the subscribers (``edgeseg subscribe``, ``edgeseg
view``), so all three take the same options and report a failure in the same words.

Contract:

* Settings are an :class:`~edgeseg.agent.config.MqttConfig` (the agent's YAML ``mqtt:``
  section, or :func:`config_from_args` for the subscribers' flags — the agent's flag
  names): validated before anything connects.
* :func:`read_password` reads the password from ``password_env`` or ``password_file``; a
  user name without either takes systemd's credential ``$CREDENTIALS_DIRECTORY/mqtt-password``
  when it exists (what ``LoadCredential=mqtt-password`` provides). Never from argv.
* :func:`make_client` builds a paho 2.x client (callback API 2, MQTT 5 unless told
  otherwise) with TLS and login set; nothing connects yet.
* :func:`refusal` and :func:`connect_failure` turn a CONNACK reason code or a socket/TLS
  exception into one line naming the cause and what to check.
* :func:`connect` is the subscribers' blocking first connection: it returns once the
  broker accepted the login or raises an ``EdgesegError`` (edgeseg.errors) with that
  one line (the CLI prints it and exits non-zero); paho's loop then keeps reconnecting.
"""

from __future__ import annotations

import argparse
import os
import ssl
import threading
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgeseg.agent.config import ClientTlsConfig, MqttConfig
from edgeseg.errors import InvalidArgument, PermissionDenied, Unavailable

CREDENTIAL = "mqtt-password"  # the systemd credential's name (LoadCredential=mqtt-password)

# CONNACK reason codes (MQTT 5, and 3.1.1's return codes as paho maps them) -> what to check
_HINTS = {
    "Bad user name or password": "check the user name and the password file",
    # Mosquitto 2 answers a wrong password with this one too
    "Not authorized": "check the user name and the password file; the broker does not let "
                      "this login in",
    "Client identifier not valid": "check mqtt.client_id",
    "Server unavailable": "the broker is starting or overloaded; retrying",
    "Banned": "the broker banned this client",
    "Bad authentication method": "the broker expects another login method",
}


def read_password(cfg: MqttConfig, env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    if cfg.password_env:
        if cfg.password_env not in env:
            raise InvalidArgument(f"mqtt.password_env: ${cfg.password_env} is not set")
        return env[cfg.password_env]
    path = cfg.password_file
    if path is None and cfg.username and env.get("CREDENTIALS_DIRECTORY"):
        candidate = Path(env["CREDENTIALS_DIRECTORY"]) / CREDENTIAL
        path = candidate if candidate.exists() else None
    if path:
        try:
            return path.read_text("utf-8").splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise InvalidArgument(f"mqtt.password_file: cannot read {path}: "
                                  f"{getattr(exc, 'strerror', None) or 'empty'}") from None
    return None


def make_client(cfg: MqttConfig, client_id: str | None = None, password: str | None = None,
                protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv5) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=client_id or f"edgeseg-{uuid.uuid4().hex[:12]}",
                         protocol=protocol)
    if cfg.username:
        client.username_pw_set(cfg.username, password)
    if cfg.tls is not None:
        tls = cfg.tls
        try:
            client.tls_set(ca_certs=str(tls.ca_file) if tls.ca_file else None,
                           certfile=str(tls.cert_file) if tls.cert_file else None,
                           keyfile=str(tls.key_file) if tls.key_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgument(f"mqtt.tls: cannot load the CA, certificate or key: "
                                  f"{getattr(exc, 'strerror', None) or exc}") from None
    client.reconnect_delay_set(max(1, int(cfg.reconnect_min_s)),
                               max(1, int(cfg.reconnect_max_s)))
    return client


def refusal(address: str, reason_code: ReasonCode) -> str:
    """One line for a CONNACK that refused the connection."""
    text = str(reason_code)
    hint = _HINTS.get(text)
    return (f"the MQTT broker at {address} refused the connection: {text}"
            + (f" ({hint})" if hint else ""))


def connect_failure(address: str, exc: BaseException) -> str:
    """One line for a connection that failed before any CONNACK (TCP or TLS)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS with the MQTT broker at {address} failed: certificate verify failed: "
                f"{exc.verify_message} "
                "(check --mqtt-ca / mqtt.tls.ca_file and the name in the address)")
    if isinstance(exc, ssl.SSLError):
        return f"TLS with the MQTT broker at {address} failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot reach the MQTT broker at {address}: connection refused"
    return f"cannot reach the MQTT broker at {address}: {getattr(exc, 'strerror', None) or exc}"


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def connect(client: mqtt.Client, cfg: MqttConfig, timeout: float = 10.0) -> None:
    """Connect, start paho's loop, and wait for the CONNACK; raise with one line if refused."""
    answered = threading.Event()
    result: dict[str, ReasonCode] = {}
    # a VERSION2 client's on_connect: (client, userdata, flags, reason code, properties)
    user_on_connect: Callable[..., None] | None = client.on_connect

    def on_connect(c: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                   reason_code: ReasonCode, properties: Properties | None) -> None:
        if not answered.is_set():
            result["rc"] = reason_code
            answered.set()
        if not reason_code.is_failure and user_on_connect is not None:
            user_on_connect(c, userdata, flags, reason_code, properties)

    client.on_connect = on_connect
    host, port = split_address(cfg.address)
    try:
        client.connect(host, port, keepalive=cfg.keepalive_s)
    except (OSError, ssl.SSLError) as exc:
        raise Unavailable(connect_failure(cfg.address, exc)) from None
    client.loop_start()
    if not answered.wait(timeout):
        _abandon(client)
        raise Unavailable(f"the MQTT broker at {cfg.address} did not answer the login "
                          f"within {timeout:g} s")
    if result["rc"].is_failure:
        _abandon(client)
        raise PermissionDenied(refusal(cfg.address, result["rc"]))


def _abandon(client: mqtt.Client) -> None:
    client.on_disconnect = None  # a refused login is not worth a "reconnecting" line
    client.disconnect()
    client.loop_stop()


# -- the subscribers' flags: the agent's names (edgeseg agent --help, "publishing") --

def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("broker (the agent's options)")
    g.add_argument("--mqtt", default="127.0.0.1:1883", metavar="HOST:PORT", help="broker")
    g.add_argument("--mqtt-username", help="user name (deploy/mosquitto: edgeseg-viewer)")
    g.add_argument("--mqtt-password-file", help="file whose first line is the password "
                   "(default with a user name: $CREDENTIALS_DIRECTORY/mqtt-password)")
    g.add_argument("--mqtt-password-env", help="environment variable holding the password")
    g.add_argument("--mqtt-ca", help="CA file: connect to the broker with TLS")
    g.add_argument("--mqtt-cert", help="client certificate (with --mqtt-key)")
    g.add_argument("--mqtt-key", help="client key")


def config_from_args(args: argparse.Namespace) -> MqttConfig:
    tls = None
    if args.mqtt_ca or args.mqtt_cert or args.mqtt_key:
        tls = {"ca_file": args.mqtt_ca, "cert_file": args.mqtt_cert, "key_file": args.mqtt_key}
    try:
        return MqttConfig(address=args.mqtt, username=args.mqtt_username,
                          password_file=args.mqtt_password_file,
                          password_env=args.mqtt_password_env,
                          tls=ClientTlsConfig(**tls) if tls else None)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        problems = "; ".join(e["msg"].removeprefix("Value error, ")
                             for e in getattr(exc, "errors", list)())
        raise InvalidArgument(f"broker options: {problems or exc}") from None


def client_for_args(args: argparse.Namespace, env: Mapping[str, str] | None = None
                    ) -> tuple[mqtt.Client, MqttConfig]:
    """A subscriber's client from :func:`add_arguments`'s flags (not connected)."""
    cfg = config_from_args(args)
    return make_client(cfg, password=read_password(cfg, env)), cfg
