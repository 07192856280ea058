"""Versioned, atomic writes, and every bad input leaving BASE as it was."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from edgeseg import cli
from edgeseg.errors import AlreadyExists, InvalidArgument, PermissionDenied
from exporters import versions, writer
from exporters.writer import export

from .conftest import tiny_model, tree


def staging_leftovers(base: Path) -> list[str]:
    return [p.name for p in base.parent.iterdir() if ".export-" in p.name]


@pytest.mark.parametrize(("names", "expected"), [([], 1), (["1", "2"], 3),
                                                 (["00000123", "7", "tmp", ".3.x"], 124)])
def test_next_version(tmp_path, names, expected):
    for name in names:
        (tmp_path / name).mkdir()
    assert versions.next_version(tmp_path) == expected


def test_versions_count_up_and_force_replaces(tmp_path):
    base = tmp_path / "m"
    assert export(tiny_model(seed=1), base).version == 1
    assert export(tiny_model(seed=2), base).version == 2
    before = (base / "1" / "variables" / "variables.data-00000-of-00001").read_bytes()
    with pytest.raises(AlreadyExists, match="--force"):
        export(tiny_model(seed=3), base, version=1)
    assert (base / "1" / "variables" / "variables.data-00000-of-00001").read_bytes() == before
    export(tiny_model(seed=3), base, version=1, force=True)
    after = (base / "1" / "variables" / "variables.data-00000-of-00001").read_bytes()
    assert after != before
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]
    assert staging_leftovers(base) == []


def test_publish_never_overwrites_a_version_that_appears(tmp_path):
    staged, target = tmp_path / "staged", tmp_path / "base" / "4"
    staged.mkdir()
    target.mkdir(parents=True)
    (target / "keep").write_text("old")
    with pytest.raises(AlreadyExists):
        versions.publish(staged, target, force=False)
    assert (target / "keep").read_text() == "old"


def test_a_poller_never_sees_a_half_written_version(tmp_path):
    """Poll BASE as a model server would while two versions are exported."""
    base = tmp_path / "polled"
    seen_incomplete: list[str] = []
    seen_versions: set[str] = set()
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            if base.is_dir():
                for child in base.iterdir():
                    if not child.name.isdigit():
                        continue
                    seen_versions.add(child.name)
                    needed = ["saved_model.pb", "variables/variables.index",
                              "variables/variables.data-00000-of-00001",
                              "assets.extra/model_card.json"]
                    if not all((child / n).is_file() for n in needed):
                        seen_incomplete.append(child.name)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        export(tiny_model(seed=1), base)
        export(tiny_model(seed=2), base)
    finally:
        stop.set()
        poller.join()
    assert seen_versions == {"1", "2"}
    assert seen_incomplete == []


def test_a_failure_mid_write_leaves_base_as_it_was(tmp_path, monkeypatch):
    base = tmp_path / "m"
    export(tiny_model(), base)
    before = tree(base)

    def broken(*_args, **_kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(writer, "_write_assets", broken)
    with pytest.raises(OSError, match="disk full"):
        export(tiny_model(), base)
    assert tree(base) == before
    assert staging_leftovers(base) == []


def test_a_failed_first_export_does_not_create_base(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "_write_assets", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        export(tiny_model(), tmp_path / "new" / "base")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_is_refused_before_any_work(tmp_path, monkeypatch):
    # As root every directory is writable, so simulate the permission check's answer.
    monkeypatch.setattr(versions.os, "access", lambda *_: False)
    with pytest.raises(PermissionDenied, match="not writable"):
        versions.check_output(tmp_path / "m")


# --- the CLI: one clear line on stderr, non-zero exit, BASE untouched -----------------

def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


@pytest.fixture()
def base_with_v1(tmp_path) -> Path:
    base = tmp_path / "deeplab"
    export(tiny_model(), base)
    return base


def assert_refused(argv, capsys, base: Path, *needles: str) -> None:
    before = tree(base)
    code, line = run_cli(argv, capsys)
    assert code != 0
    assert line.startswith("edgeseg export: error: ")
    for needle in needles:
        assert needle in line
    assert tree(base) == before
    assert staging_leftovers(base) == []


def test_cli_existing_version_without_force(base_with_v1, capsys):
    assert_refused(["export", "deeplabv3", "--output", str(base_with_v1), "--version", "1",
                    "--input-size", "65"], capsys, base_with_v1, "already exists", "--force")


def test_cli_missing_weights(base_with_v1, capsys, tmp_path):
    missing = tmp_path / "missing.weights.h5"
    assert_refused(["export", "deeplabv3", "--output", str(base_with_v1), "--input-size", "65",
                    "--weights", str(missing)], capsys, base_with_v1, str(missing),
                   "does not exist")


def test_cli_unreadable_weights(base_with_v1, capsys, tmp_path):
    junk = tmp_path / "junk.weights.h5"
    junk.write_bytes(b"\x00garbage" * 100)
    assert_refused(["export", "deeplabv3", "--output", str(base_with_v1), "--input-size", "65",
                    "--weights", str(junk)], capsys, base_with_v1, "not a Keras HDF5")


def test_cli_weights_of_another_architecture(base_with_v1, capsys, tmp_path):
    from exporters.deeplab import DeepLabConfig, build_keras_model

    path = tmp_path / "dm05.weights.h5"
    build_keras_model(DeepLabConfig(input_size=(65, 65), depth_multiplier=0.5)).save_weights(path)
    assert_refused(["export", "deeplabv3", "--output", str(base_with_v1), "--input-size", "65",
                    "--weights", str(path)], capsys, base_with_v1, "layer 'Conv'",
                   "(3, 3, 3, 16)", "(3, 3, 3, 32)")


def test_cli_output_is_a_file(tmp_path, capsys):
    output = tmp_path / "model.bin"
    output.write_text("x")
    assert_refused(["export", "deeplabv3", "--output", str(output)], capsys, tmp_path,
                   "is a file", "expected a directory")
    output_under = output / "deeplab"
    assert_refused(["export", "deeplabv3", "--output", str(output_under)], capsys, tmp_path,
                   "which is a file")


def test_cli_calibration_folder_without_images(base_with_v1, capsys, tmp_path):
    empty = tmp_path / "frames"
    empty.mkdir()
    (empty / "readme.txt").write_text("no pictures here")
    assert_refused(["export", "deeplabv3", "--output", str(base_with_v1),
                    "--calibration-images", str(empty)], capsys, base_with_v1,
                   "holds no images", ".jpg")
    assert_refused(["export", "deeplabv3", "--output", str(base_with_v1),
                    "--calibration-images", str(tmp_path / "nowhere")], capsys, base_with_v1,
                   "does not exist")


def test_cli_unknown_source(tmp_path, capsys):
    code, line = run_cli(["export", "resnet", "--output", str(tmp_path / "m")], capsys)
    assert code == 2 and "unknown model source 'resnet'" in line
    assert not (tmp_path / "m").exists()


def test_cli_exports_and_reports(tmp_path, capsys):
    base = tmp_path / "deeplab"
    started = time.monotonic()
    assert cli.main(["export", "deeplabv3", "--output", str(base), "--input-size", "65",
                     "--depth-multiplier", "0.35"]) == 0
    out = capsys.readouterr()
    assert f"exported version 1 to {base / '1'}" in out.out
    assert "RANDOM weights" in out.err and "done in" in out.err  # progress lines
    assert (base / "1" / "saved_model.pb").is_file()
    assert time.monotonic() - started < 300


def test_invalid_version_number(tmp_path):
    with pytest.raises(InvalidArgument, match="non-negative"):
        writer.preflight(tmp_path / "m", -1, False, None)
