"""The served-model list as frozen, framework-free values (what ``core/`` works with).

``config/model_config.py`` parses TF Serving's ``ModelServerConfig`` into these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

PolicyKind = Literal["latest", "all", "specific"]
PLATFORM = "tensorflow"


@dataclass(frozen=True, slots=True)
class VersionPolicy:
    """Which versions under ``base_path`` to serve (``ServableVersionPolicy``)."""

    kind: PolicyKind = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def select(self, available: Iterable[int]) -> tuple[int, ...]:
        """The aspired subset of the versions found on disk, highest first."""
        found = sorted(set(available), reverse=True)
        if self.kind == "all":
            return tuple(found)
        if self.kind == "specific":
            wanted = set(self.versions)
            return tuple(v for v in found if v in wanted)
        return tuple(found[: self.num_versions])


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """One served model: where its versions live and which of them to serve."""

    name: str
    base_path: str
    platform: str = PLATFORM
    policy: VersionPolicy = field(default_factory=VersionPolicy)
    labels: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    logging_config: bytes = b""  # serialized tensorflow.serving.LoggingConfig; b"" = none
