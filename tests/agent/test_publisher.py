"""The MQTT side against a REAL Mosquitto started on a free loopback port."""

import os
import shutil
import subprocess
import time

import pytest

from edgeseg.agent.broker import read_password
from edgeseg.agent.config import MqttConfig
from edgeseg.agent.messages import Message
from edgeseg.agent.metrics import AgentMetrics
from edgeseg.agent.publisher import Publisher
from edgeseg.errors import InvalidArgument

from .conftest import Mosquitto, free_port, wait_until

PREFIX = "edgeseg/dev/cam"


def frame_messages(i: int) -> list[Message]:
    return [Message(f"{PREFIX}/mask", b"\x89PNG" + bytes([i]), 0, False, "image/png",
                    (("frame_id", str(i)),)),
            Message(f"{PREFIX}/meta", b'{"frame_id": %d}' % i, 1, False, "application/json",
                    (("frame_id", str(i)),))]


@pytest.fixture
def publishers():
    made = []

    def make(address, **kw):
        cfg = MqttConfig(**{"address": address, "keepalive_s": 2, "reconnect_min_s": 1,
                            "reconnect_max_s": 1, **kw})
        pub = Publisher(cfg, PREFIX, f"test-{len(made)}-{time.monotonic_ns()}", AgentMetrics())
        made.append(pub)
        return pub

    try:
        yield make
    finally:
        for pub in made:
            pub.close(timeout=1)


def test_status_is_retained_online_and_offline_on_close(mosquitto, publishers, recorder_factory):
    pub = publishers(mosquitto.address)
    pub.start()
    wait_until(pub.connected.is_set, 5, what="connected")
    late = recorder_factory(mosquitto.port)  # subscribes after the fact: gets the retained one
    wait_until(lambda: late.statuses() == ["online"], 5, what="retained online")
    assert late.of("status")[0]["retain"] is True
    pub.set_available(False)
    pub.set_available(True)
    wait_until(lambda: late.statuses() == ["online", "offline", "online"], 5, what="state changes")
    pub.close(timeout=2)
    wait_until(lambda: late.statuses()[-1:] == ["offline"], 5, what="offline on close")
    newcomer = recorder_factory(mosquitto.port)
    wait_until(lambda: newcomer.statuses() == ["offline"], 5, what="retained offline")


def test_messages_carry_mqtt5_content_type_and_user_properties(mosquitto, publishers,
                                                              recorder_factory):
    rec = recorder_factory(mosquitto.port)
    pub = publishers(mosquitto.address)
    pub.start()
    pub.publish(frame_messages(7))
    wait_until(lambda: rec.of("meta"), 5, what="meta")
    mask, meta = rec.of("mask")[0], rec.of("meta")[0]
    assert mask["content_type"] == "image/png" and mask["user"] == {"frame_id": "7"}
    assert meta["content_type"] == "application/json" and meta["payload"] == b'{"frame_id": 7}'


def test_broker_away_outbox_keeps_the_newest_and_counts_the_rest(tmp_path, publishers,
                                                                 recorder_factory):
    broker = Mosquitto(tmp_path)  # not started yet: the agent comes up first
    pub = publishers(broker.address, outbox_size=3)
    pub.start()
    for i in range(10):
        pub.ledger.enter(i)
        pub.publish(frame_messages(i), frame_id=i)
    assert pub.ledger.snapshot().dropped["outbox_full"] == 7
    assert not pub.connected.is_set()  # a refused TCP connect is not a connection
    broker.start()
    try:
        rec = recorder_factory(broker.port)
        wait_until(lambda: len(rec.of("meta")) == 3, 10, what="the outbox flushed")
        assert [m["payload"] for m in rec.of("meta")] == [b'{"frame_id": %d}' % i
                                                         for i in (7, 8, 9)]
        assert "online" in rec.statuses()
    finally:
        pub.close(timeout=1)
        broker.stop()


