"""The kit's own MQTT clients against deploy/mosquitto's brokers (TLS, passwords, ACL, bridge).

`edgeseg agent` and `edgeseg subscribe` run as processes with the agent's broker options;
the brokers are the ones test_mosquitto.py builds from deploy/mosquitto with certificates
and passwords made by the test; the model server is the fake one (in this process).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest

from tests.agent.conftest import REPO, AgentProcess, scrape, synthetic_frames, write_clip
from tests.agent.fake_model_server import serve
from tests.services import free_port, wait_until

from .test_mosquitto import USERS, Client, start_bridged, start_broker

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """deploy/mosquitto/edgeseg.conf: TLS, password file, ACL -> (port, CA file)."""
    running, ca = start_broker(tmp_path_factory.mktemp("mosquitto"))
    yield running.port, ca
    running.stop()


@pytest.fixture
def bridged(tmp_path):
    yield from start_bridged(tmp_path)


@pytest.fixture(scope="module")
def model_server():
    server, _fake, port = serve(0)
    yield f"127.0.0.1:{port}"
    server.stop(0)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.avi",
                      synthetic_frames(40, (48, 64)))


def secret(folder, user: str, password: str | None = None):
    """$CREDENTIALS_DIRECTORY as systemd's LoadCredential=mqtt-password makes it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mqtt-password").write_text((password or USERS[user]) + "\n")
    return folder


def agent(tmp_path, model_server, clip, broker_port, ca, user, prefix, *extra, password=None,
          env=None) -> AgentProcess:
    creds = secret(tmp_path / f"creds-{user}-{free_port()}", user, password)
    return AgentProcess(
        ["--source", str(clip), "--loop", "--server", model_server,
         "--mqtt", f"127.0.0.1:{broker_port}", "--mqtt-ca", str(ca),
         "--mqtt-username", user, "--mqtt-password-file", str(creds / "mqtt-password"),
         "--device-id", user, "--camera", prefix.rsplit("/", 1)[-1],
         "--topic-prefix", prefix, *extra],
        tmp_path / f"agent-{free_port()}.log", env)


def subscribe(port: int, ca, prefix: str, count: int, creds, timeout: float = 30.0,
              user: str = "edgeseg-viewer") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeseg", "subscribe", "--mqtt", f"127.0.0.1:{port}",
         "--mqtt-ca", str(ca), "--mqtt-username", user, "--topic-prefix", prefix,
         "--count", str(count), "--timeout", str(timeout)],
        capture_output=True, text=True, timeout=timeout + 30, cwd=REPO,
        env={**ENV, "CREDENTIALS_DIRECTORY": str(creds)})


def totals(log: str) -> dict[str, int]:
    """The agent's exit line as numbers: captured, acknowledged, in_flight and each drop."""
    (line,) = re.findall(r"agent: stopped; (frames .*)", log)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


