"""The container files: deploy/Dockerfile, compose.yaml and k8s/, against the systemd units.

No Docker engine (only the docker client) and no cluster are available here, so nothing is
built or started: the files are parsed (PyYAML; the Dockerfile line by line) and checked to
name the same image, server flags, ports, paths, user and credentials as the units and
each other. The Mosquitto and TF Serving files they embed must equal deploy/'s.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from . import unitfile
from .conftest import DEPLOY, REPO, SYSTEMD

K8S = DEPLOY / "k8s"
MOSQ = DEPLOY / "mosquitto"
PORTS = {8500, 8501}
MODELS = "/var/lib/edgeseg/models"


def server_unit() -> unitfile.Unit:
    return unitfile.parse(SYSTEMD / "edgeseg-server.service")


def serve_argv() -> list[str]:
    """What the unit runs after the program name: serve and its flags."""
    unit = server_unit()
    argv = unitfile.expand(unit.get("Service", "ExecStart"), unit.environment())
    assert argv[1] == "serve"
    return argv[1:]


def dockerfile(name: str = "Dockerfile") -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (DEPLOY / name).read_text())
    lines = [x.strip() for x in text.splitlines() if x.strip() and not x.startswith("#")]
    return [(x.split(None, 1)[0].upper(), x.split(None, 1)[1]) for x in lines]


def instruction(name: str, file: str = "Dockerfile") -> list[str]:
    return [args for op, args in dockerfile(file) if op == name]


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def k8s_objects() -> dict[tuple[str, str], dict]:
    objects = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") != "Kustomization":
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


WORKLOADS = ("Deployment", "DaemonSet")


def pod_spec(objects, name: str) -> dict:
    (obj,) = [objects[(kind, name)] for kind in WORKLOADS if (kind, name) in objects]
    return obj["spec"]["template"]["spec"]


def container(objects, workload: str) -> dict:
    (c,) = pod_spec(objects, workload)["containers"]
    return c


# --- Dockerfile ---------------------------------------------------------------------------

def test_dockerfile_base_image_is_nvidias_jetson_tensorflow():
    (arg,) = [a for a in instruction("ARG") if a.startswith("BASE_IMAGE=")]
    image = arg.split("=", 1)[1]
    assert image.startswith("nvcr.io/nvidia/")
    name, tag = image.rsplit(":", 1)
    assert tag != "latest" and ("igpu" in tag or "l4t" in name)
    assert instruction("FROM") == ["${BASE_IMAGE}"]


def test_dockerfile_runs_what_the_unit_runs():
    assert json.loads(instruction("ENTRYPOINT")[0]) == ["edgeseg"]
    assert json.loads(instruction("CMD")[0]) == serve_argv()
    assert {int(p) for p in instruction("EXPOSE")[0].split()} == PORTS
    assert instruction("USER") == ["10001:10001"]


@pytest.mark.parametrize("file", ["Dockerfile", "Dockerfile.agent"])
def test_dockerfile_copies_only_what_exists_and_the_ignore_file_lets_through(file):
    ignore = (DEPLOY / f"{file}.dockerignore").read_text().splitlines()
    allowed = [x[1:].rstrip("/") for x in ignore if x.startswith("!")]
    for args in instruction("COPY", file):
        if args.startswith("--from="):
            continue  # from a build stage, not the context
        *sources, _ = args.split()
        for source in sources:
            assert (REPO / source).exists(), source
            assert any(source == a or source.startswith(a + "/") for a in allowed), source


# --- compose ------------------------------------------------------------------------------

def test_compose_server_matches_the_unit():
    server = compose()["services"]["server"]
    assert server["command"] == serve_argv()
    assert {int(p.split(":")[0]) for p in server["ports"]} == PORTS
    assert {int(p.split(":")[1]) for p in server["ports"]} == PORTS
    assert f"{MODELS}:{MODELS}:ro" in server["volumes"]
    assert "/etc/edgeseg:/etc/edgeseg:ro" in server["volumes"]
    assert server["runtime"] == "nvidia"
    assert (REPO / "deploy" / Path(server["build"]["dockerfile"]).name).exists()
    assert server["build"]["context"] == ".."


def test_compose_mosquitto_uses_deploys_config_and_port():
    broker = compose()["services"]["mosquitto"]
    listener = re.search(r"^listener (\d+)$", (MOSQ / "edgeseg.conf").read_text(), re.M)
    assert [f"{listener.group(1)}:{listener.group(1)}"] == broker["ports"]
    source = broker["volumes"][0].split(":")[0]
    assert (DEPLOY / source).resolve() == (MOSQ / "edgeseg.conf").resolve()


def test_agent_image_is_the_light_multi_arch_install():
    (arg,) = [a for a in instruction("ARG", "Dockerfile.agent") if a.startswith("PYTHON_IMAGE=")]
    name, tag = arg.split("=", 1)[1].rsplit(":", 1)
    assert name == "python" and "slim" in tag  # Docker's official image: amd64 and arm64
    assert instruction("FROM", "Dockerfile.agent") == ["${PYTHON_IMAGE} AS build",
                                                        "${PYTHON_IMAGE}"]
    (install,) = [a for a in instruction("RUN", "Dockerfile.agent") if "pip install" in a]
    assert re.search(r"pip install /src(\s|$)", install)  # no [tensorflow] extra
    assert "! /opt/edgeseg/bin/python -c 'import tensorflow'" in install  # and checked
    assert json.loads(instruction("ENTRYPOINT", "Dockerfile.agent")[0]) == ["edgeseg"]
    assert json.loads(instruction("CMD", "Dockerfile.agent")[0])[0] == "agent"
    assert instruction("USER", "Dockerfile.agent") == ["10001:10001"]


def test_compose_agent_finds_its_password_where_the_config_says():
    services = compose()["services"]
    agent = services["agent-front-door"]
    assert agent["build"]["dockerfile"] == "deploy/Dockerfile.agent"
    creds = agent["environment"]["CREDENTIALS_DIRECTORY"]
    (secret,) = agent["secrets"]
    # Compose mounts a secret at /run/secrets/<target>.
    assert f"/run/secrets/{secret['target']}" == f"{creds}/mqtt-password"
    assert agent["command"][:2] == ["agent", "--config"]


# --- Kubernetes ---------------------------------------------------------------------------

def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    assert all(obj["metadata"].get("namespace", "edgeseg") == "edgeseg"
               for obj in k8s_objects().values())


def test_k8s_server_matches_the_unit_and_compose():
    objects = k8s_objects()
    c = container(objects, "edgeseg-server")
    assert c["args"] == serve_argv()
    assert c["image"] == compose()["services"]["server"]["image"]
    assert {p["containerPort"] for p in c["ports"]} == PORTS
    # liveness on the port only: health says NOT_SERVING while a model is broken, and a
    # restart loop would not mend the model
    assert c["readinessProbe"]["grpc"]["port"] == 8500
    for probe in ("startupProbe", "livenessProbe"):
        assert c[probe]["tcpSocket"]["port"] == 8500 and "grpc" not in c[probe]
    pod = pod_spec(objects, "edgeseg-server")
    assert pod["securityContext"]["runAsUser"] == 10001
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["models"]["mountPath"] == MODELS and mounts["models"]["readOnly"]
    assert volumes["models"]["hostPath"]["path"] == MODELS
    assert MODELS in server_unit().get("Service", "ReadOnlyPaths").split()
    assert mounts["config"]["mountPath"] == "/etc/edgeseg"


def test_k8s_runtime_class_and_pod_security_fit_the_pods():
    objects = k8s_objects()
    pod = pod_spec(objects, "edgeseg-server")
    assert objects[("RuntimeClass", pod["runtimeClassName"])]["handler"] == "nvidia"
    # Pod Security "baseline" or "restricted", if enforced, would refuse hostPath volumes.
    labels = objects[("Namespace", "edgeseg")]["metadata"].get("labels", {})
    uses_host_path = any("hostPath" in v for (kind, _), obj in objects.items()
                         if kind in WORKLOADS
                         for v in obj["spec"]["template"]["spec"].get("volumes", []))
    enforced = labels.get("pod-security.kubernetes.io/enforce", "privileged")
    assert not (uses_host_path and enforced != "privileged")
    for (kind, name), obj in objects.items():
        if kind in WORKLOADS:
            spec = obj["spec"]["template"]["spec"]
            assert spec["securityContext"]["runAsNonRoot"] is True, name
            for c in spec["containers"]:
                assert c["securityContext"]["capabilities"]["drop"] == ["ALL"], name
                assert c["securityContext"]["allowPrivilegeEscalation"] is False, name


def test_k8s_server_service_is_headless_grpc():
    service = k8s_objects()[("Service", "edgeseg-server")]["spec"]
    assert service["clusterIP"] == "None"
    assert {p["port"] for p in service["ports"]} == PORTS
    assert service["selector"] == {"app.kubernetes.io/name": "edgeseg-server"}


@pytest.mark.parametrize(("configmap", "files"), [
    ("edgeseg-server-config", {"models.config": DEPLOY / "models.config",
                               "batching_parameters.txt": DEPLOY / "batching_parameters.txt",
                               "monitoring.config": DEPLOY / "monitoring.config"}),
    ("edgeseg-mosquitto", {"edgeseg.conf": MOSQ / "edgeseg.conf",
                           "bridge.conf": MOSQ / "bridge.conf", "acl": MOSQ / "acl"}),
])
def test_k8s_configmaps_equal_deploys_files(configmap, files):
    data = k8s_objects()[("ConfigMap", configmap)]["data"]
    for key, path in files.items():
        assert data[key] == path.read_text(), f"{configmap}[{key}] differs from {path}"


def test_k8s_mosquitto_mounts_every_file_its_config_names():
    objects = k8s_objects()
    pod = objects[("Deployment", "edgeseg-mosquitto")]["spec"]["template"]["spec"]
    (projected,) = [v["projected"] for v in pod["volumes"] if v["name"] == "edgeseg"]
    paths = {item["path"] for source in projected["sources"]
             for kind in ("configMap", "secret") if kind in source
             for item in source[kind]["items"]}
    named = re.findall(r"/etc/mosquitto/edgeseg/(\S+)",
                       (MOSQ / "edgeseg.conf").read_text() + (MOSQ / "bridge.conf").read_text())
    assert set(named) <= paths
    mounts = {m["name"]: m["mountPath"] for m in container(objects, "edgeseg-mosquitto")
              ["volumeMounts"]}
    assert mounts["edgeseg"] == "/etc/mosquitto/edgeseg"


def test_k8s_agent_config_is_valid_and_points_at_the_services(tmp_path):
    from edgeseg.agent import config as agent_config

    objects = k8s_objects()
    c = container(objects, "edgeseg-agent-front-door")
    assert c["image"] == compose()["services"]["agent-front-door"]["image"]
    config_path = Path(c["args"][c["args"].index("--config") + 1])
    (text,) = objects[("ConfigMap", "edgeseg-agent-front-door")]["data"].values()
    env = {e["name"]: e["value"] for e in c["env"]}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts["config"] == str(config_path.parent)
    assert mounts["credentials"] == env["CREDENTIALS_DIRECTORY"]
    (tmp_path / config_path.name).write_text(text)
    cfg = agent_config.load(tmp_path / config_path.name, env=env)
    assert cfg.mqtt.password_file == Path(env["CREDENTIALS_DIRECTORY"]) / "mqtt-password"
    assert cfg.server.address == "dns:///edgeseg-server.edgeseg.svc.cluster.local:8500"
    assert cfg.mqtt.address == "edgeseg-mosquitto.edgeseg.svc.cluster.local:8883"
    assert cfg.mqtt.username == cfg.device_id
    broker = objects[("Service", "edgeseg-mosquitto")]["spec"]
    assert [p["port"] for p in broker["ports"]] == [8883]
