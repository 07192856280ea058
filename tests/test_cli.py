"""The ``edgeseg`` dispatcher."""

from __future__ import annotations

import subprocess
import sys

from edgeseg import cli


def test_help_lists_commands(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("export", "inspect", "serve", "agent"):
        assert f"  {name}" in out


def test_unknown_command(capsys):
    assert cli.main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_console_script_runs_without_importing_tensorflow():
    code = ("import sys; from edgeseg.cli import main; main(['--help']); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip().endswith("False")
