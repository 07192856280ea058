"""deploy/mosquitto: a real Mosquitto with its TLS listener, password file and ACL.

The broker runs deploy/mosquitto/edgeseg.conf (adapted only in ports and paths, see
brokers.adapt) with certificates and passwords this test makes; the clients are paho-mqtt
2.x speaking MQTT 5 over TLS, so a refused publish shows as a PUBACK reason code and a
refused login as a CONNACK reason code, not as silence.
"""

from __future__ import annotations

import queue
import re
import socket
import ssl
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.services import wait_until

from . import brokers
from .conftest import DEPLOY, free_port, require

MOSQ = DEPLOY / "mosquitto"
USERS = {"jetson-01": "pw-jetson-01", "jetson-02": "pw-jetson-02",
         "edgeseg-viewer": "pw-viewer"}
NOT_AUTHORIZED = 135
BAD_USER_OR_PASSWORD = 134


class Client:
    """A paho MQTT 5 client over TLS whose connect/publish results can be awaited."""

    def __init__(self, port: int, ca: Path, username: str | None = None,
                 password: str | None = None, will_topic: str | None = None,
                 certfile: Path | None = None, keyfile: Path | None = None,
                 live_only: bool = True):
        self.connack: queue.Queue = queue.Queue()
        self.messages: queue.Queue = queue.Queue()
        self.pubacks: dict[int, queue.Queue] = {}
        self.client_id = f"test-{uuid.uuid4().hex[:8]}"
        self.paho = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                protocol=mqtt.MQTTv5)
        self.paho.tls_set(ca_certs=str(ca), certfile=certfile and str(certfile),
                          keyfile=keyfile and str(keyfile))
        # A refused client retries in the background; keep its wait short so close() is quick.
        self.paho.reconnect_delay_set(min_delay=0.1, max_delay=0.2)
        if username is not None:
            self.paho.username_pw_set(username, password)
        if will_topic is not None:
            self.paho.will_set(will_topic, b"offline", qos=1, retain=True)
        self.paho.on_connect = lambda c, u, flags, rc, props: self.connack.put(rc)
        # live_only: retained messages (an earlier test's Will) are left out.
        self.paho.on_message = lambda c, u, msg: (live_only and msg.retain) or \
            self.messages.put((msg.topic, msg.payload))
        self.paho.on_publish = lambda c, u, mid, rc, props: self._puback(mid).put(rc)
        self.port = port

    def _puback(self, mid: int) -> queue.Queue:
        return self.pubacks.setdefault(mid, queue.Queue())

    def connect(self) -> int:
        """The CONNACK reason code (0 = accepted)."""
        self.paho.connect("127.0.0.1", self.port, keepalive=10)
        self.paho.loop_start()
        return self.connack.get(timeout=10).value

    def publish(self, topic: str, payload: bytes) -> int:
        """The PUBACK reason code of a QoS 1 publish (0 or 16 = accepted, 135 = refused)."""
        info = self.paho.publish(topic, payload, qos=1)
        return self._puback(info.mid).get(timeout=10).value

    def subscribe(self, topic: str) -> None:
        done: queue.Queue = queue.Queue()
        self.paho.on_subscribe = lambda c, u, mid, codes, props: done.put(codes)
        self.paho.subscribe(topic, qos=1)
        codes = done.get(timeout=10)
        assert all(not code.is_failure for code in codes), codes

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


def start_broker(root: Path) -> tuple[brokers.Broker, Path]:
    """deploy/mosquitto/edgeseg.conf with USERS; (the running broker, its CA file)."""
    require("mosquitto")
    require("mosquitto_passwd")
    require("openssl")
    etc = brokers.stage_etc(root / "etc", MOSQ / "acl", USERS)
    port = free_port()
    config = root / "edgeseg.conf"
    config.write_text(brokers.adapt((MOSQ / "edgeseg.conf").read_text(), {8883: port}, etc))
    return brokers.Broker(config, port).start(), etc / "certs" / "ca.crt"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    running, ca = start_broker(tmp_path_factory.mktemp("mosquitto"))
    yield running, ca
    running.stop()


