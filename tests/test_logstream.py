"""LossyStream: a failing log fd drops and counts writes, never raises, and says once what
was lost when writing works again (the server's and agent's stderr on a full disk)."""

from __future__ import annotations

import logging
import os

import pytest

from edgeseg.logstream import LossyStream


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_writes_to_a_full_device_are_counted_then_reported_once():
    fd = os.open("/dev/full", os.O_WRONLY)
    read_end, write_end = os.pipe()
    try:
        stream = LossyStream(fd, "edgeseg test")
        handler = logging.StreamHandler(stream)
        log = logging.getLogger("lossy-test")
        log.addHandler(handler)
        log.propagate = False
        log.warning("first")
        print("second", file=stream, flush=True)
        assert stream.lost == 3  # logging: 1 write; print: "second" and "\n"
        os.dup2(write_end, fd)  # the disk has space again
        log.warning("third")
        stream.write("fourth\n")
        os.close(write_end)
        os.close(fd)
        fd = -1
        text = os.read(read_end, 1 << 16).decode()
    finally:
        log.removeHandler(handler)
        if fd >= 0:
            os.close(fd)
        os.close(read_end)
    assert text == ("edgeseg test: 3 log write(s) lost: No space left on device; "
                    "logging again\nthird\nfourth\n")
    assert stream.lost == 0 and stream.lost_total == 3


def test_install_keeps_a_replaced_stream_that_owns_its_descriptor_alive(monkeypatch):
    """tfnoise.py leaves sys.stderr on an os.fdopen'd duplicate of fd 2; once install()
    replaced it, collecting the old stream must not close the descriptor under us."""
    import gc
    import io
    import os
    import sys

    from edgeseg import logstream

    read_end, write_end = os.pipe()
    owned = io.TextIOWrapper(os.fdopen(os.dup(write_end), "wb", buffering=0), encoding="utf-8")
    monkeypatch.setattr(sys, "stderr", owned)
    logstream.install("t")
    del owned
    gc.collect()
    print("still here", file=sys.stderr)
    lossy = sys.stderr
    monkeypatch.undo()
    os.close(write_end)
    assert lossy.lost_total == 0
    assert os.read(read_end, 100) == b"still here\n"
