"""Core: what the API core, the transports and health read of the server core.

Contract: :class:`~edgeseg.serving.server_core.ServerCore` is the one implementation; the
Predict/Classify/metadata cores, the gRPC and REST adapters and the health reporter take a
``Core`` so that they depend on these six members only, and a unit test can hand them a
small fake. Request methods (:meth:`Core.handle`, :meth:`Core.resolve_version`,
:meth:`Core.version_states`, :attr:`Core.models`) may be called from any thread, also while
:meth:`Core.apply_config` runs (config changes are serialised inside the core). Starting
and stopping the core is the owner's business (``edgeseg serve``), not part of this view.

Request messages are protobufs built at run time (edgeseg.wire) or by TensorFlow Serving's
generated modules, neither typed; :class:`ModelSpecLike` names the fields of ``ModelSpec``
the core reads, so those messages satisfy it structurally.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # no import cycle, and no TensorFlow, at run time
    from edgeseg.serving.config import ModelConfig
    from edgeseg.serving.servable import Handle, Servable
    from edgeseg.serving.server_core import CoreOptions


class Int64ValueLike(Protocol):
    @property
    def value(self) -> int: ...


class ModelSpecLike(Protocol):
    """The fields of ``tensorflow.serving.ModelSpec`` the core reads."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> Int64ValueLike: ...

    @property
    def version_label(self) -> str: ...

    def WhichOneof(self, oneof_group: str) -> str | None: ...  # protobuf's spelling


@runtime_checkable
class Core(Protocol):
    """The server core as its callers see it (see the module docstring)."""

    @property
    def options(self) -> CoreOptions: ...

    @property
    def models(self) -> dict[str, ModelConfig]:
        """The configured models by name (a copy)."""
        ...

    def apply_config(self, models: Sequence[ModelConfig], wait_s: float | None = None) -> bool:
        """Serve ``models``; True if every first load settled within ``wait_s``."""
        ...

    def resolve_version(self, spec: ModelSpecLike) -> int | None:
        """The version ``spec`` asks for: a number, a label's number, or None (latest)."""
        ...

    def handle(self, spec: ModelSpecLike) -> Handle:
        """A counted handle on the servable ``spec`` names; release it (``with``) when done."""
        ...

    def version_states(self, name: str) -> list[Servable]:
        """Every known version of ``name`` (NotFound when the model has none)."""
        ...
