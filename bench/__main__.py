"""Run every bench/bench_*.py in turn (each in its own process, as a user would)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

failed = []
for script in sorted(Path(__file__).parent.glob("bench_*.py")):
    print(f"\n=== {script.name} ===", flush=True)
    if subprocess.run([sys.executable, str(script)], check=False).returncode != 0:
        failed.append(script.name)
if failed:
    print(f"\nfailed: {', '.join(failed)}")
    sys.exit(1)