def test_agent_outside_its_prefix_is_refused_counted_and_degraded(broker, model_server, clip,
                                                                 tmp_path):
    """Issue 14's field case: device jetson-01 publishing under jetson-02's prefix."""
    port, ca = broker
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(20)
    viewer = Client(port, ca, "edgeseg-viewer", USERS["edgeseg-viewer"])
    metrics_port = free_port()
    proc = agent(tmp_path, model_server, clip, port, ca, "jetson-01",
                 "edgeseg/jetson-02/front", "--metrics-port", str(metrics_port),
                 env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
    try:
        assert viewer.connect() == 0
        viewer.subscribe("edgeseg/jetson-02/#")
        wait_until(lambda: _metric(metrics_port, 'edgeseg_agent_status{status="degraded"}'),
                   30, interval=0.2, what="degraded status on /metrics")
        statuses = []
        while not any(s.startswith("STATUS=degraded") for s in statuses):
            statuses += notify.recv(4096).decode().splitlines()
        assert "Not authorized" in statuses[-1]
        assert proc.terminate() == 0, proc.text()
    finally:
        proc.close()
        viewer.close()
        notify.close()
    log = proc.text()
    t = totals(log)
    refused = t["broker_refused"]
    assert t["acknowledged"] == 0 and t["in_flight"] == 0
    assert refused >= 5  # mqtt.degraded_after
    assert t["captured"] == t["acknowledged"] + t["dropped"] + t["in_flight"]
    # every message it sent was refused (masks, metas, status): failures == attempts
    sent, failed = map(int, re.search(r"mqtt: closed; (\d+) messages sent, (\d+) not "
                                      r"accepted \(Not authorized=(?:\d+)\)", log).groups())
    assert sent == failed and sent >= 2 * refused
    warnings = [line for line in log.splitlines() if " WARNING " in line and "refused" in line]
    assert len(warnings) == 1, warnings
    assert "edgeseg/jetson-02/front/" in warnings[0] and "Not authorized" in warnings[0]
    assert re.search(r" ERROR .*status degraded: the broker refused the last 5 frames", log)
    assert viewer.messages.empty()  # the ACL really kept them out


def _metric(port: int, key: str) -> float:
    try:
        return scrape(port).get(key, 0.0)
    except OSError:
        return 0.0


def test_subscribe_reads_the_agents_masks_over_tls_with_a_password(broker, model_server, clip,
                                                                   tmp_path):
    port, ca = broker
    proc = agent(tmp_path, model_server, clip, port, ca, "jetson-01", "edgeseg/jetson-01/front")
    creds = secret(tmp_path / "viewer", "edgeseg-viewer")
    try:
        result = subscribe(port, ca, "edgeseg/jetson-01/front", 3, creds)
        assert result.returncode == 0, (result.stderr, proc.text())
        masks = [line for line in result.stdout.splitlines() if "/mask " in line]
        assert len(masks) >= 3 and all("64x48" in line for line in masks)
        assert "classes=[0, 15]" in masks[0]  # the fake model's bright square
        assert proc.terminate() == 0
    finally:
        proc.close()
    t = totals(proc.text())
    assert t["acknowledged"] >= 3 and "broker_refused" not in t and t["in_flight"] == 0


def test_subscribe_names_a_wrong_password_and_a_wrong_ca(broker, tmp_path):
    port, ca = broker
    bad = subscribe(port, ca, "edgeseg/+/+", 1, secret(tmp_path / "bad", "edgeseg-viewer",
                                                        "wrong"), timeout=5)
    assert bad.returncode == 1
    (line,) = bad.stderr.strip().splitlines()
    # Mosquitto 2 says "Not authorized" (135) for a wrong password, MQTT 5 allows 134 too
    assert re.search(r"refused the connection: (Bad user name or password|Not authorized) "
                     r"\(check the user name and the password file", line), line
    from . import brokers

    other_ca = brokers.make_pki(tmp_path / "other") / "ca.crt"
    tls = subscribe(port, other_ca, "edgeseg/+/+", 1, secret(tmp_path / "ok", "edgeseg-viewer"),
                    timeout=5)
    assert tls.returncode == 1
    (line,) = tls.stderr.strip().splitlines()
    assert "TLS with the MQTT broker" in line and "certificate verify failed" in line


def test_agent_with_a_wrong_password_says_so_once(broker, model_server, clip, tmp_path):
    """One line naming the cause; no "Protocol error; reconnecting" after it (issue 14.5)."""
    port, ca = broker
    before = _refused_logins(broker)
    proc = agent(tmp_path, model_server, clip, port, ca, "jetson-01", "edgeseg/jetson-01/pw",
                 password="wrong")  # noqa: S106
    try:
        wait_until(lambda: "refused the connection" in proc.text(), 30, what="the refusal")
        # the agent keeps retrying (reconnect every 1-10 s); watch two more attempts
        wait_until(lambda: _refused_logins(broker) >= before + 3, 30, interval=0.2,
                   what="two more login attempts")
        assert proc.terminate() == 0
    finally:
        proc.close()
    log = proc.text()
    refusals = [line for line in log.splitlines() if "refused the connection" in line]
    assert len(refusals) == 1 and "check the user name and the password" in refusals[0]
    assert "Protocol error" not in log and "reconnecting" not in log, log


def _refused_logins(broker) -> int:
    """Logins the broker refused so far (brokers.Broker logs beside its config)."""
    _port, ca = broker
    log = ca.parents[2] / "edgeseg.log"  # <root>/etc/certs/ca.crt -> <root>/edgeseg.log
    return log.read_text(errors="replace").count("disconnected, not authorised")


def test_subscribe_reads_masks_through_the_bridge(bridged, model_server, clip, tmp_path):
    """The agent publishes to a site broker; `edgeseg subscribe` reads the central one."""
    (central, central_ca), (site, site_ca) = bridged
    creds = secret(tmp_path / "viewer", "edgeseg-viewer")
    reader = subprocess.Popen(
        [sys.executable, "-m", "edgeseg", "subscribe", "--mqtt", f"127.0.0.1:{central.port}",
         "--mqtt-ca", str(central_ca), "--mqtt-username", "edgeseg-viewer",
         "--topic-prefix", "edgeseg/jetson-01/+", "--count", "3", "--timeout", "40"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**ENV, "CREDENTIALS_DIRECTORY": str(creds)})
    proc = agent(tmp_path, model_server, clip, site.port, site_ca, "jetson-01",
                 "edgeseg/jetson-01/yard")
    try:
        out, err = reader.communicate(timeout=70)
        assert reader.returncode == 0, (err, site.log(), proc.text())
        assert proc.terminate() == 0
    finally:
        reader.kill()
        proc.close()
    masks = [line for line in out.splitlines() if line.startswith("edgeseg/jetson-01/yard/mask")]
    assert len(masks) >= 3 and all("64x48" in line for line in masks)
    assert "edgeseg/jetson-01/yard/meta frame=" in out  # MQTT 5 meta crossed the bridge too


@pytest.mark.parametrize("password, ok", [(None, True), ("wrong", False)])
def test_view_logs_in_with_the_agents_options(broker, tmp_path, password, ok):
    port, ca = broker
    creds = secret(tmp_path / "viewer", "edgeseg-viewer", password)
    view = subprocess.Popen(
        [sys.executable, "-m", "edgeseg", "view", "--mqtt", f"127.0.0.1:{port}",
         "--mqtt-ca", str(ca), "--mqtt-username", "edgeseg-viewer",
         "--mqtt-password-file", str(creds / "mqtt-password"),
         "--topic-prefix", "edgeseg/jetson-01/front", "--preview-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=ENV)
    try:
        if ok:
            line = view.stdout.readline()  # printed once the broker accepted the login
            assert "edgeseg view: preview at http://127.0.0.1:" in line
            view.terminate()
            assert view.wait(10) == 0
        else:
            assert view.wait(30) == 1
            (line,) = view.stderr.read().strip().splitlines()
            assert "edgeseg view: error: the MQTT broker" in line and "refused" in line
    finally:
        view.kill()
        view.wait(5)
