"""Identifiers of servables and of requests for them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class ServableId:
    """One version of one model."""

    name: str
    version: int

    def __str__(self) -> str:
        return f"{{name: {self.name} version: {self.version}}}"


@dataclass(frozen=True, slots=True)
class ServableRequest:
    """Which version a caller wants: the latest, a specific number, or a label."""

    name: str
    version: int | None = None
    label: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"Specific({self.name}, {self.version})"
        return f"Latest({self.name})"
