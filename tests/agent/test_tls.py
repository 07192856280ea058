"""TLS on both links: MQTT (mutual TLS against a real Mosquitto) and gRPC, with
certificates made here by openssl."""

import os
import shutil
import subprocess
import threading
import time
from concurrent import futures

import grpc
import numpy as np
import pytest

from edgeseg.agent import protos
from edgeseg.agent.capture import Frame
from edgeseg.agent.config import ClientTlsConfig, MqttConfig, ServerConfig
from edgeseg.agent.inference import InferenceLoop
from edgeseg.agent.messages import Message
from edgeseg.agent.metrics import AgentMetrics
from edgeseg.agent.publisher import Publisher
from edgeseg.agent.queues import DropOldestQueue

from .conftest import Mosquitto, free_port, wait_until
from .fake_model_server import FakeServer

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=edgeseg test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout",
                f"{name}.key", "-out", f"{name}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", f"{name}.pem",
                cwd=d)
    for f in d.iterdir():
        f.chmod(0o644)
    d.chmod(0o755)
    return d


def test_mqtt_mutual_tls(tmp_path, certs, recorder_factory, caplog):
    caplog.set_level("DEBUG", logger="edgeseg.agent.publisher")
    broker = Mosquitto(tmp_path)
    tls_port = free_port()
    as_root = "user root\n" if os.geteuid() == 0 else ""
    broker.conf.write_text(
        f"{as_root}listener {broker.port} 127.0.0.1\nallow_anonymous true\n"
        f"listener {tls_port} 127.0.0.1\ncafile {certs / 'ca.pem'}\n"
        f"certfile {certs / 'server.pem'}\nkeyfile {certs / 'server.key'}\n"
        "require_certificate true\n")
    broker.start()
    try:
        rec = recorder_factory(broker.port)  # plain listener, same broker
        good = ClientTlsConfig(ca_file=certs / "ca.pem", cert_file=certs / "client.pem",
                         key_file=certs / "client.key")
        pub = Publisher(MqttConfig(address=f"127.0.0.1:{tls_port}", tls=good), "edgeseg/t/c",
                        "tls-ok", AgentMetrics())
        pub.start()
        pub.publish([Message("edgeseg/t/c/meta", b"{}", 1)])
        wait_until(lambda: rec.of("meta"), 10, what="a message over TLS")
        pub.close(2)
        # without the client certificate the broker refuses the handshake
        bad = Publisher(MqttConfig(address=f"127.0.0.1:{tls_port}",
                                   tls=ClientTlsConfig(ca_file=certs / "ca.pem")),
                        "edgeseg/t/c", "tls-bad", AgentMetrics())
        bad.start()
        wait_until(lambda: "peer did not return a certificate" in broker.log.read_text(), 10,
                   what="the broker to refuse the handshake without a client certificate")
        assert not bad.connected.is_set()
        # and the agent says so, once, at ERROR (it was a DEBUG line nobody saw)
        wait_until(lambda: [r for r in caplog.records if "before accepting a session"
                            in r.getMessage()], 10, what="the agent to log the closed handshake")
        bad.close(1)
        said = [r for r in caplog.records if "before accepting a session" in r.getMessage()]
        assert len(said) == 1 and said[0].levelname == "ERROR"
        assert "client certificate" in said[0].getMessage()
    finally:
        broker.stop()


def test_grpc_tls(certs):
    fake = FakeServer(0.0, None)
    handler = grpc.method_handlers_generic_handler("tensorflow.serving.PredictionService", {
        "Predict": grpc.unary_unary_rpc_method_handler(
            fake.predict, request_deserializer=protos.PredictRequest.FromString,
            response_serializer=lambda m: m.SerializeToString())})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    creds = grpc.ssl_server_credentials(
        [((certs / "server.key").read_bytes(), (certs / "server.pem").read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    cfg = ServerConfig(address=f"127.0.0.1:{port}", input_size=(8, 8),
                       tls=ClientTlsConfig(ca_file=certs / "ca.pem"))
    frames, results = DropOldestQueue(1), DropOldestQueue(4)
    loop = InferenceLoop(cfg, frames, results, AgentMetrics())
    try:
        loop.start()
        frames.put(Frame(0, np.zeros((8, 8, 3), np.uint8), time.time(), time.monotonic()))
        wait_until(lambda: len(results) == 1, 10, what="a reply over TLS")
        assert fake.calls == 1
    finally:
        frames.close()
        loop.join(5)
        loop.close()
        server.stop(0)
    assert not any(t.name == "inference" and t.is_alive() for t in threading.enumerate())
