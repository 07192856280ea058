"""TLS for gRPC and REST from TF Serving's ``--ssl_config_file``.

Contract: :func:`load_ssl_config` reads the ``SSLConfig`` text proto TF Serving takes::

    server_key: "-----BEGIN PRIVATE KEY-----\\n..."     # PEM text, not a path
    server_cert: "-----BEGIN CERTIFICATE-----\\n..."
    custom_ca: "-----BEGIN CERTIFICATE-----\\n..."      # optional: CA for client certs
    client_verify: true                                 # require and verify client certs

and returns a validated :class:`TlsConfig`, or raises InvalidArgument naming the file and
the field (key and cert are required; client_verify needs custom_ca). It parses through a
copy of the proto built at run time, as config.py does, because the pip package of
tensorflow-serving-api does not ship ssl_config_pb2. :func:`grpc_credentials` and
:func:`ssl_context` turn it into server credentials; the Unix socket stays plain (local).
"""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.errors import InvalidArgument
from edgeseg.serving import textproto
from edgeseg.wire.schema import MessageClass


@dataclass(frozen=True)
class TlsConfig:
    server_key: str
    server_cert: str
    custom_ca: str = ""
    client_verify: bool = False


def _ssl_config_class() -> MessageClass:
    def build(fdp: Any) -> None:
        msg = fdp.message_type.add(name="SSLConfig")
        for number, name in enumerate(("server_key", "server_cert", "custom_ca"), start=1):
            msg.field.add(name=name, number=number, type=9, label=1)  # string
        msg.field.add(name="client_verify", number=4, type=8, label=1)  # bool

    return textproto.message_class("SSLConfig", "edgeseg/serving/ssl_config.proto", build)


def parse_ssl_config(text: str, origin: str = "ssl config") -> TlsConfig:
    message = textproto.parse(_ssl_config_class(), text, origin)
    for name in ("server_key", "server_cert"):
        if not getattr(message, name).strip():
            raise InvalidArgument(f"{origin}: {name} is missing (PEM text)")
    if message.client_verify and not message.custom_ca.strip():
        raise InvalidArgument(f"{origin}: client_verify needs custom_ca to verify clients with")
    return TlsConfig(message.server_key, message.server_cert, message.custom_ca,
                     message.client_verify)


def load_ssl_config(path: str | Path) -> TlsConfig:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read --ssl_config_file {path}: {exc.strerror}") from None
    return parse_ssl_config(text, f"ssl config file {path}")


def grpc_credentials(config: TlsConfig) -> Any:
    import grpc

    return grpc.ssl_server_credentials(
        [(config.server_key.encode(), config.server_cert.encode())],
        root_certificates=config.custom_ca.encode() or None,
        require_client_auth=config.client_verify,
    )


def ssl_context(config: TlsConfig) -> ssl.SSLContext:
    """A server-side SSLContext (the ssl module loads a key pair only from files: they live
    in a private temporary folder for the moment of loading)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="edgeseg-tls-") as tmp:
        os.chmod(tmp, 0o700)
        key, cert = Path(tmp) / "key.pem", Path(tmp) / "cert.pem"
        key.write_text(config.server_key)
        cert.write_text(config.server_cert)
        try:
            context.load_cert_chain(cert, key)
        except ssl.SSLError as exc:
            raise InvalidArgument(f"server_key/server_cert are not a usable PEM pair: {exc}"
                                  ) from None
    if config.custom_ca:
        context.load_verify_locations(cadata=config.custom_ca)
    if config.client_verify:
        context.verify_mode = ssl.CERT_REQUIRED
    return context
