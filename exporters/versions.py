"""Versioned folders under a base path, written atomically.

TF Serving's file-system source treats every all-digit child of a base path as a
version. A writer must therefore never let such a folder exist half-written: the kit
builds each version in a temporary folder beside the base path and renames it into
place. ``renameat2`` (Linux) makes both cases atomic: RENAME_NOREPLACE refuses to
overwrite a version another exporter just wrote; RENAME_EXCHANGE swaps an old version
for the new one under ``--force`` without a moment where the version is missing.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import tempfile
from pathlib import Path

from edgeseg.errors import AlreadyExists, InvalidArgument, PermissionDenied

_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def existing_versions(base: Path) -> list[int]:
    if not base.is_dir():
        return []
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit() and p.is_dir())


def next_version(base: Path) -> int:
    versions = existing_versions(base)
    return versions[-1] + 1 if versions else 1


def nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


def check_output(base: Path) -> None:
    """Refuse an output that cannot become a base path, before any work is done."""
    if base.exists() and not base.is_dir():
        raise InvalidArgument(f"output {base} is a file; expected a directory (the model's "
                              "base path, holding numbered version folders)")
    anchor = nearest_existing(base)
    if not anchor.is_dir():
        raise InvalidArgument(f"output {base} lies under {anchor}, which is a file; expected "
                              "a directory path")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise PermissionDenied(f"output {base}: {anchor} is not writable")


def make_staging(base: Path) -> Path:
    """A private folder beside ``base`` (same file system, so a rename is atomic)."""
    anchor = base.parent if base.parent.exists() else nearest_existing(base)
    return Path(tempfile.mkdtemp(prefix=f".{base.name}.export-", dir=anchor))


def publish(staged: Path, target: Path, force: bool) -> None:
    """Move the finished ``staged`` folder to ``target`` atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        if _renameat2(staged, target, _RENAME_NOREPLACE):
            return
        if target.exists():
            raise AlreadyExists(f"version {target} appeared while exporting; not overwritten")
        os.rename(staged, target)
        return
    if not force:
        raise AlreadyExists(f"version {target} already exists; pass --force to replace it "
                            "or --version to choose another")
    if _renameat2(staged, target, _RENAME_EXCHANGE):
        shutil.rmtree(staged)  # now holds the old version
        return
    old = staged.with_name(staged.name + ".old")
    os.rename(target, old)
    os.rename(staged, target)
    shutil.rmtree(old)


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """True when done; False when the platform lacks renameat2 (caller falls back)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = call(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags)
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL):
        return False
    if err == errno.EEXIST:
        raise AlreadyExists(f"version {dst} appeared while exporting; not overwritten")
    raise OSError(err, os.strerror(err), str(dst))
