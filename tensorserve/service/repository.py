"""The Open Inference Protocol's model repository extension, over the model lifecycle.

``index`` lists every configured model (with each known version's state and last error)
and every ``--model_repository`` subfolder not served. ``load``/``unload`` change the
served model list through the same path as ReloadConfig (version policy, warm-up,
zero-downtime swaps); the changes live in memory, and a restart serves the configuration
again. While ``--model_config_file`` is polled, the file owns the model list and both
answer FAILED_PRECONDITION saying so.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tensorserve.config.models import ModelConfig
from tensorserve.core.states import ManagerState, VersionStatus
from tensorserve.errors import FailedPrecondition, InvalidArgument, NotFound

_STATES = {
    ManagerState.AVAILABLE: "READY",
    ManagerState.LOADING: "LOADING",
    ManagerState.START: "LOADING",
    ManagerState.UNLOADING: "UNLOADING",
}


@dataclass(frozen=True, slots=True)
class RepositoryOptions:
    enabled: bool
    root: str  # "" = no repository folder
    allow_base_path: bool
    config_file_polled: bool


class ModelRepository:
    """``configs()`` reads the served list; ``apply(configs)`` applies one (blocking)."""

    def __init__(
        self,
        options: RepositoryOptions,
        configs: Callable[[], Mapping[str, ModelConfig]],
        versions: Callable[[str], Sequence[VersionStatus]],
        apply: Callable[[tuple[ModelConfig, ...]], None],
    ) -> None:
        self._options = options
        self._configs = configs
        self._versions = versions
        self._apply = apply
        self._lock = asyncio.Lock()

    def index(self) -> list[dict[str, Any]]:
        """Triton's index entries: name, version, state, reason."""
        configs = self._configs()
        out: list[dict[str, Any]] = []
        for name in sorted(set(configs) | set(self._folders())):
            versions = self._versions(name) if name in configs else []
            if not versions:
                reason = "not loaded" if name not in configs else "no version loaded yet"
                out.append({"name": name, "version": "", "state": "UNAVAILABLE",
                            "reason": reason})  # fmt: skip
            for v in sorted(versions, key=lambda s: s.version):
                out.append(
                    {
                        "name": name,
                        "version": str(v.version),
                        "state": _STATES.get(v.state, "UNAVAILABLE"),
                        "reason": v.error_message
                        or ("" if v.state is ManagerState.AVAILABLE else v.state.name.lower()),
                    }
                )
        return out

    async def load(self, name: str, parameters: Mapping[str, Any]) -> None:
        """Serve ``name`` (or load it again: a version that appeared is picked up)."""
        self._check_enabled("load")
        base_path = self._base_path(name, parameters)
        async with self._lock:
            configs = dict(self._configs())
            current = configs.get(name)
            if current is not None and current.base_path == base_path:
                return  # already served from there; the source polls for new versions
            configs[name] = ModelConfig(name=name, base_path=base_path)
            await self._run(tuple(configs.values()))

    async def unload(self, name: str, parameters: Mapping[str, Any]) -> None:
        """Stop serving ``name``; its versions drain and unload."""
        self._check_enabled("unload")
        async with self._lock:
            configs = dict(self._configs())
            if name not in configs:
                raise NotFound(f"Model {name} is not served; nothing to unload")
            del configs[name]
            await self._run(tuple(configs.values()))

    async def _run(self, configs: tuple[ModelConfig, ...]) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._apply, configs)

    def _check_enabled(self, verb: str) -> None:
        if not self._options.enabled:
            raise FailedPrecondition(
                f"Model {verb} is off: start the server with --enable_model_management=true "
                "to change the served models through the repository API"
            )
        if self._options.config_file_polled:
            raise FailedPrecondition(
                f"Model {verb} refused: --model_config_file is polled, so that file owns the "
                "model list; edit it instead"
            )

    def _base_path(self, name: str, parameters: Mapping[str, Any]) -> str:
        given = parameters.get("base_path")
        if given is not None:
            if isinstance(given, dict):  # gRPC ModelRepositoryParameter as JSON
                given = given.get("string_param")
            if not isinstance(given, str) or not given:
                raise InvalidArgument(f"Parameter 'base_path' is {given!r}; expected a path")
            if not self._options.allow_base_path:
                raise FailedPrecondition(
                    "Loading from a base_path parameter is off: start the server with "
                    "--allow_load_base_path=true, or put the model under --model_repository"
                )
            if not os.path.isabs(given) or ".." in given.split(os.sep):
                raise InvalidArgument(
                    f"Parameter 'base_path' is {given!r}; expected an absolute path without "
                    "'..' segments"
                )
            return given
        root = self._options.root
        if not root:
            raise FailedPrecondition(
                f"No --model_repository to load model {name} from; start the server with "
                "--model_repository=DIR (each subfolder a model) or pass a base_path parameter"
            )
        if name in (".", "..") or "/" in name or os.sep in name:
            raise InvalidArgument(f"Model name {name!r} is not a folder name")
        path = os.path.join(root, name)
        if not os.path.isdir(path):
            raise NotFound(f"Model {name} is not in the repository {root} (no folder {path})")
        return path

    def _folders(self) -> list[str]:
        root = self._options.root
        if not root or not os.path.isdir(root):
            return []
        return [e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")]
