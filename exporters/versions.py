"""Versioned folders under a base path, written atomically.

TF Serving's file-system source treats every all-digit child of a base path as a
version. A writer must therefore never let such a folder exist half-written: the kit
builds each version in a temporary folder beside the base path and renames it into
place. ``renameat2`` (Linux) makes both cases atomic: RENAME_NOREPLACE refuses to
overwrite a version another exporter just wrote; RENAME_EXCHANGE swaps an old version
for the new one under ``--force`` without a moment where the version is missing.

Atomic is not yet durable: after a power cut, ext4's delayed allocation can leave a renamed
version whose files are empty or short. :func:`publish` therefore fsyncs every file of the
staged tree, then every directory of it (deepest first), then makes the rename, then
fsyncs ``BASE``; after an exchange the old version is removed and its parent fsynced too.
The walk covers whatever the writer put into staging (SavedModel, variables, warmup file,
assets, model.tflite), so no writer needs its own fsync. A full disk while writing becomes
one :class:`~edgeseg.errors.ResourceExhausted` naming the file (:func:`disk_full`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

from edgeseg.errors import AlreadyExists, InvalidArgument, PermissionDenied, ResourceExhausted

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
    """Move the finished ``staged`` folder to ``target`` atomically and durably."""
    fsync_tree(staged)
    make_dirs_durably(target.parent)
    base = target.parent
    if not target.exists():
        if not _renameat2(staged, target, _RENAME_NOREPLACE):
            if target.exists():
                raise AlreadyExists(f"version {target} appeared while exporting; not "
                                    "overwritten")
            os.rename(staged, target)
        fsync_dir(base)
        return
    if not force:
        raise AlreadyExists(f"version {target} already exists; pass --force to replace it "
                            "or --version to choose another")
    if _renameat2(staged, target, _RENAME_EXCHANGE):
        fsync_dir(base)
        shutil.rmtree(staged)  # now holds the old version
        fsync_dir(staged.parent)
        return
    old = staged.with_name(staged.name + ".old")
    os.rename(target, old)
    os.rename(staged, target)
    fsync_dir(base)
    shutil.rmtree(old)
    fsync_dir(old.parent)


def fsync_tree(root: Path) -> None:
    """fsync every regular file under ``root``, then every directory, deepest first and
    ``root`` last (a directory's entries are durable only once its own inode is synced)."""
    files: list[str] = []
    dirs: list[str] = []
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if stat.S_ISREG(os.lstat(path).st_mode):  # links point elsewhere: not ours
                files.append(path)
        dirs.append(dirpath)
    for path in files:
        fsync_path(path)
    for path in dirs:
        fsync_dir(path)


def fsync_path(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durably(path: Path) -> None:
    """``mkdir -p`` where each new folder and its parent are fsynced, so BASE itself
    survives a power cut when the first export creates it."""
    missing: list[Path] = []
    probe = path.absolute()
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
        fsync_dir(new)
        fsync_dir(new.parent)


_TF_FULL = re.compile(r"(\S[^\n]*?); No space left on device")


def disk_full(exc: BaseException, base: Path, staging: Path) -> ResourceExhausted | None:
    """The error to raise when ``exc`` says the disk filled while staging a version under
    ``base``; None for any other error. TF's writers name the file in their message;
    Python's (e.g. ``write_bytes``) do not, and then the newest file in staging is it."""
    text = getattr(exc, "message", None) or str(exc)
    tf_full = _TF_FULL.search(text) if "No space left on device" in text else None
    if not (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) and tf_full is None:
        return None
    filename = (tf_full.group(1) if tf_full else None) or getattr(exc, "filename", None)
    path = Path(filename) if filename else _newest_file(staging)
    where = _relative(path, staging) if path is not None else "a file of the new version"
    return ResourceExhausted(f"no space left on device while writing {where} under {base}; "
                             f"{base} is left as it was: free space and export again")


def _newest_file(root: Path) -> Path | None:
    files = [p for p in root.rglob("*") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_mtime_ns) if files else None


def _relative(path: Path, staging: Path) -> str:
    try:
        parts = path.absolute().relative_to(staging.absolute()).parts
    except ValueError:
        return str(path)
    return "/".join(parts[1:] if len(parts) > 1 else parts)  # drop staging's own folder


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
