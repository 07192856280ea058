import pytest

from edgeseg.agent import command
from edgeseg.agent.config import apply_overrides, load, substitute_env
from edgeseg.errors import InvalidArgument

GOOD = """
device_id: dev1
camera: door
source: {uri: /dev/video0, fps: 10}
server: {address: "gpu:8500", model: deeplab, max_in_flight: 3}
mqtt:
  address: "broker:1883"
  username: cam
  password_env: MQTT_PASSWORD
  tls: {ca_file: /etc/ssl/ca.pem}
"""


def write(tmp_path, text):
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    return path


def test_good_config_loads_typed(tmp_path):
    cfg = load(write(tmp_path, GOOD), env={})
    assert cfg.source.fps == 10.0 and cfg.server.max_in_flight == 3
    assert cfg.topic_prefix == "edgeseg/dev1/door"
    assert cfg.mqtt.qos_meta == 1 and cfg.mqtt.qos_status == 1


@pytest.mark.parametrize("text, key", [
    ("source: {uri: 0}\nbogus: 1\n", "bogus: unknown key"),
    ("source: {uri: 0, fsp: 3}\n", "source.fsp: unknown key"),
    ("source: {uri: 0}\nmqtt: {tls: {ca: x}}\n", "mqtt.tls.ca: unknown key"),
    ("source: {uri: 0}\nmqtt: {password_file: /p}\n", "mqtt: a password needs a username"),
    ("source: {uri: 0}\nmqtt: {address: nohost}\n", "mqtt.address must be HOST:PORT"),
    ("source: {uri: 0}\nserver: {version: 2, version_label: x}\n", "not both"),
    ("source: {uri: 0}\nserver: {max_in_flight: 0}\n", "server.max_in_flight"),
    ("source: {uri: 0}\nmqtt: {qos_meta: 3}\n", "mqtt.qos_meta"),
    ("source: {uri: 0}\nmqtt: {tls: {cert_file: /c}}\n", "cert_file and key_file"),
    ("source: {uri: 0}\nmqtt: {topic_prefix: 'a/#'}\n", "wildcards"),
    ("source: {uri: 0}\nmqtt: {tls: {server_name: b}}\n", "server_name is not supported"),
    ("camera: x\n", "source: Field required"),
    ("- a list\n", "top level must be a mapping"),
    ("source: {uri: '${NOPE}'}\n", "source.uri: environment variable ${NOPE} is not set"),
])
def test_bad_configs_name_the_key(tmp_path, text, key):
    with pytest.raises(InvalidArgument) as err:
        load(write(tmp_path, text), env={})
    assert key in err.value.message
    assert str(tmp_path / "agent.yaml") in err.value.message


@pytest.mark.parametrize("value, env, expected", [
    ("${A}", {"A": "1"}, "1"),
    ("x-${A}-${B:-dflt}", {"A": "1"}, "x-1-dflt"),
    ("${B:-}", {}, ""),
    ({"k": ["${A}", 3]}, {"A": "z"}, {"k": ["z", 3]}),
    ("no refs $A", {}, "no refs $A"),
])
def test_env_substitution(value, env, expected):
    assert substitute_env(value, env) == expected


def test_overrides_win_and_none_is_skipped():
    tree = {"source": {"uri": "a", "fps": 2}}
    out = apply_overrides(tree, {"source.uri": "b", "source.fps": None, "mqtt.address": "h:1"})
    assert out == {"source": {"uri": "b", "fps": 2}, "mqtt": {"address": "h:1"}}
    assert tree["source"]["uri"] == "a"


def test_cli_flags_override_the_file(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    assert command.main(["--config", str(path), "--source", "clip.avi", "--mqtt", "h:2",
                         "--validate-config"]) == 0
    out = capsys.readouterr().out
    assert "config OK" in out and "'clip.avi'" in out and "mqtt h:2" in out


def test_validate_config_refuses_unknown_key_naming_it(tmp_path):
    path = write(tmp_path, "source: {uri: 0}\nmqtt: {pasword_file: /x}\n")
    with pytest.raises(InvalidArgument, match=r"mqtt\.pasword_file: unknown key"):
        command.main(["--config", str(path), "--validate-config"])


def test_cli_exit_code_and_one_line(tmp_path):
    import subprocess
    import sys

    from .conftest import REPO

    path = write(tmp_path, "source: {uri: 0}\nextra: 1\n")
    out = subprocess.run([sys.executable, "-m", "edgeseg", "agent", "--config", str(path),
                          "--validate-config"], capture_output=True, text=True, cwd=REPO,
                         timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"edgeseg agent: error: config {path}: extra: unknown key"]


def test_password_is_not_a_flag():
    with pytest.raises(SystemExit):
        command.build_parser().parse_args(["--mqtt-password", "secret"])


def test_the_deploy_example_config_validates():
    from .conftest import REPO

    example = REPO / "deploy" / "etc" / "agent-example.yaml"
    if not example.exists():
        pytest.skip("deploy/etc/agent-example.yaml is not in this checkout")
    cfg = load(example, env={"CREDENTIALS_DIRECTORY": "/run/credentials/x"})
    assert str(cfg.mqtt.password_file) == "/run/credentials/x/mqtt-password"
