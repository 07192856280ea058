"""Version policies and aspired-version policies, on tables: pure functions, no I/O."""

from __future__ import annotations

import pytest

from edgeseg.errors import InvalidArgument
from edgeseg.serving.policy import (
    Action,
    PreservePolicy,
    Snapshot,
    Verb,
    VersionPolicy,
    VersionPolicyKind,
    aspired_versions,
    next_action,
)
from edgeseg.serving.servable import State

LATEST, ALL, SPECIFIC = VersionPolicyKind.LATEST, VersionPolicyKind.ALL, VersionPolicyKind.SPECIFIC


@pytest.mark.parametrize(
    ("on_disk", "policy", "expected"),
    [
        ([1, 2, 3], VersionPolicy(), [3]),
        ([3, 1, 2], VersionPolicy(LATEST, num_versions=2), [2, 3]),
        ([1], VersionPolicy(LATEST, num_versions=5), [1]),
        ([], VersionPolicy(), []),
        ([123, 124], VersionPolicy(ALL), [123, 124]),
        ([123, 124], VersionPolicy(SPECIFIC, versions=frozenset({123})), [123]),
        ([124], VersionPolicy(SPECIFIC, versions=frozenset({123})), []),
        ([1, 2, 3], VersionPolicy(SPECIFIC, versions=frozenset({1, 3, 9})), [1, 3]),
    ],
)
def test_aspired_versions(on_disk, policy, expected):
    assert aspired_versions(on_disk, policy) == expected


@pytest.mark.parametrize(
    "make",
    [lambda: VersionPolicy(LATEST, num_versions=0), lambda: VersionPolicy(SPECIFIC)],
)
def test_invalid_version_policies(make):
    with pytest.raises(InvalidArgument):
        make()


def S(version, state, aspired=True):  # a table helper
    return Snapshot(version, state, aspired)


A, R = PreservePolicy.AVAILABILITY, PreservePolicy.RESOURCE
START, LOADING, AVAILABLE, UNLOADING, END = (State.START, State.LOADING, State.AVAILABLE,
                                             State.UNLOADING, State.END)
LOAD, UNLOAD = Verb.LOAD, Verb.UNLOAD


@pytest.mark.parametrize(
    ("snapshots", "preserve", "expected"),
    [
        # first load
        ([S(1, START)], A, Action(LOAD, 1)),
        ([S(1, START)], R, Action(LOAD, 1)),
        # the highest new version first
        ([S(1, START), S(2, START)], A, Action(LOAD, 2)),
        # settled
        ([S(1, AVAILABLE)], A, None),
        ([S(1, AVAILABLE)], R, None),
        # swap, availability-preserving: load the new one while the old serves...
        ([S(1, AVAILABLE, False), S(2, START)], A, Action(LOAD, 2)),
        ([S(1, AVAILABLE, False), S(2, LOADING)], A, None),
        # ...and unload the old one only once the new one is AVAILABLE
        ([S(1, AVAILABLE, False), S(2, AVAILABLE)], A, Action(UNLOAD, 1)),
        # swap, resource-preserving: unload first, load only when nothing is in progress
        ([S(1, AVAILABLE, False), S(2, START)], R, Action(UNLOAD, 1)),
        ([S(1, UNLOADING, False), S(2, START)], R, None),
        ([S(2, START)], R, Action(LOAD, 2)),
        # the new version failed: the old one keeps serving
        ([S(1, AVAILABLE, False), S(2, END)], A, None),
        # the model was removed from the config: unload everything
        ([S(1, AVAILABLE, False)], A, Action(UNLOAD, 1)),
        # two old versions serving: the lower one goes first, even before the new one is in
        ([S(1, AVAILABLE, False), S(2, AVAILABLE, False), S(3, START)], A, Action(UNLOAD, 1)),
        # 'all' policy grows: load the new one, unload nothing
        ([S(1, AVAILABLE), S(2, START)], A, Action(LOAD, 2)),
        ([S(1, AVAILABLE), S(2, START)], R, Action(LOAD, 2)),
    ],
)
def test_next_action(snapshots, preserve, expected):
    assert next_action(snapshots, preserve) == expected
    assert next_action(snapshots, preserve) == expected  # idempotent
