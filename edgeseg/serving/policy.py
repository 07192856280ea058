"""Version policies: which versions should be loaded, and in what order to get there.

Two kinds of policy, both pure functions (no I/O, no clock, no state), as TF Serving's
``ServableVersionPolicy`` and ``AspiredVersionPolicy`` are:

* :func:`aspired_versions` is the *version* policy a Source applies to the versions it
  found on disk: ``latest`` N (the default, N = 1), ``all``, or ``specific`` versions.
  Versions listed by ``specific`` but absent on disk are simply not aspired.
* :func:`next_action` is the *aspired-version* policy the Manager asks, again and again,
  for one step toward the aspired set of one servable stream. Given a snapshot of every
  version it holds, it answers one :class:`Action` (load or unload one version) or
  ``None`` when nothing is to be done now. Calling it twice on the same snapshot gives the
  same answer.

  - ``AVAILABILITY_PRESERVING`` (default): a new version becomes AVAILABLE before an old
    one unloads, so a request never finds no version; costs the memory of two versions.
    If the new version fails to load, the old one stays.
  - ``RESOURCE_PRESERVING``: unload first, then load; for memory-tight devices. A request
    may find no version while the swap runs.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from edgeseg.errors import InvalidArgument
from edgeseg.serving.servable import State


class VersionPolicyKind(enum.Enum):
    """How a Source chooses aspired versions among the version folders it sees."""

    LATEST = "latest"  # the N highest version numbers
    ALL = "all"  # every version found
    SPECIFIC = "specific"  # exactly the listed versions that exist


@dataclass(frozen=True)
class VersionPolicy:
    kind: VersionPolicyKind = VersionPolicyKind.LATEST
    num_versions: int = 1  # for LATEST
    versions: frozenset[int] = field(default_factory=frozenset)  # for SPECIFIC

    def __post_init__(self) -> None:
        if self.kind is VersionPolicyKind.LATEST and self.num_versions < 1:
            raise InvalidArgument(
                f"model_version_policy latest.num_versions must be >= 1, got {self.num_versions}"
            )
        if self.kind is VersionPolicyKind.SPECIFIC and not self.versions:
            raise InvalidArgument("model_version_policy specific must list at least one version")


def aspired_versions(on_disk: Iterable[int], policy: VersionPolicy) -> list[int]:
    """The versions to serve among ``on_disk``, ascending."""
    found = sorted(set(on_disk))
    if policy.kind is VersionPolicyKind.ALL:
        return found
    if policy.kind is VersionPolicyKind.SPECIFIC:
        return [v for v in found if v in policy.versions]
    return found[-policy.num_versions :]


class PreservePolicy(enum.Enum):
    """What a version swap preserves: availability (default) or memory."""

    AVAILABILITY = "availability_preserving"
    RESOURCE = "resource_preserving"


@dataclass(frozen=True)
class Snapshot:
    """One version the Manager holds, as the aspired-version policy sees it."""

    version: int
    state: State
    aspired: bool


class Verb(enum.Enum):
    LOAD = "load"
    UNLOAD = "unload"


@dataclass(frozen=True)
class Action:
    verb: Verb
    version: int


def next_action(snapshots: Sequence[Snapshot], preserve: PreservePolicy) -> Action | None:
    """The one next step for a servable stream, or None. Pure and idempotent."""
    if preserve is PreservePolicy.RESOURCE:
        return _resource_preserving(snapshots)
    return _availability_preserving(snapshots)


def _unaspired_available(snapshots: Sequence[Snapshot]) -> list[int]:
    return sorted(s.version for s in snapshots if not s.aspired and s.state is State.AVAILABLE)


def _highest_new_aspired(snapshots: Sequence[Snapshot]) -> Action | None:
    new = [s.version for s in snapshots if s.aspired and s.state is State.START]
    return Action(Verb.LOAD, max(new)) if new else None


def _availability_preserving(snapshots: Sequence[Snapshot]) -> Action | None:
    unaspired = _unaspired_available(snapshots)
    has_aspired = any(s.aspired for s in snapshots)
    serving = any(s.aspired and s.state is State.AVAILABLE for s in snapshots)
    # Unload an old version once a replacement serves, when nothing is meant to replace
    # it (the stream was emptied on purpose), or when another old version still serves.
    # When every aspired version failed, the old one keeps serving.
    if unaspired and (serving or not has_aspired or len(unaspired) > 1):
        return Action(Verb.UNLOAD, unaspired[0])
    return _highest_new_aspired(snapshots)


def _resource_preserving(snapshots: Sequence[Snapshot]) -> Action | None:
    unaspired = _unaspired_available(snapshots)
    if unaspired:
        return Action(Verb.UNLOAD, unaspired[0])
    busy = any(s.state in (State.LOADING, State.UNLOADING) for s in snapshots)
    return None if busy else _highest_new_aspired(snapshots)
