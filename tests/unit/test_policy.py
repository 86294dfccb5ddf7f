"""The aspired-version policies as tables: snapshots in, one action (or none) out."""

from __future__ import annotations

from typing import Any

import pytest

from tensorserve.core.policy import (
    POLICIES,
    Action,
    HarnessState,
    Policy,
    VersionSnapshot,
    availability_preserving,
    resource_preserving,
)

H = HarnessState
NOW = 100.0


def snap(
    version: int,
    state: HarnessState,
    aspired: bool,
    retry_at: float = 0.0,
    fits: bool | None = None,
) -> VersionSnapshot:
    return VersionSnapshot(version, state, aspired, retry_at, fits)


def budgeted(version: int, state: HarnessState, aspired: bool, **kw: Any) -> VersionSnapshot:
    """A version under a memory budget: ``fits`` True unless given."""
    return snap(version, state, aspired, **{"fits": True, **kw})


Row = tuple[str, list[VersionSnapshot], Action | None]

AVAILABILITY: list[Row] = [
    ("empty stream", [], None),
    ("one new aspired loads", [snap(1, H.NEW, True)], Action("load", 1)),
    (
        "highest new loads first",
        [snap(1, H.NEW, True), snap(3, H.NEW, True), snap(2, H.NEW, True)],
        Action("load", 3),
    ),
    ("nothing to do when ready", [snap(1, H.READY, True)], None),
    # The swap: new aspired version loads while the un-aspired one keeps serving.
    ("swap loads new first", [snap(1, H.READY, False), snap(2, H.NEW, True)], Action("load", 2)),
    ("swap waits while new loads", [snap(1, H.READY, False), snap(2, H.LOADING, True)], None),
    (
        "swap unloads old once new ready",
        [snap(1, H.READY, False), snap(2, H.READY, True)],
        Action("unload", 1),
    ),
    # Unload rule: an aspired version READY, or nothing aspired, or >= 2 un-aspired READY.
    ("nothing aspired: unload", [snap(1, H.READY, False)], Action("unload", 1)),
    (
        "nothing aspired: lowest first",
        [snap(2, H.READY, False), snap(1, H.READY, False)],
        Action("unload", 1),
    ),
    (
        "two stale ready, new aspired pending: unload lowest",
        [snap(1, H.READY, False), snap(2, H.READY, False), snap(3, H.NEW, True)],
        Action("unload", 1),
    ),
    (
        "one stale ready, aspired only failed: keep serving",
        [snap(1, H.READY, False), snap(2, H.ERROR, True)],
        None,
    ),
    (
        "one stale ready, aspired waits for retry: keep serving",
        [snap(1, H.READY, False), snap(2, H.NEW, True, retry_at=NOW + 5)],
        None,
    ),
    (
        "stale ready with another aspired ready: unload",
        [snap(1, H.READY, False), snap(2, H.READY, True), snap(3, H.NEW, True)],
        Action("unload", 1),
    ),
    # retry_at: a NEW version waits for its retry time; a lower one may go meanwhile.
    ("retry not due", [snap(2, H.NEW, True, retry_at=NOW + 0.001)], None),
    ("retry due exactly now", [snap(2, H.NEW, True, retry_at=NOW)], Action("load", 2)),
    (
        "retry due: lower waits",
        [snap(3, H.NEW, True, retry_at=NOW + 1), snap(2, H.NEW, True)],
        Action("load", 2),
    ),
    # Un-aspired NEW / failed / disabled versions never load.
    ("un-aspired new never loads", [snap(1, H.NEW, False)], None),
    ("aspired error never reloads", [snap(1, H.ERROR, True)], None),
    ("disabled never loads", [snap(1, H.DISABLED, True)], None),
    # One transition per stream: anything in flight blocks every other action.
    ("loading blocks load", [snap(1, H.LOADING, True), snap(2, H.NEW, True)], None),
    ("quiescing blocks load", [snap(1, H.QUIESCING, False), snap(2, H.NEW, True)], None),
    (
        "unloading blocks unload",
        [snap(1, H.UNLOADING, False), snap(2, H.READY, False), snap(3, H.READY, True)],
        None,
    ),
    (
        "loading blocks unload",
        [snap(1, H.READY, False), snap(2, H.READY, True), snap(3, H.LOADING, True)],
        None,
    ),
]