def test_broker_restart_will_offline_then_online_and_publishing_resumes(mosquitto, publishers,
                                                                       recorder_factory):
    rec = recorder_factory(mosquitto.port)  # reconnects 1 s after a loss, not persistent
    # the agent reconnects 3 s after: the recorder has subscribed again by then, so the
    # frames queued during the outage have a subscriber (with both at 1 s it was a race)
    pub = publishers(mosquitto.address, reconnect_min_s=3, reconnect_max_s=3)
    pub.start()
    wait_until(lambda: rec.statuses() == ["online"], 5, what="online")
    mosquitto.stop()  # Mosquitto sends the agent's Last Will to subscribers as it goes down
    wait_until(lambda: "offline" in rec.statuses(), 5, what="the Last Will")
    wait_until(lambda: not pub.connected.is_set(), 5, what="agent notices")
    for i in range(5):
        pub.publish(frame_messages(i))
    mosquitto.start()
    wait_until(lambda: rec.statuses()[-1:] == ["online"] and len(rec.statuses()) >= 3, 15,
               what="online again")
    wait_until(lambda: len(rec.of("meta")) >= 1, 10, what="queued masks after the restart")
    pub.publish(frame_messages(99))
    wait_until(lambda: rec.metas()[-1:] == [{"frame_id": 99}], 5, what="publishing resumed")
    assert pub.metrics.mqtt_reconnects.value >= 2
    # a frame the sender took just as the connection went waited for the next one: its QoS 0
    # mask was not published into the outage and counted connection_lost
    assert pub.metrics.publish_failures.total() == 0
    assert len(rec.of("mask")) == 6


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="no mosquitto_passwd")
@pytest.mark.parametrize("password, connects", [("s3", True), ("wrong", False)])
def test_username_and_password(tmp_path, caplog, password, connects):
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "cam", "s3"], check=True,
                   capture_output=True)
    broker = Mosquitto(tmp_path)
    # as root, mosquitto drops to user "mosquitto", who cannot read pytest's 0700 tmp_path
    as_root = "user root\n" if os.geteuid() == 0 else ""
    broker.conf.write_text(f"listener {broker.port} 127.0.0.1\nallow_anonymous false\n"
                           f"password_file {pwfile}\n{as_root}")
    broker.start()
    cfg = MqttConfig(address=broker.address, username="cam", password_env="PW",  # noqa: S106
                     reconnect_min_s=1, reconnect_max_s=1)
    pub = Publisher(cfg, PREFIX, "auth-test", AgentMetrics(), read_password(cfg, {"PW": password}))
    try:
        pub.start()

        def refused() -> bool:
            return any("refused the connection" in r.getMessage() for r in caplog.records)

        wait_until(lambda: pub.connected.is_set() or refused(), 10, what="the broker's CONNACK")
        assert pub.connected.is_set() is connects  # a refused CONNACK is not a connection
    finally:
        pub.close(timeout=1)
        broker.stop()


@pytest.mark.parametrize("cfg, env, expected", [
    (MqttConfig(), {}, None),
    (MqttConfig(username="u", password_env="PW"), {"PW": "x"}, "x"),  # noqa: S106
])
def test_read_password(cfg, env, expected):
    assert read_password(cfg, env) == expected


def test_read_password_file_and_errors(tmp_path):
    f = tmp_path / "pw"
    f.write_text("secret\nignored\n")
    assert read_password(MqttConfig(username="u", password_file=f), {}) == "secret"
    with pytest.raises(InvalidArgument, match=r"\$PW is not set"):
        read_password(MqttConfig(username="u", password_env="PW"), {})  # noqa: S106
    with pytest.raises(InvalidArgument, match="mqtt.password_file"):
        read_password(MqttConfig(username="u", password_file=tmp_path / "none"), {})


def test_free_port_has_no_broker():
    pub = Publisher(MqttConfig(address=f"127.0.0.1:{free_port()}"), PREFIX, "x", AgentMetrics())
    pub.publish(frame_messages(1))
    assert len(pub.outbox) == 1


@pytest.mark.parametrize("flags, expected", [
    ([], (1, 1, 1)),
    (["--qos", "0"], (0, 0, 0)),
    (["--qos", "0", "--qos-status", "1"], (0, 0, 1)),
    (["--qos-mask", "2", "--qos-meta", "0"], (2, 0, 1)),
])
def test_per_topic_qos_flags(flags, expected):
    """docs/mqtt.md's table: --qos sets every topic, --qos-TOPIC overrides it."""
    from edgeseg.agent import command

    cfg = command.load_config(command.build_parser().parse_args(["--source", "0", *flags]))
    assert (cfg.mqtt.qos_mask, cfg.mqtt.qos_meta, cfg.mqtt.qos_status) == expected
