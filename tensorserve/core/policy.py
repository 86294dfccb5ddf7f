"""Aspired-version policies: pure functions from a stream's snapshot to one action.

A stream is all versions of one model. The manager calls a policy once per
stream per step; the policy never mutates anything, so it is tested as a table.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal


class HarnessState(enum.Enum):
    """One version's lifecycle inside the manager (TF Serving ``LoaderHarness``)."""

    NEW = "new"  # aspired, not loaded yet (or waiting for a retry)
    LOADING = "loading"
    READY = "ready"
    QUIESCING = "quiescing"  # unload decided; waiting for in-flight requests
    UNLOADING = "unloading"
    DISABLED = "disabled"  # unloaded
    ERROR = "error"  # load failed for good


TRANSITIONAL = frozenset({HarnessState.LOADING, HarnessState.QUIESCING, HarnessState.UNLOADING})


@dataclass(frozen=True, slots=True)
class VersionSnapshot:
    """What a policy may look at for one version."""

    version: int
    state: HarnessState
    aspired: bool
    retry_at: float = 0.0  # a NEW version may not load before this monotonic time
    fits: bool | None = None  # None: no memory budget; False: needs an old version's room


@dataclass(frozen=True, slots=True)
class Action:
    kind: Literal["load", "unload"]
    version: int


Policy = Callable[[Sequence[VersionSnapshot], float], Action | None]


def _busy(snaps: Sequence[VersionSnapshot]) -> bool:
    return any(s.state in TRANSITIONAL for s in snaps)


def _next_load(snaps: Sequence[VersionSnapshot], now: float) -> Action | None:
    loadable = [
        s.version for s in snaps if s.aspired and s.state is HarnessState.NEW and s.retry_at <= now
    ]
    return Action("load", max(loadable)) if loadable else None


def availability_preserving(snaps: Sequence[VersionSnapshot], now: float) -> Action | None:
    """TF Serving's default: load the new version before unloading the old one.

    Unload the lowest un-aspired READY version only when an aspired version is
    READY, or nothing is aspired, or two or more un-aspired versions are READY;
    otherwise load the highest aspired NEW version. At most one transition per
    stream is in flight at a time.
    """
    if _busy(snaps):
        return None
    stale = [s.version for s in snaps if not s.aspired and s.state is HarnessState.READY]
    aspired_ready = any(s.aspired and s.state is HarnessState.READY for s in snaps)
    nothing_aspired = not any(s.aspired for s in snaps)
    if stale and (aspired_ready or nothing_aspired or len(stale) >= 2):
        return Action("unload", min(stale))
    return _next_load(snaps, now)


def resource_preserving(snaps: Sequence[VersionSnapshot], now: float) -> Action | None:
    """Unload every un-aspired version first, then load: never two versions in memory.

    Trades a short unavailability during a swap for half the peak memory
    (TF Serving's ``ResourcePreservingPolicy``; selectable here by flag). With a memory
    budget (``fits`` not None) an old version goes early only to make room: the new
    version loads first, beside the old one, unless its load found it does not fit
    (``fits`` False); with no load pending (the new version loaded, or failed, or waits
    for a retry) the old one is kept or unloaded as ``availability_preserving`` would.
    """
    if _busy(snaps):
        return None
    stale = [s.version for s in snaps if not s.aspired and s.state is HarnessState.READY]
    load = _next_load(snaps, now)
    if load is None and any(s.fits is not None for s in snaps):  # a budget, nothing to load
        return availability_preserving(snaps, now)
    if stale and not (load is not None and _fits(snaps, load.version)):
        return Action("unload", min(stale))
    return load


def _fits(snaps: Sequence[VersionSnapshot], version: int) -> bool:
    return any(s.version == version and s.fits is True for s in snaps)


POLICIES: dict[str, Policy] = {
    "availability_preserving": availability_preserving,
    "resource_preserving": resource_preserving,
}
