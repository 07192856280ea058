"""ServerCore with fake loaders: config application, version labels, spec resolution."""

from __future__ import annotations

import pytest
from tensorflow_serving.apis import model_pb2

from edgeseg.errors import FailedPrecondition, InvalidArgument, NotFound
from edgeseg.serving import health
from edgeseg.serving.config import ModelConfig
from edgeseg.serving.core_protocol import Core
from edgeseg.serving.policy import VersionPolicy, VersionPolicyKind
from edgeseg.serving.servable import State
from edgeseg.serving.server_core import CoreOptions, ServerCore


class FakeLoader:
    def __init__(self, path, tags):
        self.path = path

    def load(self):
        return object()


@pytest.fixture
def base(tmp_path):
    for version in (1, 2):
        (tmp_path / str(version)).mkdir()
    return tmp_path


@pytest.fixture
def make_core():
    cores = []

    def make(**options):
        core = ServerCore(CoreOptions(file_system_poll_wait_s=0, **options), FakeLoader)
        core.start()
        cores.append(core)
        return core

    yield make
    for core in cores:
        core.stop(1)


def model(base, labels=None, policy=VersionPolicyKind.ALL, name="m"):
    return ModelConfig(name, str(base), VersionPolicy(policy), labels=labels or {})


def spec(name="m", version=None, label=None):
    s = model_pb2.ModelSpec(name=name)
    if version is not None:
        s.version.value = version
    if label is not None:
        s.version_label = label
    return s


def served(core, s):
    with core.handle(s) as handle:  # released at once: in-flight handles delay unloading
        return handle.version


def test_labels_resolve_to_their_versions(make_core, base):
    core = make_core()
    assert core.apply_config([model(base, {"stable": 1, "canary": 2})], wait_s=10)
    assert served(core, spec(label="stable")) == 1
    assert served(core, spec(label="canary")) == 2
    assert served(core, spec()) == 2
    assert served(core, spec(version=1)) == 1
    with pytest.raises(InvalidArgument, match="Unrecognized servable version label: beta"):
        core.handle(spec(label="beta"))


def test_labels_must_name_available_versions(make_core, base):
    core = make_core()
    with pytest.raises(FailedPrecondition, match="version 7 of model m, which is not currently"):
        core.apply_config([model(base, {"stable": 7})], wait_s=10)


def test_labels_for_unavailable_versions_when_allowed(make_core, base):
    core = make_core(allow_labels_for_unavailable=True)
    core.apply_config([model(base, {"next": 3})], wait_s=10)
    with pytest.raises(NotFound, match=r"Specific\(m, 3\)"):
        core.handle(spec(label="next"))
    (base / "3").mkdir()
    core.source.poll_once()
    assert core.manager.wait_settled(timeout=10)
    assert served(core, spec(label="next")) == 3


def test_a_model_dropped_from_the_config_unloads(make_core, base, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    (other / "5").mkdir()
    core = make_core()
    core.apply_config([model(base), model(other, name="o")], wait_s=10)
    core.apply_config([model(other, name="o")], wait_s=10)
    assert core.manager.wait_settled(timeout=10)
    with pytest.raises(NotFound, match=r"Latest\(m\)"):
        core.handle(spec())
    assert served(core, spec("o")) == 5


def test_missing_name(make_core):
    with pytest.raises(InvalidArgument, match="Missing ModelSpec name"):
        make_core().handle(spec(name=""))


def test_server_core_is_the_core_its_callers_are_typed_against(make_core, base):
    """The transports, the API core and health take a ``Core``; ServerCore must be one."""
    core = make_core()
    assert isinstance(core, Core)
    assert health.readiness(core) == (True, "ready")  # nothing configured, nothing to wait for
    core.apply_config([model(base)])
    assert health.configured_states(core) == {"m": [State.AVAILABLE] * 2}
