"""deploy/k8s/ against the Kubernetes API schemas, strict (unknown fields refused): the
oldest, a middle and the newest version kubernetes-validate ships (1.25 onwards; every
version in between takes ~1 s more each). The schemas are inside the pip package: nothing
is downloaded, which the tests make sure of by refusing sockets."""

from __future__ import annotations

import copy
import re
import socket

import pytest
import yaml

from .conftest import DEPLOY

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="pip install kubernetes-validate (a dev dependency)")
from kubernetes_validate import utils as kv_utils  # noqa: E402

K8S = DEPLOY / "k8s"
VERSIONS = sorted(set(kv_utils.all_versions()), key=lambda v: tuple(map(int, v.split("."))))
CHECKED = sorted({VERSIONS[0], VERSIONS[len(VERSIONS) // 2], VERSIONS[-1]})


def manifests() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            # the Kustomization is kustomize's own file, not an API object
            if doc and doc.get("kind") != "Kustomization":
                docs.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return docs


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("kubernetes-validate tried to open a socket")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_the_package_ships_the_versions_the_docs_promise():
    assert VERSIONS[0] == "1.25.0" and len(VERSIONS) >= 13, VERSIONS


@pytest.mark.parametrize("version", CHECKED)
def test_every_manifest_is_valid_strictly(version):
    names = []
    for name, doc in manifests():
        kubernetes_validate.validate(doc, version, strict=True)
        names.append(name)
    assert {"DaemonSet", "Deployment", "Service", "ConfigMap", "RuntimeClass",
            "Namespace"} <= {n.split(":")[1].split("/")[0] for n in names}


def test_strict_mode_refuses_a_misspelt_field():
    (_, server), = [(n, d) for n, d in manifests() if n.endswith("DaemonSet/edgeseg-server")]
    bad = copy.deepcopy(server)
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[-1], strict=True)
    bad = copy.deepcopy(server)
    bad["spec"]["replicas"] = 2  # a DaemonSet has no replica count
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[-1], strict=True)


def test_every_secret_the_manifests_use_is_made_in_the_docs():
    """kustomization.yaml promises docs/deploy.md shows the Secret commands: every Secret a
    manifest mounts, with every key it takes, is made there."""
    docs = (DEPLOY.parent / "docs" / "deploy.md").read_text().replace("\\\n", " ")
    used: dict[str, set[str]] = {}

    def walk(node):
        if isinstance(node, dict):
            if "secretName" in node:
                used.setdefault(node["secretName"], set()).update(
                    i["key"] for i in node.get("items", []))
            if isinstance(node.get("secret"), dict) and "name" in node["secret"]:
                used.setdefault(node["secret"]["name"], set()).update(
                    i["key"] for i in node["secret"].get("items", []))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for _, doc in manifests():
        walk(doc)
    assert len(used) >= 3, used
    for name, keys in used.items():
        command = next((line for line in docs.splitlines()
                        if f"create secret generic {name} " in line), None)
        assert command, f"docs/deploy.md does not make Secret {name}"
        made = {m.split("=")[0] for m in re.findall(r"--from-file=(\S+)", command)}
        assert keys <= made, f"{name}: docs make {made}, manifests use {keys}"
