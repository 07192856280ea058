"""`edgeseg agent` with its log file, HOME, cache and TMPDIR on a FULL file system: it
publishes masks as ever, says once what it could not log when space returns, and stops
cleanly on SIGTERM (exit 0)."""

from __future__ import annotations

from tests.diskfull import fill, free_bytes, small_tmpfs

from .conftest import AgentProcess, synthetic_frames, wait_until, write_clip
from .test_e2e import agent_args

LOST = "log write(s) lost: No space left on device"


def test_agent_publishes_with_its_log_disk_full(tmp_path, mosquitto, shared_real_server,
                                               recorder_factory):
    clip = write_clip(tmp_path / "clip.avi", synthetic_frames(20, (48, 64)))
    rec = recorder_factory(mosquitto.port, "edgeseg/dev/cam/#")
    with small_tmpfs(tmp_path / "var", "64k") as var:
        filler = fill(var)
        assert free_bytes(var) == 0
        agent = AgentProcess(
            ["--loop", "--fps", "15", *agent_args(shared_real_server, mosquitto, clip)],
            var / "agent.log",
            env={"HOME": str(var), "XDG_CACHE_HOME": str(var / "cache"), "TMPDIR": str(var)})
        try:
            wait_until(lambda: len(rec.of("mask")) >= 10 or agent.proc.poll() is not None,
                       90, what="masks with the log disk full")
            assert agent.proc.poll() is None, f"the agent died: {agent.proc.returncode}"
            assert len(rec.of("mask")) >= 10
            assert (var / "agent.log").stat().st_size == 0  # nothing could be logged
            filler.unlink()
            assert agent.terminate(30) == 0
        finally:
            agent.close()
        text = (var / "agent.log").read_text(errors="replace")
    assert rec.statuses()[-1:] == ["offline"]
    assert text.count(LOST) == 1, text
    assert "Logging error" not in text and "Traceback" not in text
