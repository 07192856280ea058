"""TLS from --ssl_config_file: the SSLConfig text proto, then gRPC and REST with client_verify."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import urllib.error
import urllib.request

import grpc
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from edgeseg.errors import InvalidArgument
from edgeseg.serving.tls import parse_ssl_config

from .conftest import free_port, tfs_data
from .tfs_requests import predict_request


def quote(pem: bytes | str) -> str:
    """A text-format string literal: PEM's newlines escaped."""
    text = pem.decode() if isinstance(pem, bytes) else pem
    return '"' + text.replace("\n", "\\n") + '"'


def pem_config(key="K", cert="C", ca="", verify=False):
    lines = [f"server_key: {quote(key)}", f"server_cert: {quote(cert)}"]
    if ca:
        lines.append(f"custom_ca: {quote(ca)}")
    if verify:
        lines.append("client_verify: true")
    return "\n".join(lines)


def test_ssl_config_parses():
    config = parse_ssl_config(pem_config("KEY", "CERT", "CA", True))
    assert (config.server_key, config.server_cert, config.custom_ca, config.client_verify) == (
        "KEY", "CERT", "CA", True)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('server_cert: "C"', "server_key is missing"),
        ('server_key: "K"', "server_cert is missing"),
        (pem_config(verify=True), "client_verify needs custom_ca"),
        ('server_key: "K" server_cert: "C" bogus: 1', '"bogus"'),
    ],
)
def test_bad_ssl_configs(text, complaint):
    with pytest.raises(InvalidArgument, match=complaint):
        parse_ssl_config(text)


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(folder):
    """A CA, a server cert for 127.0.0.1 and a client cert it signed, and a stranger."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "2", "-subj", "/CN=edgeseg test CA", cwd=folder)
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", f"/CN={name}", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext",
                 cwd=folder)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "stranger.key",
             "-out", "stranger.pem", "-days", "2", "-subj", "/CN=stranger", cwd=folder)
    return {p.stem + p.suffix: p.read_bytes() for p in folder.glob("*.*")}


@pytest.fixture(scope="module")
def tls(serve, tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    pki = make_pki(folder)
    config = folder / "ssl.config"
    config.write_text("\n".join([
        f"server_key: {quote(pki['server.key'])}",
        f"server_cert: {quote(pki['server.pem'])}",
        f"custom_ca: {quote(pki['ca.pem'])}",
        "client_verify: true",
    ]))
    port = free_port()
    server = serve(f"--model_base_path={tfs_data('saved_model_half_plus_two_cpu')}",
                   f"--ssl_config_file={config}", f"--rest_api_port={port}")
    server.wait_for_line(f"REST listening on 127.0.0.1:{port} (https)")
    server.https = f"https://127.0.0.1:{port}/v1/models/default:predict"
    server.pki = pki
    return server


def grpc_predict(server, key=None, cert=None):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=server.pki["ca.pem"], private_key=key, certificate_chain=cert)
    with grpc.secure_channel(f"127.0.0.1:{server.port}", credentials) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        return stub.Predict(predict_request("default", [[2.0]]), timeout=20).outputs[
            "y"].float_val[0]


def test_grpc_serves_a_client_with_the_right_certificate(tls):
    assert grpc_predict(tls, tls.pki["client.key"], tls.pki["client.pem"]) == 3.0


@pytest.mark.parametrize("who", ["stranger", None], ids=["wrong-cert", "no-cert"])
def test_grpc_refuses_other_clients(tls, who):
    key = tls.pki[f"{who}.key"] if who else None
    cert = tls.pki[f"{who}.pem"] if who else None
    with pytest.raises(grpc.RpcError) as err:
        grpc_predict(tls, key, cert)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def https_predict(server, who, tmp_path):
    context = ssl.create_default_context(cadata=server.pki["ca.pem"].decode())
    if who:
        (tmp_path / "c.pem").write_bytes(server.pki[f"{who}.pem"])
        (tmp_path / "c.key").write_bytes(server.pki[f"{who}.key"])
        context.load_cert_chain(tmp_path / "c.pem", tmp_path / "c.key")
    request = urllib.request.Request(server.https, data=b'{"instances": [2.0]}', method="POST")
    with urllib.request.urlopen(request, timeout=20, context=context) as response:
        return response.read()


def test_rest_over_tls(tls, tmp_path):
    assert b"3.0" in https_predict(tls, "client", tmp_path)
    for who in ("stranger", None):
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            https_predict(tls, who, tmp_path)
    assert b"3.0" in https_predict(tls, "client", tmp_path)  # still serving
