"""ServerCore: the configured models, wired from Source to Manager, and request routing.

Contract (as TF Serving's ``ServerCore``): :meth:`ServerCore.apply_config` makes a list of
:class:`~edgeseg.serving.config.ModelConfig` the served set: new models are watched and
loaded, dropped ones unloaded, changed tags/policies apply to later loads; it returns once
the first poll's loads have settled (each aspired version AVAILABLE or failed), within
``wait_s``. Version labels must name AVAILABLE versions (unless
``allow_labels_for_unavailable``), else FAILED_PRECONDITION and the previous labels stay.
Config changes are serialised; request methods may run on any thread meanwhile.

:meth:`ServerCore.handle` turns a request's ``ModelSpec`` (name; version or version_label
or neither = the highest AVAILABLE version) into a counted handle, with TF Serving's errors.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgeseg.errors import FailedPrecondition, InvalidArgument
from edgeseg.model_contract import TAG_FLOAT
from edgeseg.serving.config import ModelConfig
from edgeseg.serving.core_protocol import ModelSpecLike
from edgeseg.serving.loader import Loader
from edgeseg.serving.manager import LoaderFactory, Manager, StreamOptions
from edgeseg.serving.policy import PreservePolicy
from edgeseg.serving.servable import Handle, Servable, State
from edgeseg.serving.source import FileSystemSource, WatchedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CoreOptions:
    file_system_poll_wait_s: float = 1.0
    max_load_retries: int = 5
    load_retry_interval_s: float = 60.0
    allow_labels_for_unavailable: bool = False
    method_name_check: bool = False
    default_tags: tuple[str, ...] = (TAG_FLOAT,)  # for models whose config names none
    default_preserve: PreservePolicy = PreservePolicy.AVAILABILITY


class ServerCore:
    def __init__(self, options: CoreOptions, loader_factory: LoaderFactory = Loader) -> None:
        self.options = options
        self.manager = Manager(loader_factory, options.max_load_retries,
                               options.load_retry_interval_s)
        self.source = FileSystemSource(self.manager.set_aspired_versions,
                                       options.file_system_poll_wait_s)
        self._config_lock = threading.Lock()
        self._models: dict[str, ModelConfig] = {}
        self._labels: dict[str, Mapping[str, int]] = {}

    def start(self) -> None:
        self.manager.start()
        self.source.start()

    def stop(self, grace_s: float) -> None:
        self.source.stop()
        self.manager.stop(grace_s)

    @property
    def models(self) -> dict[str, ModelConfig]:
        return dict(self._models)

    def apply_config(self, models: Sequence[ModelConfig], wait_s: float | None = None) -> bool:
        """Serve ``models``; True if every first load settled within wait_s."""
        with self._config_lock:
            for model in models:
                self.manager.set_options(model.name, StreamOptions(model.tags, model.preserve,
                                                                   model.prefer_tflite))
            self.source.set_models(
                [WatchedModel(m.name, m.base_path, m.policy) for m in models]
            )
            self._models = {m.name: m for m in models}
            self.source.poll_once()
            settled = self.manager.wait_settled([m.name for m in models], wait_s)
            self._set_labels(models)
            return settled

    def _set_labels(self, models: Sequence[ModelConfig]) -> None:
        if not self.options.allow_labels_for_unavailable:
            for model in models:
                for label, version in model.labels.items():
                    if not self._is_available(model.name, version):
                        raise FailedPrecondition(
                            f"Request to assign label {label} to version {version} of model "
                            f"{model.name}, which is not currently available for inference"
                        )
        self._labels = {m.name: dict(m.labels) for m in models}

    def _is_available(self, name: str, version: int) -> bool:
        try:
            return any(s.version == version and s.state is State.AVAILABLE
                       for s in self.manager.versions(name))
        except Exception:  # NotFound: a model with no versions at all
            return False

    def resolve_version(self, spec: ModelSpecLike) -> int | None:
        """The version a ModelSpec asks for: a number, a label's number, or None (latest)."""
        choice = spec.WhichOneof("version_choice")
        if choice == "version":
            return spec.version.value
        if choice == "version_label":
            version = self._labels.get(spec.name, {}).get(spec.version_label)
            if version is None:
                raise InvalidArgument(
                    f"Unrecognized servable version label: {spec.version_label}"
                )
            return version
        return None

    def handle(self, spec: ModelSpecLike) -> Handle:
        if not spec.name:
            raise InvalidArgument("Missing ModelSpec name")
        return self.manager.handle(spec.name, self.resolve_version(spec))

    def version_states(self, name: str) -> list[Servable]:
        return self.manager.versions(name)


if TYPE_CHECKING:  # mypy checks here that ServerCore is what its callers are typed against
    from edgeseg.serving.core_protocol import Core

    def _is_core(core: ServerCore) -> Core:
        return core
