"""ModelRepository (the OIP repository extension) without a server: index, load, unload and
every refusal, against an in-memory model list."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from tensorserve.config.models import ModelConfig
from tensorserve.core.states import ManagerState, VersionStatus
from tensorserve.errors import FailedPrecondition, InvalidArgument, NotFound, ServingError
from tensorserve.service.repository import ModelRepository, RepositoryOptions


class _Models:
    def __init__(self, configs: list[ModelConfig]) -> None:
        self.configs = {c.name: c for c in configs}
        self.applied: list[tuple[str, ...]] = []
        self.states: dict[str, list[VersionStatus]] = {}

    def current(self) -> Mapping[str, ModelConfig]:
        return MappingProxyType(self.configs)

    def versions(self, name: str) -> list[VersionStatus]:
        return self.states.get(name, [])

    def apply(self, configs: tuple[ModelConfig, ...]) -> None:
        self.configs = {c.name: c for c in configs}
        self.applied.append(tuple(sorted(self.configs)))


def _repository(folder: Path, models: _Models, **options: Any) -> ModelRepository:
    settings = {"enabled": True, "root": str(folder), "allow_base_path": False,
                "config_file_polled": False, **options}  # fmt: skip
    return ModelRepository(
        RepositoryOptions(**settings), models.current, models.versions, models.apply
    )


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "a" / "1").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    (tmp_path / ".hidden").mkdir()
    return tmp_path


def test_load_and_unload_apply_the_new_model_list(root: Path) -> None:
    models = _Models([ModelConfig("served", "/x/served")])
    repo = _repository(root, models)
    _run(repo.load("a", {}))
    assert models.configs["a"].base_path == str(root / "a")
    _run(repo.load("a", {}))  # already served from there: nothing to apply
    _run(repo.unload("served", {}))
    assert models.applied == [("a", "served"), ("a",)]


def test_index_lists_served_versions_and_unserved_folders(root: Path) -> None:
    models = _Models([ModelConfig("a", str(root / "a"))])
    models.states["a"] = [
        VersionStatus(2, ManagerState.LOADING),
        VersionStatus(1, ManagerState.AVAILABLE),
    ]
    index = _repository(root, models).index()
    assert index == [
        {"name": "a", "version": "1", "state": "READY", "reason": ""},
        {"name": "a", "version": "2", "state": "LOADING", "reason": "loading"},
        {"name": "b", "version": "", "state": "UNAVAILABLE", "reason": "not loaded"},
    ]


@pytest.mark.parametrize(
    ("name", "parameters", "options", "error", "needle"),
    [
        ("missing", {}, {}, NotFound, "not in the repository"),
        ("..", {}, {}, InvalidArgument, "not a folder name"),
        ("a/b", {}, {}, InvalidArgument, "not a folder name"),
        ("a", {}, {"enabled": False}, FailedPrecondition, "--enable_model_management"),
        ("a", {}, {"config_file_polled": True}, FailedPrecondition, "--model_config_file"),
        ("a", {}, {"root": ""}, FailedPrecondition, "--model_repository"),
        ("c", {"base_path": "/m/c"}, {}, FailedPrecondition, "--allow_load_base_path"),
        ("c", {"base_path": "rel/c"}, {"allow_base_path": True}, InvalidArgument, "absolute"),
        ("c", {"base_path": "/m/../etc"}, {"allow_base_path": True}, InvalidArgument, "'..'"),
        ("c", {"base_path": 3}, {"allow_base_path": True}, InvalidArgument, "expected a path"),
    ],
)
def test_load_refusals_say_why(
    root: Path,
    name: str,
    parameters: dict[str, Any],
    options: dict[str, Any],
    error: type[ServingError],
    needle: str,
) -> None:
    models = _Models([])
    with pytest.raises(error) as info:
        _run(_repository(root, models, **options).load(name, parameters))
    assert needle in info.value.message
    assert models.applied == []


def test_a_base_path_parameter_loads_from_there_when_allowed(root: Path) -> None:
    models = _Models([])
    _run(_repository(root, models, allow_base_path=True).load("c", {"base_path": "/m/c"}))
    assert models.configs["c"].base_path == "/m/c"


def test_unloading_an_unknown_model_is_not_found(root: Path) -> None:
    with pytest.raises(NotFound):
        _run(_repository(root, _Models([])).unload("nope", {}))
