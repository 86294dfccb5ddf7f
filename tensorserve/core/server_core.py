"""ServerCore: the model config turned into sources, manager and label map.

Owns the current ``ModelConfig`` set, the version labels and the resolution
of a request (name + version or label) to a held servable. ``apply_config``
is the one entry for start-up, config-file polling and the ReloadConfig RPC:
it is serialized, validates first, then updates the source, waits for newly
added models, and finally checks and swaps the labels.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Protocol

from tensorserve.config.models import ModelConfig
from tensorserve.core.handle import ServableHandle
from tensorserve.core.ids import ServableRequest
from tensorserve.core.loader import Loader
from tensorserve.core.manager import AspiredVersionsManager
from tensorserve.core.monitor import ServableStateMonitor
from tensorserve.core.states import ManagerState, VersionStatus
from tensorserve.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unknown,
)

log = logging.getLogger(__name__)
LoaderFactory = Callable[[ModelConfig, int, str], Loader]


class ModelSource(Protocol):
    """What ServerCore needs from a source (``sources.filesystem.FileSystemSource``)."""

    def set_models(self, configs: Sequence[ModelConfig]) -> None: ...

    def poll(self) -> None: ...


class ServerCore:
    """Thread-safe; see the module docstring."""

    def __init__(
        self,
        manager: AspiredVersionsManager,
        monitor: ServableStateMonitor,
        loader_factory: LoaderFactory,
        *,
        allow_labels_for_unavailable: bool = False,
    ) -> None:
        self.manager = manager
        self.monitor = monitor
        self._loader_factory = loader_factory
        self._allow_unavailable_labels = allow_labels_for_unavailable
        self._source: ModelSource | None = None
        self._reload_lock = threading.Lock()
        self._configs: Mapping[str, ModelConfig] = MappingProxyType({})
        self._labels: Mapping[str, Mapping[str, int]] = MappingProxyType({})

    def attach_source(self, source: ModelSource) -> None:
        """Connect the source that discovers versions (before ``apply_config``)."""
        self._source = source

    # ---- the source -> manager adapter ----------------------------------------------------
    def on_aspired(self, config: ModelConfig, versions: dict[int, str]) -> None:
        """Source callback: turn version paths into loaders for the manager."""
        if self._configs.get(config.name) is not config and versions:
            return  # a poll that raced with a config change; the next poll corrects it
        loaders = {v: self._loader_factory(config, v, path) for v, path in versions.items()}
        self.manager.set_aspired_versions(config.name, loaders)

    # ---- configuration -------------------------------------------------------------------
    @property
    def configs(self) -> Mapping[str, ModelConfig]:
        return self._configs

    def apply_config(self, configs: Sequence[ModelConfig], wait_timeout_s: float | None) -> None:
        """Replace the served models; raises after applying what it could (as TF Serving)."""
        with self._reload_lock:
            self._check_platforms(configs)
            old = self._configs
            added = [c.name for c in configs if c.name not in old]
            self._configs = MappingProxyType({c.name: c for c in configs})
            if self._source is not None:
                self._source.set_models(configs)
                self._source.poll()
            failed = self.wait_for_models(added, wait_timeout_s)
            # A model that did not load keeps no labels, so the reload's real error (UNKNOWN,
            # below) is not masked by a label check on its versions.
            self._update_labels([c for c in configs if c.name not in failed])
            if failed:
                raise Unknown(
                    f"{len(failed)} model(s) did not become available: "
                    + "{"
                    + ", ".join(sorted(failed))
                    + "}"
                )

    def _check_platforms(self, configs: Sequence[ModelConfig]) -> None:
        for config in configs:
            previous = self._configs.get(config.name)
            if previous is not None and previous.platform != config.platform:
                raise FailedPrecondition(
                    f"Cannot change the platform of model {config.name} on reload"
                )

    def wait_for_models(self, names: Sequence[str], timeout_s: float | None) -> list[str]:
        """Block until every version of each model is AVAILABLE or ended (load or failure).

        Waiting for all of them (not just the first) lets labels on any version be
        checked afterwards. A model whose base path holds no version yet counts as
        settled (TF Serving would wait forever). Returns the models that ended with no
        available version.
        """

        def settled() -> bool:
            return all(self._settled(n) for n in names)

        self.monitor.wait_until(settled, timeout_s)
        return [n for n in names if not self.monitor.available(n) and self._failed(n)]

    def _settled(self, name: str) -> bool:
        done = (ManagerState.AVAILABLE, ManagerState.END)
        return all(s.state in done for s in self.monitor.versions(name))  # true when none

    def _failed(self, name: str) -> bool:
        statuses = self.monitor.versions(name)
        return (
            bool(statuses)
            and all(s.state is ManagerState.END for s in statuses)
            and any(s.error_message for s in statuses)
        )

    def _update_labels(self, configs: Sequence[ModelConfig]) -> None:
        labels: dict[str, Mapping[str, int]] = {}
        for config in configs:
            for label, version in config.labels.items():
                self._check_label(config.name, label, version)
            labels[config.name] = MappingProxyType(dict(config.labels))
        self._labels = MappingProxyType(labels)

    def _check_label(self, model: str, label: str, version: int) -> None:
        if version in self.monitor.available(model):
            return
        current = self._labels.get(model, {}).get(label)
        if self._allow_unavailable_labels and (current is None or current == version):
            return
        raise FailedPrecondition(
            f"Request to assign label to version {version} of model {model}, which is not"
            " currently available for inference"
        )

    # ---- requests ------------------------------------------------------------------------
    def resolve(self, request: ServableRequest) -> ServableRequest:
        """Turn a label into its version; validates the model name."""
        if not request.name:
            raise InvalidArgument("ModelSpec has no name specified.")
        if request.label is None:
            return request
        version = self._labels.get(request.name, {}).get(request.label)
        if version is None:
            raise InvalidArgument(f"Unrecognized servable version label: {request.label}")
        return ServableRequest(request.name, version)

    def acquire(self, request: ServableRequest) -> ServableHandle:
        """Hold the servable for ``request`` (name + version or label)."""
        return self.manager.acquire(self.resolve(request))

    def labels(self, name: str) -> Mapping[str, int]:
        return self._labels.get(name, MappingProxyType({}))

    def model_names(self) -> list[str]:
        """Configured models, sorted."""
        return sorted(self._configs)

    def model_status(self, name: str, version: int | None) -> list[VersionStatus]:
        """Statuses for GetModelStatus; NotFound with TF Serving's messages."""
        if not name:
            raise InvalidArgument("ModelSpec has no name specified.")
        statuses = self.monitor.versions(name)
        if version is None:
            if not statuses:
                raise NotFound(f"Could not find any versions of model {name}")
            return list(statuses)
        for status in statuses:
            if status.version == version:
                return [status]
        raise NotFound(f"Could not find version {version} of model {name}")