@pytest.fixture
def clients(broker):
    made: list[Client] = []

    def make(username=None, password=None, **kwargs) -> Client:
        running, ca = broker
        if username is not None and password is None:
            password = USERS[username]
        client = Client(running.port, ca, username, password, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def viewer(clients) -> Client:
    client = clients("edgeseg-viewer")
    assert client.connect() == 0
    client.subscribe("edgeseg/#")
    return client


def test_device_publishes_under_its_own_prefix(clients, viewer):
    device = clients("jetson-01", will_topic="edgeseg/jetson-01/front/status")
    assert device.connect() == 0
    assert device.publish("edgeseg/jetson-01/front/meta", b"{}") == 0
    assert viewer.messages.get(timeout=10) == ("edgeseg/jetson-01/front/meta", b"{}")


@pytest.mark.parametrize("topic", ["edgeseg/jetson-02/front/meta", "edgeseg/jetson-01x/a",
                                   "elsewhere/jetson-01/meta", "edgeseg/meta"])
def test_device_is_refused_outside_its_prefix(clients, viewer, topic):
    device = clients("jetson-01")
    assert device.connect() == 0
    assert device.publish(topic, b"forged") == NOT_AUTHORIZED
    # Same connection, same QoS: had the forged message been delivered, it would arrive
    # before this one.
    assert device.publish("edgeseg/jetson-01/front/meta", b"after") == 0
    assert viewer.messages.get(timeout=10) == ("edgeseg/jetson-01/front/meta", b"after")


@pytest.mark.parametrize(("will_topic", "delivered"), [
    ("edgeseg/jetson-01/front/status", True), ("edgeseg/jetson-02/front/status", False)])
def test_last_will_only_under_the_prefix(broker, clients, viewer, will_topic, delivered):
    """A device cannot plant an "offline" status for another device through its Will."""
    device = clients("jetson-01", will_topic=will_topic)
    assert device.connect() == 0
    device.paho.socket().shutdown(socket.SHUT_RDWR)  # vanish without DISCONNECT
    if delivered:
        assert wait_for(viewer, will_topic, timeout=10) == b"offline"
        return
    # Mosquitto logs the lost connection and publishes (or drops) the Will in the same
    # step, so once the line is there anything published later arrives after a Will.
    running, _ = broker
    gone = re.compile(rf"{re.escape(device.client_id)}\b.*(closed|disconnect)", re.I)
    wait_until(lambda: gone.search(running.log()), timeout=10,
               what=f"the broker to log that {device.client_id} went away")
    sentinel = clients("jetson-01")
    assert sentinel.connect() == 0
    assert sentinel.publish("edgeseg/jetson-01/front/meta", b"after") == 0
    assert viewer.messages.get(timeout=10) == ("edgeseg/jetson-01/front/meta", b"after")


def test_viewer_reads_but_may_not_publish(clients, viewer):
    assert viewer.publish("edgeseg/jetson-01/front/status", b"offline") == NOT_AUTHORIZED


@pytest.mark.parametrize(("username", "password"), [
    ("jetson-01", "wrong"), ("jetson-01", USERS["jetson-02"]), ("nobody", "pw"),
])
def test_bad_credentials_are_refused_at_connack(clients, username, password):
    assert clients(username, password).connect() in (BAD_USER_OR_PASSWORD, NOT_AUTHORIZED)


def test_anonymous_client_is_refused(clients):
    assert clients().connect() in (BAD_USER_OR_PASSWORD, NOT_AUTHORIZED)


def test_plain_tcp_gets_no_mqtt_session(broker):
    """The only listener speaks TLS: an MQTT CONNECT in clear text gets no CONNACK."""
    port = broker[0].port
    # CONNECT, MQTT 3.1.1, clean session, keepalive 60, client id "t".
    connect = bytes([0x10, 13, 0, 4, *b"MQTT", 4, 0x02, 0, 60, 0, 1, *b"t"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(connect)
        try:
            reply = sock.recv(64)
        except ConnectionResetError:
            reply = b""
    assert not reply.startswith(b"\x20")  # 0x20 = CONNACK


def test_wrong_ca_fails_the_tls_handshake(broker, tmp_path):
    port = broker[0].port
    other_ca = brokers.make_pki(tmp_path / "other") / "ca.crt"
    client = Client(port, other_ca, "jetson-01", USERS["jetson-01"])
    with pytest.raises(ssl.SSLCertVerificationError):
        client.paho.connect("127.0.0.1", port)


@pytest.fixture
def bridged(tmp_path):
    yield from start_bridged(tmp_path)


def start_bridged(tmp_path: Path):
    """A site broker bridged (bridge.conf) to a central one (edgeseg.conf + central.conf):
    yields ((central, its CA), (site, its CA)) and stops both after."""
    require("mosquitto")
    require("openssl")
    central_etc = brokers.stage_etc(tmp_path / "central", MOSQ / "acl",
                                    {"edgeseg-viewer": USERS["edgeseg-viewer"]})
    site_etc = brokers.stage_etc(tmp_path / "site", MOSQ / "acl",
                                 {"jetson-01": USERS["jetson-01"]})
    # One test CA signs everything: the central broker trusts it for bridges, the site
    # trusts it for the central broker, and the bridge's client certificate says
    # CN=edgeseg-bridge.
    brokers.make_pki(central_etc / "certs", client_cns=("edgeseg-bridge",))
    certs = central_etc / "certs"
    (certs / "bridge-ca.crt").write_bytes((certs / "ca.crt").read_bytes())
    for name in ("bridge.crt", "bridge.key"):
        (site_etc / "certs" / name).write_bytes((certs / f"edgeseg-bridge{name[6:]}")
                                                .read_bytes())
    (site_etc / "certs" / "central-ca.crt").write_bytes((certs / "ca.crt").read_bytes())

    ports = {8883: free_port(), 8884: free_port()}
    central_conf = tmp_path / "central.conf"
    central_conf.write_text(brokers.adapt((MOSQ / "edgeseg.conf").read_text() + "\n"
                                          + (MOSQ / "central.conf").read_text(),
                                          ports, central_etc))
    site_port = free_port()
    site_conf = tmp_path / "site.conf"
    site_conf.write_text(brokers.adapt((MOSQ / "edgeseg.conf").read_text() + "\n"
                                       + (MOSQ / "bridge.conf").read_text(),
                                       {8883: site_port, 8884: ports[8884]}, site_etc))
    central = brokers.Broker(central_conf, ports[8883]).start()
    site = brokers.Broker(site_conf, site_port)
    try:
        site.start()
        yield (central, certs / "ca.crt"), (site, site_etc / "certs" / "ca.crt")
    finally:
        site.stop()
        central.stop()


def wait_for(client: Client, topic: str, timeout: float = 15.0) -> bytes:
    """The payload of the next message on topic; bridge state messages in between are
    skipped (the site announces itself both locally and, through the bridge, centrally)."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        got, payload = client.messages.get(timeout=left)
        if got == topic:
            return payload
        assert got.endswith("/state"), got
    raise AssertionError(f"nothing on {topic} within {timeout} s")


def test_site_broker_bridges_to_the_central_one(bridged):
    (central, central_ca), (site, site_ca) = bridged
    viewer = Client(central.port, central_ca, "edgeseg-viewer", USERS["edgeseg-viewer"],
                    live_only=False)
    device = Client(site.port, site_ca, "jetson-01", USERS["jetson-01"])
    try:
        assert viewer.connect() == 0
        viewer.subscribe("edgeseg/#")
        # The bridge announces itself on the central broker once it is up ("1").
        assert wait_for(viewer, "edgeseg/bridge-site-01/state") == b"1", site.log()
        assert device.connect() == 0
        assert device.publish("edgeseg/jetson-01/front/meta", b"{}") == 0
        assert wait_for(viewer, "edgeseg/jetson-01/front/meta") == b"{}"
    finally:
        viewer.close()
        device.close()


# Debian's /etc/mosquitto/mosquitto.conf (package mosquitto 2.0), which includes conf.d/.
DEBIAN_CONF = """pid_file {root}/mosquitto.pid
persistence true
persistence_location {state}/
include_dir {confd}
"""


@pytest.mark.parametrize("layout", ["debian", "container"])
def test_state_directory_is_set_once_and_survives_a_restart(tmp_path, layout):
    """edgeseg.conf in conf.d/ under Debian's mosquitto.conf or container.conf: Mosquitto
    refuses a second persistence_location, so edgeseg.conf must not set one; and a
    stopped broker writes its state where the wrapper says."""
    require("mosquitto")
    require("openssl")
    etc = brokers.stage_etc(tmp_path / "etc", MOSQ / "acl", USERS)
    state, confd = tmp_path / "state", tmp_path / "conf.d"
    state.mkdir()
    confd.mkdir()
    port = free_port()
    adapted = brokers.adapt((MOSQ / "edgeseg.conf").read_text(), {8883: port}, etc)
    # the state directory adapt() gives a lone broker is the wrapper's job here
    (confd / "edgeseg.conf").write_text(adapted.replace(f"persistence_location {etc}/\n", ""))
    if layout == "debian":
        wrapper = DEBIAN_CONF.format(root=tmp_path, state=state, confd=confd)
    else:
        wrapper = ((MOSQ / "container.conf").read_text()
                   .replace("/mosquitto/data/", f"{state}/")
                   .replace("/mosquitto/config/conf.d", str(confd)))
    config = tmp_path / "mosquitto.conf"
    config.write_text(wrapper)
    broker = brokers.Broker(config, port).start()
    try:
        device = Client(port, etc / "certs" / "ca.crt", "jetson-01", USERS["jetson-01"])
        assert device.connect() == 0
        assert device.publish("edgeseg/jetson-01/front/status", b"online") in (0, 16)
        device.close()
        broker.process.terminate()  # a restart: Mosquitto saves its state as it stops
        broker.process.wait(10)
        assert (state / "mosquitto.db").stat().st_size > 0, broker.log()
    finally:
        broker.stop()
