"""AspiredVersionsManager driven by ``step()`` with fake loaders, inline executors and a manual
clock, plus the ServableStateMonitor it feeds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from tensorserve.core.handle import ServableHandle
from tensorserve.core.ids import ServableId, ServableRequest
from tensorserve.core.loader import Loader
from tensorserve.core.manager import AspiredVersionsManager
from tensorserve.core.monitor import ServableStateMonitor, StateEvent
from tensorserve.core.policy import availability_preserving, resource_preserving
from tensorserve.core.states import ManagerState, VersionStatus
from tensorserve.errors import Code, InvalidArgument, NotFound
from tests.fakes import FakeLoader, FakeServable, InlineExecutor, ManualClock, QueueExecutor

S = ManagerState


@dataclass
class Rig:
    """A manager with inline (or queued) executors, a manual clock and an event log."""

    manager: AspiredVersionsManager
    monitor: ServableStateMonitor
    clock: ManualClock
    loads: InlineExecutor | QueueExecutor
    unloads: InlineExecutor | QueueExecutor
    events: list[StateEvent] = field(default_factory=list)

    def aspire(self, name: str, loaders: Mapping[int, Loader]) -> None:
        self.manager.set_aspired_versions(name, loaders)

    def steps(self, n: int = 5) -> None:
        for _ in range(n):
            self.manager.step()

    def states(self, name: str = "m") -> list[tuple[int, ManagerState]]:
        return [(s.version, s.state) for s in self.monitor.versions(name)]

    def history(self, name: str = "m", version: int = 1) -> list[ManagerState]:
        return [e.state for e in self.events if e.id == ServableId(name, version)]

    def latest(self, name: str = "m") -> int:
        with self.manager.acquire(ServableRequest(name)) as handle:
            return handle.id.version


def make_rig(
    *,
    retries: int = 0,
    interval_s: float = 10.0,
    queued_loads: bool = False,
    queued_unloads: bool = False,
    memory_limit: int = 0,
    resource: bool = False,
) -> Rig:
    monitor = ServableStateMonitor()
    clock = ManualClock()
    loads: InlineExecutor | QueueExecutor = QueueExecutor() if queued_loads else InlineExecutor()
    unloads: InlineExecutor | QueueExecutor = (
        QueueExecutor() if queued_unloads else InlineExecutor()
    )
    manager = AspiredVersionsManager(
        monitor,
        loads,
        unloads,
        policy=resource_preserving if resource else availability_preserving,
        max_load_retries=retries,
        load_retry_interval_s=interval_s,
        clock=clock,
        memory_limit_bytes=memory_limit,
    )
    rig = Rig(manager, monitor, clock, loads, unloads)
    monitor.add_listener(rig.events.append)
    return rig


def serving(rig: Rig, name: str = "m", version: int = 1) -> FakeLoader:
    """Aspire ``version`` alone and step until it is AVAILABLE."""
    loader = FakeLoader(name, version)
    rig.aspire(name, {version: loader})
    rig.steps()
    assert (version, S.AVAILABLE) in rig.states(name)
    return loader


# ---- load path ----------------------------------------------------------------------------
def test_start_loading_available() -> None:
    rig = make_rig(queued_loads=True)
    loader = FakeLoader()
    rig.aspire("m", {1: loader})
    assert rig.states() == [(1, S.START)]
    assert rig.manager.step() is True
    assert rig.states() == [(1, S.LOADING)]
    assert loader.loads == 0  # only submitted
    assert isinstance(rig.loads, QueueExecutor)
    assert rig.loads.run_all() == 1
    assert rig.states() == [(1, S.AVAILABLE)]
    assert rig.history() == [S.START, S.LOADING, S.AVAILABLE]
    with rig.manager.acquire(ServableRequest("m")) as handle:
        assert handle.id == ServableId("m", 1)
        assert handle.servable is loader.servable
    assert loader.loads == 1


def test_step_is_idle_when_nothing_to_do() -> None:
    rig = make_rig()
    assert rig.manager.step() is False
    serving(rig)
    assert rig.manager.step() is False
    assert rig.manager.step() is False


def test_same_aspired_set_again_changes_nothing() -> None:
    rig = make_rig()
    loader = serving(rig)
    events = len(rig.events)
    rig.aspire("m", {1: FakeLoader()})
    rig.steps()
    assert len(rig.events) == events
    assert loader.loads == 1 and loader.unloads == 0


def test_highest_version_loads_first_then_the_others() -> None:
    rig = make_rig(queued_loads=True)
    loaders = {v: FakeLoader("m", v) for v in (1, 2, 3)}
    rig.aspire("m", loaders)
    rig.manager.step()
    assert rig.states() == [(3, S.LOADING), (2, S.START), (1, S.START)]
    rig.manager.step()  # one transition per stream: nothing else starts while 3 loads
    assert rig.states() == [(3, S.LOADING), (2, S.START), (1, S.START)]
    assert isinstance(rig.loads, QueueExecutor)
    order = []
    for _ in range(3):
        rig.loads.run_all()
        rig.manager.step()
        order.append([v for v, s in rig.states() if s is S.AVAILABLE])
    assert order == [[3], [3, 2], [3, 2, 1]]


def test_models_load_independently_in_one_step() -> None:
    rig = make_rig(queued_loads=True)
    rig.aspire("a", {1: FakeLoader("a", 1)})
    rig.aspire("b", {4: FakeLoader("b", 4)})
    rig.manager.step()
    assert rig.states("a") == [(1, S.LOADING)]
    assert rig.states("b") == [(4, S.LOADING)]


# ---- failures and retries -----------------------------------------------------------------
def test_failed_load_is_retried_at_the_interval_then_ends_with_the_error() -> None:
    rig = make_rig(retries=2, interval_s=10.0)
    loader = FakeLoader(fail_times=-1, error=InvalidArgument("bad graph"))
    rig.aspire("m", {1: loader})
    rig.manager.step()
    assert loader.loads == 1
    assert rig.states() == [(1, S.LOADING)]  # still loading while a retry is pending
    # ... and the status says why (TF Serving shows nothing until the retries end)
    assert rig.monitor.versions("m") == [
        VersionStatus(
            1,
            S.LOADING,
            Code.OK,
            "attempt 1 of 3 failed: INVALID_ARGUMENT: bad graph (retrying in 10 s)",
        )
    ]
    rig.clock.advance(9.999)
    rig.steps()
    assert loader.loads == 1  # interval not yet over
    rig.clock.advance(0.001)
    rig.manager.step()
    assert loader.loads == 2
    assert rig.states() == [(1, S.LOADING)]
    assert rig.monitor.versions("m")[0].error_message.startswith("attempt 2 of 3 failed: ")
    rig.clock.advance(10.0)
    rig.manager.step()
    assert loader.loads == 3  # 1 attempt + max_load_retries (2)
    assert rig.monitor.versions("m") == [
        VersionStatus(1, S.END, Code.INVALID_ARGUMENT, "bad graph")
    ]
    rig.clock.advance(1000.0)
    rig.steps()
    assert loader.loads == 3
    assert rig.history() == [S.START, S.LOADING, S.LOADING, S.LOADING, S.END]
    with pytest.raises(NotFound):
        rig.manager.acquire(ServableRequest("m"))


def test_no_retries_means_one_attempt() -> None:
    rig = make_rig(retries=0)
    loader = FakeLoader(fail_times=-1)
    rig.aspire("m", {1: loader})
    rig.steps()
    assert loader.loads == 1
    status = rig.monitor.versions("m")[0]
    assert (status.state, status.error_code, status.error_message) == (
        S.END,
        Code.UNKNOWN,
        "load of m:1 failed",
    )


def test_load_succeeding_on_a_retry_becomes_available_without_error() -> None:
    rig = make_rig(retries=3, interval_s=1.0)
    loader = FakeLoader(fail_times=2)
    rig.aspire("m", {1: loader})
    for _ in range(3):
        rig.manager.step()
        rig.clock.advance(1.0)
    assert loader.loads == 3
    assert rig.monitor.versions("m") == [VersionStatus(1, S.AVAILABLE)]
    assert rig.latest() == 1


def test_non_serving_exception_becomes_unknown_with_its_message() -> None:
    rig = make_rig()
    rig.aspire("m", {1: FakeLoader(fail_times=-1, error=RuntimeError("disk on fire"))})
    rig.steps()
    status = rig.monitor.versions("m")[0]
    assert (status.state, status.error_code, status.error_message) == (
        S.END,
        Code.UNKNOWN,
        "disk on fire",
    )


def test_exception_without_message_is_named_by_its_type() -> None:
    rig = make_rig()
    rig.aspire("m", {1: FakeLoader(fail_times=-1, error=MemoryError())})
    rig.steps()
    assert rig.monitor.versions("m")[0].error_message == "MemoryError"


def test_retries_are_cancelled_when_the_version_is_no_longer_aspired() -> None:
    rig = make_rig(retries=5, interval_s=10.0)
    loader = FakeLoader(fail_times=-1)
    rig.aspire("m", {1: loader})
    rig.manager.step()
    assert loader.loads == 1
    rig.aspire("m", {})
    rig.manager.step()
    status = rig.monitor.versions("m")[0]
    assert (status.state, status.error_message) == (S.END, "load of m:1 failed")
    rig.clock.advance(100.0)
    rig.steps()
    assert loader.loads == 1
    assert rig.manager.idle()


def test_retry_of_the_new_version_is_cancelled_when_it_disappears_mid_load() -> None:
    rig = make_rig(retries=5, interval_s=0.0, queued_loads=True)
    loader = FakeLoader(fail_times=-1)
    rig.aspire("m", {1: loader})
    rig.manager.step()
    rig.aspire("m", {})  # un-aspired while the (failing) load runs
    assert isinstance(rig.loads, QueueExecutor)
    rig.loads.run_all()
    rig.steps()
    assert rig.loads.run_all() == 0
    assert loader.loads == 1
    assert rig.states() == [(1, S.END)]


# ---- swaps --------------------------------------------------------------------------------
def test_swap_keeps_the_old_version_until_the_new_one_is_ready() -> None:
    rig = make_rig(queued_loads=True)
    v1 = FakeLoader("m", 1)
    rig.aspire("m", {1: v1})
    rig.manager.step()
    assert isinstance(rig.loads, QueueExecutor)
    rig.loads.run_all()
    v2 = FakeLoader("m", 2)
    rig.aspire("m", {2: v2})  # latest{1}: version 1 is no longer aspired
    rig.steps()
    assert rig.states() == [(2, S.LOADING), (1, S.AVAILABLE)]
    assert rig.latest() == 1
    assert v1.unloads == 0
    rig.loads.run_all()
    assert rig.latest() == 2
    rig.manager.step()
    rig.manager.step()
    assert rig.states() == [(2, S.AVAILABLE), (1, S.END)]
    assert v1.unloads == 1
    assert rig.history(version=1) == [S.START, S.LOADING, S.AVAILABLE, S.UNLOADING, S.END]
    # An unloaded version's status carries no error.
    assert rig.monitor.versions("m")[1] == VersionStatus(1, S.END)


def test_resource_preserving_unloads_before_loading() -> None:
    rig = make_rig(resource=True, queued_loads=True)
    v1 = FakeLoader("m", 1)
    rig.aspire("m", {1: v1})
    rig.manager.step()
    assert isinstance(rig.loads, QueueExecutor)
    rig.loads.run_all()
    rig.aspire("m", {2: FakeLoader("m", 2)})
    rig.manager.step()
    assert rig.states() == [(2, S.START), (1, S.UNLOADING)]
    with pytest.raises(NotFound):
        rig.manager.acquire(ServableRequest("m"))
    rig.manager.step()
    assert v1.unloads == 1
    rig.manager.step()
    assert rig.states() == [(2, S.LOADING), (1, S.END)]


def test_failed_new_version_never_displaces_the_served_one() -> None:
    rig = make_rig(retries=1, interval_s=5.0)
    v1 = serving(rig)
    broken = FakeLoader("m", 2, fail_times=-1, error=InvalidArgument("garbage saved_model.pb"))
    rig.aspire("m", {2: broken})
    rig.steps()
    rig.clock.advance(5.0)
    rig.steps()
    assert broken.loads == 2
    assert rig.monitor.versions("m") == [
        VersionStatus(2, S.END, Code.INVALID_ARGUMENT, "garbage saved_model.pb"),
        VersionStatus(1, S.AVAILABLE),
    ]
    rig.clock.advance(1000.0)
    rig.steps()
    assert v1.unloads == 0
    assert rig.latest() == 1
    with pytest.raises(NotFound, match=r"^Servable not found for request: Specific\(m, 2\)$"):
        rig.manager.acquire(ServableRequest("m", 2))


def test_failing_model_does_not_affect_another() -> None:
    rig = make_rig(retries=3, interval_s=1.0)
    rig.aspire("bad", {1: FakeLoader("bad", 1, fail_times=-1)})
    good = FakeLoader("good", 7)
    rig.aspire("good", {7: good})
    rig.manager.step()
    assert rig.states("good") == [(7, S.AVAILABLE)]
    assert rig.states("bad") == [(1, S.LOADING)]
    assert rig.latest("good") == 7


# ---- unload waits for in-flight requests ----------------------------------------------------
def test_unload_waits_for_in_flight_handles() -> None:
    rig = make_rig()
    loader = serving(rig)
    handle = rig.manager.acquire(ServableRequest("m"))
    rig.aspire("m", {})
    rig.manager.step()
    assert rig.states() == [(1, S.UNLOADING)]  # QUIESCING: out of the serving map
    with pytest.raises(NotFound, match=r"^Servable not found for request: Latest\(m\)$"):
        rig.manager.acquire(ServableRequest("m"))
    rig.steps()
    assert loader.unloads == 0
    assert isinstance(handle.servable, FakeServable) and not handle.servable.closed
    handle.release()
    rig.manager.step()
    assert loader.unloads == 1
    assert rig.states() == [(1, S.END)]
    assert handle.servable.closed
    rig.manager.step()  # the finished harness is dropped on the next step
    assert rig.manager.idle()


def test_retained_handle_keeps_the_version_until_released() -> None:
    rig = make_rig()
    loader = serving(rig)
    first = rig.manager.acquire(ServableRequest("m", 1))
    second = first.retain()
    assert isinstance(second, ServableHandle)
    assert second.id == first.id and second.servable is first.servable
    rig.aspire("m", {})
    first.release()
    first.release()  # a second release is a no-op: it must not free `second`'s hold
    rig.steps()
    assert loader.unloads == 0
    with second:
        pass
    rig.manager.step()
    assert loader.unloads == 1


def test_handle_context_manager_releases() -> None:
    rig = make_rig()
    loader = serving(rig)
    with rig.manager.acquire(ServableRequest("m")):
        rig.aspire("m", {})
        rig.steps()
        assert loader.unloads == 0
    rig.manager.step()
    assert loader.unloads == 1


def test_queued_unload_reports_unloading_until_done() -> None:
    rig = make_rig(queued_unloads=True)
    loader = serving(rig)
    rig.aspire("m", {})
    rig.steps()
    assert rig.states() == [(1, S.UNLOADING)]
    assert loader.unloads == 0
    assert isinstance(rig.unloads, QueueExecutor)
    rig.unloads.run_all()
    assert rig.states() == [(1, S.END)]


def test_version_aspired_again_while_unloading_is_loaded_again() -> None:
    rig = make_rig()
    serving(rig)
    handle = rig.manager.acquire(ServableRequest("m"))
    rig.aspire("m", {})
    rig.manager.step()
    assert rig.states() == [(1, S.UNLOADING)]
    again = FakeLoader("m", 1)
    rig.aspire("m", {1: again})  # e.g. the newer folder was deleted before the old one drained
    handle.release()
    rig.steps()
    assert rig.states() == [(1, S.AVAILABLE)]
    assert rig.latest() == 1
    assert again.loads == 1
    assert rig.history() == [
        S.START,
        S.LOADING,
        S.AVAILABLE,
        S.UNLOADING,
        S.END,
        S.START,
        S.LOADING,
        S.AVAILABLE,
    ]


def test_failed_version_aspired_again_after_being_dropped_is_retried() -> None:
    rig = make_rig(retries=0)
    broken = FakeLoader(fail_times=-1)
    rig.aspire("m", {1: broken})
    rig.steps()
    assert rig.states() == [(1, S.END)]
    rig.aspire("m", {1: FakeLoader()})  # still aspired: a failed version is not retried
    rig.steps()
    assert rig.states() == [(1, S.END)]
    rig.aspire("m", {})
    fixed = FakeLoader()
    rig.aspire("m", {1: fixed})  # dropped then back (e.g. folder replaced) before a step
    rig.steps()
    assert fixed.loads == 1
    assert rig.monitor.versions("m") == [VersionStatus(1, S.AVAILABLE)]


def test_load_that_finishes_after_being_unaspired_is_unloaded() -> None:
    rig = make_rig(queued_loads=True)
    loader = FakeLoader()
    rig.aspire("m", {1: loader})
    rig.manager.step()
    rig.aspire("m", {})
    assert isinstance(rig.loads, QueueExecutor)
    rig.loads.run_all()
    rig.steps()
    assert loader.unloads == 1
    assert rig.history() == [S.START, S.LOADING, S.AVAILABLE, S.UNLOADING, S.END]
    assert rig.manager.idle()


def test_unaspired_before_loading_ends_without_loading() -> None:
    rig = make_rig()
    loader = FakeLoader()
    rig.aspire("m", {1: loader})
    rig.aspire("m", {})
    rig.steps()
    assert loader.loads == 0
    assert rig.history() == [S.START, S.END]


# ---- resolution ---------------------------------------------------------------------------
def test_latest_and_specific_resolution() -> None:
    rig = make_rig()
    rig.aspire("m", {1: FakeLoader("m", 1), 3: FakeLoader("m", 3)})
    rig.steps()
    assert rig.manager.ready_versions("m") == [3, 1]
    assert rig.latest() == 3
    with rig.manager.acquire(ServableRequest("m", 1)) as handle:
        assert handle.id == ServableId("m", 1)
        assert isinstance(handle.servable, FakeServable) and handle.servable.version == 1
    with pytest.raises(NotFound) as info:
        rig.manager.acquire(ServableRequest("m", 2))
    assert info.value.message == "Servable not found for request: Specific(m, 2)"
    assert info.value.code is Code.NOT_FOUND


def test_unknown_model_not_found_message() -> None:
    rig = make_rig()
    with pytest.raises(NotFound) as latest:
        rig.manager.acquire(ServableRequest("nope"))
    assert str(latest.value) == "Servable not found for request: Latest(nope)"
    with pytest.raises(NotFound) as specific:
        rig.manager.acquire(ServableRequest("nope", 3))
    assert str(specific.value) == "Servable not found for request: Specific(nope, 3)"


def test_loading_version_is_not_served() -> None:
    rig = make_rig(queued_loads=True)
    rig.aspire("m", {3: FakeLoader("m", 3)})
    rig.manager.step()
    with pytest.raises(NotFound, match=r"Latest\(m\)"):
        rig.manager.acquire(ServableRequest("m"))
    with pytest.raises(NotFound, match=r"Specific\(m, 3\)"):
        rig.manager.acquire(ServableRequest("m", 3))


# ---- monitor ------------------------------------------------------------------------------
def test_monitor_keeps_ended_versions_forever_highest_first() -> None:
    rig = make_rig()
    for version in (1, 2, 3):
        rig.aspire("m", {version: FakeLoader("m", version)})
        rig.steps()
    assert rig.states() == [(3, S.AVAILABLE), (2, S.END), (1, S.END)]
    rig.aspire("m", {})
    rig.steps()
    assert rig.manager.idle()
    assert rig.states() == [(3, S.END), (2, S.END), (1, S.END)]
    assert rig.monitor.available("m") == []


def test_monitor_versions_sorted_descending_numerically() -> None:
    monitor = ServableStateMonitor()
    for version in (2, 10, 1, 100):
        monitor.publish(StateEvent(ServableId("m", version), S.AVAILABLE))
    assert [s.version for s in monitor.versions("m")] == [100, 10, 2, 1]
    assert monitor.available("m") == [100, 10, 2, 1]
    assert monitor.versions("other") == []


def test_monitor_records_error_code_and_message() -> None:
    monitor = ServableStateMonitor()
    monitor.publish(StateEvent(ServableId("m", 1), S.END, InvalidArgument("nope")))
    assert monitor.versions("m") == [VersionStatus(1, S.END, Code.INVALID_ARGUMENT, "nope")]


def test_monitor_wait_until_times_out_and_succeeds() -> None:
    monitor = ServableStateMonitor()
    assert monitor.wait_until(lambda: bool(monitor.available("m")), 0.0) is False
    monitor.publish(StateEvent(ServableId("m", 1), S.AVAILABLE))
    assert monitor.wait_until(lambda: bool(monitor.available("m")), 0.0) is True


# ---- memory budget (--total_model_memory_limit_bytes) -------------------------------------------
def test_a_load_beyond_the_budget_fails_and_the_served_model_stays() -> None:
    rig = make_rig(memory_limit=100, retries=3)
    rig.aspire("m", {1: FakeLoader("m", 1, estimate=60)})
    rig.steps()
    big = FakeLoader("n", 1, estimate=50)
    rig.aspire("n", {1: big})
    rig.steps()
    assert big.loads == 0  # refused before loading, and never retried
    (status,) = rig.monitor.versions("n")
    assert (status.state, status.error_code) == (S.END, Code.RESOURCE_EXHAUSTED)
    assert status.error_message.startswith(
        "Insufficient resources to load servable {name: n version: 1}: its memory estimate of "
        "50 bytes"
    )
    assert (
        "--total_model_memory_limit_bytes=100, of which 60 bytes are held" in status.error_message
    )
    assert rig.latest("m") == 1
    assert rig.manager.memory_reserved() == 60


def test_an_available_version_reports_its_estimate() -> None:
    rig = make_rig(memory_limit=100)
    rig.aspire("m", {1: FakeLoader("m", 1, estimate=42)})
    rig.steps()
    (status,) = rig.monitor.versions("m")
    assert status.state is S.AVAILABLE and status.memory_estimate_bytes == 42


def test_availability_preserving_swap_that_does_not_fit_keeps_the_old_version() -> None:
    rig = make_rig(memory_limit=100)
    rig.aspire("m", {1: FakeLoader("m", 1, estimate=60)})
    rig.steps()
    rig.aspire("m", {2: FakeLoader("m", 2, estimate=60)})
    rig.steps()
    assert rig.states() == [(2, S.END), (1, S.AVAILABLE)]
    assert rig.monitor.versions("m")[0].error_code is Code.RESOURCE_EXHAUSTED
    assert rig.latest() == 1


def test_resource_preserving_loads_first_when_both_fit() -> None:
    rig = make_rig(memory_limit=100, resource=True)
    v1 = FakeLoader("m", 1, estimate=40)
    rig.aspire("m", {1: v1})
    rig.steps()
    rig.aspire("m", {2: FakeLoader("m", 2, estimate=40)})
    rig.manager.step()  # the budget has room for both: load the new one beside the old
    assert rig.states() == [(2, S.AVAILABLE), (1, S.AVAILABLE)]
    assert v1.unloads == 0
    rig.steps()
    assert rig.states() == [(2, S.AVAILABLE), (1, S.END)]
    assert rig.manager.memory_reserved() == 40


def test_resource_preserving_unloads_first_when_both_do_not_fit() -> None:
    rig = make_rig(memory_limit=100, resource=True)
    v1 = FakeLoader("m", 1, estimate=60)
    rig.aspire("m", {1: v1})
    rig.steps()
    v2 = FakeLoader("m", 2, estimate=60)
    rig.aspire("m", {2: v2})
    rig.manager.step()  # tries to load beside v1, finds no room, goes back to wait
    assert v2.loads == 0 and v1.unloads == 0
    rig.steps()
    assert v1.unloads == 1 and v2.loads == 1
    assert rig.states() == [(2, S.AVAILABLE), (1, S.END)]
    assert rig.manager.memory_reserved() == 60


def test_resource_preserving_keeps_the_old_version_when_unloading_it_would_not_make_room() -> None:
    rig = make_rig(memory_limit=100, resource=True)
    rig.aspire("other", {1: FakeLoader("other", 1, estimate=50)})
    rig.steps()
    v1 = FakeLoader("m", 1, estimate=40)
    rig.aspire("m", {1: v1})
    rig.steps()
    v2 = FakeLoader("m", 2, estimate=60)  # 50 + 60 > 100 even without v1
    rig.aspire("m", {2: v2})
    rig.steps()
    assert v1.unloads == 0 and v2.loads == 0
    assert rig.states() == [(2, S.END), (1, S.AVAILABLE)]
    assert rig.monitor.versions("m")[0].error_code is Code.RESOURCE_EXHAUSTED
    assert rig.latest() == 1
    assert rig.manager.memory_reserved() == 90
