"""bench/bench_compare.py's pure parts: the ABBA order, the ratio row and its verdict, and the
temporary worktree's removal. (The end-to-end run takes minutes; run it by hand.)"""

from __future__ import annotations

import subprocess

from bench.bench_compare import REPO, abba, ratio_row, worktrees


def test_abba_alternates_which_side_goes_first():
    order: list[str] = []
    abba((lambda: order.append("A"), lambda: order.append("B")), pairs=4, warmup=0)
    assert "".join(order) == "ABBAABBA"


def test_equal_sides_are_within_noise_and_a_shift_is_named():
    a = [0.010 + 0.001 * (i % 7) for i in range(100)]
    assert ratio_row("same", a, list(reversed(a)))[-1] == "within noise"
    row = ratio_row("slow", a, [x * 1.2 for x in a])
    assert row[6] == "1.200" and row[-1] == "slower (+20.0%)"
    assert ratio_row("fast", a, [x * 0.9 for x in a])[-1] == "faster (-10.0%)"


def test_the_baseline_worktree_is_removed_even_when_the_run_fails(tmp_path):
    try:
        with worktrees("HEAD", None, tmp_path) as (baseline, candidate):
            assert (baseline / "edgeseg" / "__init__.py").is_file()
            assert candidate == REPO
            raise RuntimeError("the run failed")
    except RuntimeError:
        pass
    assert not (tmp_path / "baseline").exists()
    listed = subprocess.run(["git", "worktree", "list"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    assert str(tmp_path) not in listed
