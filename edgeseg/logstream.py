"""stdout/stderr that survive a full (or failing) log disk, for the long-running processes.

``edgeseg serve`` and ``edgeseg agent`` log to stderr; systemd, Docker or a shell redirect
put that in a file. When that file's disk fills, Python's own streams raise ``OSError``
(ENOSPC) from ``print`` and ``flush``: one status line would kill a server that is
answering requests perfectly well. :func:`install` replaces ``sys.stdout`` and
``sys.stderr`` with :class:`LossyStream`: each write goes straight to the file descriptor;
a write that fails is dropped and counted, and the first write that succeeds again is
preceded by ONE line saying how many writes were lost and why. Nothing raises.

Thread-safe (one lock per stream): logging handlers and print() may write from any thread.
"""

from __future__ import annotations

import io
import os
import sys
import threading


class LossyStream(io.TextIOBase):
    """A text stream over ``fd`` that drops what cannot be written instead of raising."""

    def __init__(self, fd: int, prog: str, encoding: str = "utf-8",
                 owner: object = None) -> None:
        self._fd, self._prog, self._encoding = fd, prog, encoding
        # The stream this one replaces may own ``fd`` (os.fdopen): keep it alive, or its
        # collection would close the descriptor under us (tfnoise.py's duplicate of fd 2).
        self._owner = owner
        self._lock = threading.Lock()
        self.lost = 0  # writes dropped since the last one that succeeded
        self.lost_total = 0
        self._reason = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    def fileno(self) -> int:
        return self._fd

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, text: str) -> int:
        data = text.encode(self._encoding, "backslashreplace")
        with self._lock:
            if self.lost and not self._put(self._lost_line()):
                self._drop()
                return len(text)
            self.lost = 0
            if not self._put(data):
                self._drop()
        return len(text)

    def flush(self) -> None:  # writes are unbuffered
        return None

    def _lost_line(self) -> bytes:
        return (f"{self._prog}: {self.lost} log write(s) lost: {self._reason}; "
                "logging again\n").encode(self._encoding)

    def _drop(self) -> None:
        self.lost += 1
        self.lost_total += 1

    def _put(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except InterruptedError:
                continue
            except OSError as exc:
                self._reason = exc.strerror or str(exc)
                return False
            view = view[written:]
        return True


def install(prog: str) -> None:
    """Make ``sys.stdout`` and ``sys.stderr`` lossy (a no-op for one that has no file)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, LossyStream) or stream is None:
            continue
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # already full: what it held is lost, as any later write would be
        try:
            fd = stream.fileno()
        except (OSError, ValueError, io.UnsupportedOperation):
            continue  # pytest's capture, a closed stream: leave it
        setattr(sys, name, LossyStream(fd, prog, getattr(stream, "encoding", None) or "utf-8",
                                       owner=stream))
