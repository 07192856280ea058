"""Health verdicts on tables: the server serves only when every model can answer."""

from __future__ import annotations

import pytest

from edgeseg.serving.health import health_of
from edgeseg.serving.servable import State

A, L, E, U = State.AVAILABLE, State.LOADING, State.END, State.UNLOADING


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ({}, {"": True}),
        ({"m": [A]}, {"": True, "m": True}),
        ({"m": [L]}, {"": False, "m": False}),
        ({"m": [E, A]}, {"": True, "m": True}),  # a failed new version beside a good one
        ({"m": [A], "bad": [E]}, {"": False, "m": True, "bad": False}),
        ({"m": [U, L]}, {"": False, "m": False}),  # resource-preserving swap in progress
        ({"m": []}, {"": False, "m": False}),  # no versions on disk yet
    ],
)
def test_health_of(states, expected):
    assert health_of(states) == expected