RESOURCE: list[Row] = [
    ("empty stream", [], None),
    ("one new aspired loads", [snap(1, H.NEW, True)], Action("load", 1)),
    ("highest new loads first", [snap(2, H.NEW, True), snap(5, H.NEW, True)], Action("load", 5)),
    (
        "swap unloads old first",
        [snap(1, H.READY, False), snap(2, H.NEW, True)],
        Action("unload", 1),
    ),
    (
        "lowest stale first",
        [snap(3, H.READY, False), snap(2, H.READY, False), snap(4, H.NEW, True)],
        Action("unload", 2),
    ),
    (
        "stale ready even when aspired failed",
        [snap(1, H.READY, False), snap(2, H.ERROR, True)],
        Action("unload", 1),
    ),
    (
        "loads once old is gone",
        [snap(1, H.DISABLED, False), snap(2, H.NEW, True)],
        Action("load", 2),
    ),
    ("waits while old unloads", [snap(1, H.UNLOADING, False), snap(2, H.NEW, True)], None),
    ("waits while old quiesces", [snap(1, H.QUIESCING, False), snap(2, H.NEW, True)], None),
    ("retry not due", [snap(2, H.NEW, True, retry_at=NOW + 1)], None),
    ("retry due", [snap(2, H.NEW, True, retry_at=NOW - 1)], Action("load", 2)),
    ("nothing to do when ready", [snap(1, H.READY, True), snap(2, H.READY, True)], None),
    ("loading blocks", [snap(1, H.READY, False), snap(2, H.LOADING, True)], None),
]

# With --total_model_memory_limit_bytes an old version goes early only to make room.
B = budgeted
RESOURCE_BUDGETED: list[Row] = [
    ("loads beside the old when it may fit", [B(1, H.READY, False), B(2, H.NEW, True)],
     Action("load", 2)),
    ("unloads first when the load needs the room",
     [B(1, H.READY, False), B(2, H.NEW, True, fits=False)], Action("unload", 1)),
    ("then unloads the old once the new is ready", [B(1, H.READY, False), B(2, H.READY, True)],
     Action("unload", 1)),
    ("keeps the old when the new failed", [B(1, H.READY, False), B(2, H.ERROR, True)], None),
    ("keeps the old while the new waits for a retry",
     [B(1, H.READY, False), B(2, H.NEW, True, retry_at=NOW + 1)], None),
    ("unloads when nothing is aspired", [B(1, H.READY, False)], Action("unload", 1)),
    ("loading blocks", [B(1, H.READY, False), B(2, H.LOADING, True)], None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("snaps", "expected"), [r[1:] for r in AVAILABILITY], ids=[r[0] for r in AVAILABILITY]
)
def test_availability_preserving(snaps: list[VersionSnapshot], expected: Action | None) -> None:
    assert availability_preserving(snaps, NOW) == expected


@pytest.mark.parametrize(
    ("snaps", "expected"), [r[1:] for r in RESOURCE], ids=[r[0] for r in RESOURCE]
)
def test_resource_preserving(snaps: list[VersionSnapshot], expected: Action | None) -> None:
    assert resource_preserving(snaps, NOW) == expected


@pytest.mark.parametrize(
    ("snaps", "expected"),
    [r[1:] for r in RESOURCE_BUDGETED],
    ids=[r[0] for r in RESOURCE_BUDGETED],
)
def test_resource_preserving_with_a_memory_budget(
    snaps: list[VersionSnapshot], expected: Action | None
) -> None:
    assert resource_preserving(snaps, NOW) == expected


@pytest.mark.parametrize("policy", [availability_preserving, resource_preserving])
def test_policies_are_pure(policy: Policy) -> None:
    snaps = (snap(1, H.READY, False), snap(2, H.NEW, True))
    before = list(snaps)
    first = policy(snaps, NOW)
    assert policy(snaps, NOW) == first
    assert list(snaps) == before


def test_order_of_snapshots_does_not_matter() -> None:
    rows = [snap(4, H.NEW, True), snap(1, H.READY, False), snap(7, H.NEW, True)]
    for ordering in (rows, rows[::-1], rows[1:] + rows[:1]):
        assert availability_preserving(ordering, NOW) == Action("load", 7)
        assert resource_preserving(ordering, NOW) == Action("unload", 1)


def test_policy_registry_names() -> None:
    assert dict(POLICIES) == {
        "availability_preserving": availability_preserving,
        "resource_preserving": resource_preserving,
    }
