"""The file-system Source: numeric folders only, complete aspired sets, removals."""

from __future__ import annotations

from edgeseg.serving.policy import VersionPolicy, VersionPolicyKind
from edgeseg.serving.source import FileSystemSource, WatchedModel, list_versions


def make_base(tmp_path, names):
    for name in names:
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a file, not a version folder")
    return tmp_path


def test_only_numeric_folders_are_versions(tmp_path):
    base = make_base(tmp_path, ["1", "00000123", "2.tmp", ".3.partial", "latest"])
    assert sorted(list_versions(str(base))) == [1, 123]


def test_poll_emits_the_policy_choice_and_forgets_removed_models(tmp_path):
    base = make_base(tmp_path, ["1", "2", "3"])
    calls = []
    source = FileSystemSource(lambda name, versions: calls.append((name, dict(versions))))
    source.set_models([WatchedModel("m", str(base), VersionPolicy()),
                       WatchedModel("all", str(base), VersionPolicy(VersionPolicyKind.ALL))])
    source.poll_once()
    assert calls == [("m", {3: str(base / "3")}),
                     ("all", {v: str(base / str(v)) for v in (1, 2, 3)})]
    calls.clear()
    source.set_models([WatchedModel("all", str(base), VersionPolicy(VersionPolicyKind.ALL))])
    assert calls == [("m", {})]  # a dropped model is told to unload everything


def test_unreadable_base_path_keeps_what_is_served(tmp_path):
    calls = []
    source = FileSystemSource(lambda name, versions: calls.append(name))
    source.set_models([WatchedModel("m", str(tmp_path / "missing"), VersionPolicy())])
    source.poll_once()
    assert calls == []


def test_background_polling_sees_new_versions(tmp_path):
    import threading

    seen = threading.Event()
    source = FileSystemSource(
        lambda name, versions: seen.set() if 2 in versions else None, poll_wait_s=0.05)
    (tmp_path / "1").mkdir()
    source.set_models([WatchedModel("m", str(tmp_path), VersionPolicy())])
    source.start()
    try:
        (tmp_path / "2").mkdir()
        assert seen.wait(5)
    finally:
        source.stop()
