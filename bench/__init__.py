"""Benchmarks: each bench_*.py prints a table of medians and ratios measured side by side
in one run. ``python -m bench`` runs them all; ``python bench/bench_X.py`` runs one."""
