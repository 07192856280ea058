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


def test_readiness_names_the_models_not_serving():
    from edgeseg.errors import NotFound
    from edgeseg.serving.health import readiness

    class Core:
        models = {"m": None, "bad": None, "empty": None}

        def version_states(self, name):
            if name == "empty":
                raise NotFound("Could not find any versions of model empty")
            return [type("S", (), {"state": A if name == "m" else E})()]

    assert readiness(Core()) == (False, "not ready: no AVAILABLE version of bad, empty")
    Core.models = {"m": None}
    assert readiness(Core()) == (True, "ready")
