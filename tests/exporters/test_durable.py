"""Durable export: every file and folder of the staged version is fsynced before the rename
that publishes it, and BASE after it — seen by strace on a real `edgeseg export` process,
and by an in-process recorder of os.fsync / renameat2 (for --force's EXCHANGE too)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from exporters import versions
from exporters.writer import export

from .conftest import tiny_model

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Trace:
    """What the exporter did, in order: ("fsync", path) and ("rename", src, dst, flags)."""

    events: list[tuple[str, ...]] = field(default_factory=list)

    def index(self, kind: str, *args: str) -> int:
        for i, event in enumerate(self.events):
            if event[0] == kind and event[1:1 + len(args)] == args:
                return i
        raise AssertionError(f"no {kind}{args} in:\n" + "\n".join(map(str, self.events)))

    def fsyncs(self, path: str) -> list[int]:
        return [i for i, e in enumerate(self.events) if e == ("fsync", path)]


def publish_rename(trace: Trace, target: Path) -> tuple[int, str]:
    """The rename that made ``target`` appear: (its index, the staged path it came from)."""
    for i, event in enumerate(trace.events):
        if event[0] == "rename" and event[2] == str(target):
            return i, event[1]
    raise AssertionError(f"no rename onto {target} in:\n" + "\n".join(map(str, trace.events)))


def assert_durable(trace: Trace, version_dir: Path) -> None:
    """Each file of the published version fsynced (from its staged path) before the rename,
    each folder after every file and folder in it, and BASE fsynced after the rename."""
    renamed_at, staged = publish_rename(trace, version_dir)
    last_sync: dict[str, int] = {}
    files = sorted(p for p in version_dir.rglob("*") if p.is_file())
    dirs = [version_dir, *sorted(p for p in version_dir.rglob("*") if p.is_dir())]
    assert len(files) >= 6, files  # saved_model.pb, 2 variables, 4 assets
    for path in [*files, *dirs]:
        rel = path.relative_to(version_dir)
        staged_path = os.path.normpath(os.path.join(staged, rel))
        before = [i for i in trace.fsyncs(staged_path) if i < renamed_at]
        assert before, f"{rel or '.'} was not fsynced before the rename onto {version_dir}"
        last_sync[str(rel)] = before[-1]
    for folder in dirs:
        rel = folder.relative_to(version_dir)
        inside = [str(p.relative_to(version_dir)) for p in folder.iterdir()]
        late = [name for name in inside if last_sync[name] > last_sync[str(rel)]]
        assert not late, f"{late} fsynced after their folder {rel or '.'}"
    after = [i for i in trace.fsyncs(str(version_dir.parent)) if i > renamed_at]
    assert after, f"BASE {version_dir.parent} not fsynced after the rename"


# --- strace on a real `edgeseg export` --------------------------------------------------

STRACE_LINE = re.compile(r"^(?:\[pid\s+)?\d+\]?\s+(\w+)\((.*)")
FD_PATH = re.compile(r"^\d+<(.*)>")
RENAME = re.compile(r'"((?:[^"\\]|\\.)*)", AT_FDCWD(?:<[^>]*>)?, "((?:[^"\\]|\\.)*)"'
                    r"(?:, (\w+))?")


def parse_strace(text: str) -> Trace:
    trace = Trace()
    for line in text.splitlines():
        match = STRACE_LINE.match(line)
        if not match or "resumed>" in line:
            continue
        call, args = match.groups()
        if call in ("fsync", "fdatasync"):
            fd = FD_PATH.match(args)
            if fd:
                trace.events.append(("fsync", fd.group(1)))
        elif call in ("rename", "renameat", "renameat2"):
            names = RENAME.search(args) if call != "rename" else re.search(
                r'"([^"]*)", "([^"]*)"()', args)
            if names:
                trace.events.append(("rename", names.group(1), names.group(2),
                                     names.group(3) or ""))
    return trace


def strace_usable() -> str | None:
    """Why strace cannot trace here, or None."""
    if shutil.which("strace") is None:
        return "strace is not installed (Debian package `strace`, in the Makefile)"
    probe = subprocess.run(["strace", "-f", "-e", "trace=fsync", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"strace cannot trace in this environment (ptrace refused): {probe.stderr[-200:]}"
    return None


def test_strace_shows_fsync_order_of_a_real_export(tmp_path):
    reason = strace_usable()
    if reason:
        pytest.skip(reason)
    base = tmp_path / "models" / "deeplab"
    log = tmp_path / "strace.log"
    cmd = ["strace", "-f", "-qq", "-y", "-s", "4096", "-o", str(log),
           "-e", "trace=fsync,fdatasync,rename,renameat,renameat2",
           sys.executable, "-m", "edgeseg", "export", "deeplabv3", "--output", str(base),
           "--input-size", "33", "--depth-multiplier", "0.35", "--num-classes", "3",
           "--quiet"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    trace = parse_strace(log.read_text())
    assert_durable(trace, base / "1")
    # BASE was created by this export: its own entry is made durable in its parent.
    assert trace.fsyncs(str(base.parent))


# --- the same contract in-process, for NOREPLACE and --force's EXCHANGE ----------------

@pytest.fixture()
def recorded(monkeypatch) -> Trace:
    trace = Trace()
    real_fsync, real_renameat2, real_rename = os.fsync, versions._renameat2, os.rename

    def fsync(fd: int) -> None:
        trace.events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def renameat2(src: Path, dst: Path, flags: int) -> bool:
        name = {1: "RENAME_NOREPLACE", 2: "RENAME_EXCHANGE"}[flags]
        trace.events.append(("rename", str(src), str(dst), name))
        return real_renameat2(src, dst, flags)

    def rename(src, dst) -> None:  # os.rename's own signature
        trace.events.append(("rename", str(src), str(dst), ""))
        real_rename(src, dst)

    monkeypatch.setattr(versions.os, "fsync", fsync)
    monkeypatch.setattr(versions, "_renameat2", renameat2)
    monkeypatch.setattr(versions.os, "rename", rename)
    return trace


def test_publish_fsyncs_tree_then_renames_then_base(tmp_path, recorded):
    base = tmp_path / "new" / "deeplab"
    export(tiny_model(seed=1), base)
    assert_durable(recorded, base / "1")
    assert recorded.events[publish_rename(recorded, base / "1")[0]][3] == "RENAME_NOREPLACE"
    for created in (base, base.parent):  # mkdir -p'd folders: durable in their parents
        assert recorded.fsyncs(str(created.parent)), created


def test_force_exchange_is_durable_and_the_old_version_removal_too(tmp_path, recorded):
    base = tmp_path / "deeplab"
    export(tiny_model(seed=1), base)
    old_data = (base / "1" / "variables" / "variables.data-00000-of-00001").read_bytes()
    recorded.events.clear()
    export(tiny_model(seed=2), base, version=1, force=True)
    renamed_at, staged = publish_rename(recorded, base / "1")
    assert recorded.events[renamed_at][3] == "RENAME_EXCHANGE"
    assert_durable(recorded, base / "1")
    # The old version, swapped into staging, is removed and that removal fsynced.
    assert [i for i in recorded.fsyncs(str(Path(staged).parent)) if i > renamed_at]
    new_data = (base / "1" / "variables" / "variables.data-00000-of-00001").read_bytes()
    assert new_data != old_data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deeplab"]


def test_fallback_rename_without_renameat2_is_durable(tmp_path, recorded, monkeypatch):
    """Platforms without renameat2 (old kernels, non-Linux libc) take os.rename."""
    def no_renameat2(src: Path, dst: Path, flags: int) -> bool:
        return False

    base = tmp_path / "deeplab"
    export(tiny_model(seed=1), base)
    monkeypatch.setattr(versions, "_renameat2", no_renameat2)
    recorded.events.clear()
    export(tiny_model(seed=2), base)
    assert_durable(recorded, base / "2")
    recorded.events.clear()
    export(tiny_model(seed=3), base, version=2, force=True)
    assert_durable(recorded, base / "2")
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]
