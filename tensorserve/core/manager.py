"""AspiredVersionsManager: turns aspired version sets into loads and unloads.

Sources call :meth:`set_aspired_versions` with the *complete* set of versions
wanted for one model (omission means unload). :meth:`step` asks the policy for
at most one action per model and starts it on the load/unload executors; the
completion callbacks record the outcome. :meth:`run` is ``step`` in a loop;
tests call ``step`` directly with inline executors and a manual clock.

Requests take versions with :meth:`acquire`; a version being unloaded leaves
the serving map at once and is unloaded only after its in-flight count drops
to zero, so no request ever fails because of a swap.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any

from tensorserve.core.handle import ServableHandle
from tensorserve.core.ids import ServableId, ServableRequest
from tensorserve.core.loader import Loader
from tensorserve.core.monitor import ServableStateMonitor, StateEvent
from tensorserve.core.policy import (
    HarnessState,
    Policy,
    VersionSnapshot,
    availability_preserving,
    resource_preserving,
)
from tensorserve.core.states import ManagerState
from tensorserve.errors import NotFound, ResourceExhausted, ServingError, Unknown
from tensorserve.logs import log_event

log = logging.getLogger(__name__)
H = HarnessState
# States a version cannot serve again from: aspiring it anew loads a fresh harness once gone.
_GOING = frozenset({H.QUIESCING, H.UNLOADING, H.DISABLED, H.ERROR})


class _Harness:
    """One version's mutable state; only touched under the manager's lock."""

    __slots__ = (
        "aspired",
        "attempts",
        "error",
        "estimate",
        "fits",
        "id",
        "inflight",
        "loader",
        "next_loader",
        "retry_at",
        "servable",
        "state",
    )

    def __init__(self, id: ServableId, loader: Loader, budgeted: bool = False) -> None:
        self.id = id
        self.loader = loader
        self.state = H.NEW
        self.aspired = True
        self.attempts = 0
        self.retry_at = 0.0
        self.error: ServingError | None = None
        self.servable: Any = None
        self.inflight = 0
        self.next_loader: Loader | None = None  # re-aspired while going away
        self.estimate: int | None = None  # bytes, once the load job has asked the loader
        self.fits: bool | None = True if budgeted else None  # see VersionSnapshot.fits

    def snapshot(self) -> VersionSnapshot:
        return VersionSnapshot(self.id.version, self.state, self.aspired, self.retry_at, self.fits)


class AspiredVersionsManager:
    """Thread-safe; see the module docstring for the contract."""

    def __init__(
        self,
        monitor: ServableStateMonitor,
        load_executor: Executor,
        unload_executor: Executor,
        *,
        policy: Policy = availability_preserving,
        max_load_retries: int = 5,
        load_retry_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        memory_limit_bytes: int = 0,
        rss: Callable[[], int] = lambda: 0,
    ) -> None:
        self._monitor = monitor
        self._load_executor = load_executor
        self._unload_executor = unload_executor
        self._policy = policy
        self._max_retries = max(0, max_load_retries)
        self._retry_interval = max(0.0, load_retry_interval_s)
        self._clock = clock
        self._limit = max(0, memory_limit_bytes)
        self._rss = rss
        self._reserved: dict[ServableId, int] = {}  # estimates of loading and loaded versions
        self._lock = threading.Lock()
        self._streams: dict[str, dict[int, _Harness]] = {}
        self._ready: dict[str, list[_Harness]] = {}
        self._wake = threading.Event()

    # ---- sources -------------------------------------------------------------------------
    def set_aspired_versions(self, name: str, loaders: Mapping[int, Loader]) -> None:
        """Replace the aspired set of ``name``; versions not in ``loaders`` get unloaded."""
        events: list[StateEvent] = []
        with self._lock:
            stream = self._streams.setdefault(name, {})
            for version, harness in stream.items():
                wanted = loaders.get(version)
                if wanted is not None and not harness.aspired and harness.state in _GOING:
                    harness.next_loader = wanted  # reloaded once the old harness is gone
                else:
                    harness.aspired = wanted is not None
                    harness.next_loader = None
            for version, loader in loaders.items():
                if version not in stream:
                    harness = _Harness(ServableId(name, version), loader, self._limit > 0)
                    stream[version] = harness
                    events.append(StateEvent(harness.id, ManagerState.START))
        self._publish(events)
        self.wake()

    # ---- requests ------------------------------------------------------------------------
    def acquire(self, request: ServableRequest) -> ServableHandle:
        """Hold the requested READY version; raises NotFound when there is none."""
        with self._lock:
            harness = self._find_ready(request)
            harness.inflight += 1
        return self._handle(harness)

    def _handle(self, harness: _Harness) -> ServableHandle:
        return ServableHandle(
            harness.id,
            harness.servable,
            release=lambda: self._release(harness),
            retain=lambda: self._retain(harness),
        )

    def _retain(self, harness: _Harness) -> ServableHandle:
        with self._lock:
            harness.inflight += 1
        return self._handle(harness)

    def ready_versions(self, name: str) -> list[int]:
        """READY versions of ``name``, highest first."""
        with self._lock:
            return [h.id.version for h in self._ready.get(name, ())]

    def _find_ready(self, request: ServableRequest) -> _Harness:
        ready = self._ready.get(request.name, ())
        if request.version is None:
            if ready:
                return ready[0]
        else:
            for harness in ready:
                if harness.id.version == request.version:
                    return harness
        raise NotFound(f"Servable not found for request: {request}")

    def _release(self, harness: _Harness) -> None:
        with self._lock:
            harness.inflight -= 1
            quiesced = harness.inflight == 0 and harness.state is H.QUIESCING
        if quiesced:
            self.wake()

    # ---- control loop --------------------------------------------------------------------
    def wake(self) -> None:
        """Ask the run loop for a step now."""
        self._wake.set()

    def step(self) -> bool:
        """Apply at most one policy action per model; True if anything changed."""
        now = self._clock()
        events: list[StateEvent] = []
        jobs: list[tuple[Executor, Callable[[], None]]] = []
        with self._lock:
            for name in list(self._streams):
                self._step_stream(name, now, events, jobs)
        self._publish(events)
        for executor, job in jobs:
            executor.submit(job)
        return bool(events or jobs)

    def run(self, stop: threading.Event, interval_s: float = 0.1) -> None:
        """Step until ``stop`` is set, waking early whenever something changed."""
        while not stop.is_set():
            self._wake.clear()
            if not self.step():
                self._wake.wait(interval_s)

    def idle(self) -> bool:
        """True when no model has any version left (after unloading everything)."""
        with self._lock:
            return not self._streams

    def _step_stream(
        self,
        name: str,
        now: float,
        events: list[StateEvent],
        jobs: list[tuple[Executor, Callable[[], None]]],
    ) -> None:
        stream = self._streams[name]
        for harness in list(stream.values()):
            if harness.state is H.QUIESCING and harness.inflight == 0:
                harness.state = H.UNLOADING
                jobs.append((self._unload_executor, functools.partial(self._unload, harness)))
            elif not harness.aspired and harness.state in (H.NEW, H.ERROR, H.DISABLED):
                del stream[harness.id.version]
                if harness.state is H.NEW:
                    events.append(StateEvent(harness.id, ManagerState.END, harness.error))
                if harness.next_loader is not None:
                    fresh = _Harness(harness.id, harness.next_loader, self._limit > 0)
                    stream[harness.id.version] = fresh
                    events.append(StateEvent(fresh.id, ManagerState.START))
        action = self._policy([h.snapshot() for h in stream.values()], now)
        if action is not None:
            harness = stream[action.version]
            if action.kind == "load":
                harness.state = H.LOADING
                if harness.attempts == 0:
                    events.append(StateEvent(harness.id, ManagerState.LOADING))
                else:
                    log_event(
                        log, logging.INFO, f"Retrying of Loading servable: "
                        f"{_debug_string(harness.id)} retry: {harness.attempts}",
                        model=name, version=harness.id.version,
                    )  # fmt: skip
                jobs.append((self._load_executor, functools.partial(self._load, harness)))
            else:
                harness.state = H.QUIESCING
                self._ready[name].remove(harness)
                events.append(StateEvent(harness.id, ManagerState.UNLOADING))
        if not stream:
            del self._streams[name]
            self._ready.pop(name, None)

    # ---- executor jobs -------------------------------------------------------------------
    def _load(self, harness: _Harness) -> None:
        if not self._reserve(harness):
            return
        before = self._rss()
        try:
            servable = harness.loader.load()
        except Exception as exc:
            self._load_failed(harness, _as_serving_error(exc))
            return
        growth = max(0, self._rss() - before)  # the process's: approximate if loads overlap
        with self._lock:
            harness.servable = servable
            harness.state = H.READY
            ready = self._ready.setdefault(harness.id.name, [])
            ready.append(harness)
            ready.sort(key=lambda h: h.id.version, reverse=True)
        memory = (harness.estimate or 0, growth)
        self._publish([StateEvent(harness.id, ManagerState.AVAILABLE, memory=memory)])
        self.wake()

    # ---- memory budget -------------------------------------------------------------------
    def _reserve(self, harness: _Harness) -> bool:
        """Reserve the version's estimate in the budget; False when the load must not run
        now (it was sent back to make room, or failed with RESOURCE_EXHAUSTED)."""
        if harness.estimate is None:
            harness.estimate = _estimate(harness.loader)
        estimate = harness.estimate
        with self._lock:
            used = sum(self._reserved.values())
            if not self._limit or used + estimate <= self._limit:
                self._reserved[harness.id] = estimate
                return True
            stale = self._stale_bytes(harness)
            if (
                harness.fits
                and self._policy is resource_preserving
                and stale
                and used - stale + estimate <= self._limit
            ):  # unloading the old version makes room: the policy does that first, then retries
                harness.fits = False
                harness.state = H.NEW
                self.wake()
                return False
        error = ResourceExhausted(
            f"Insufficient resources to load servable {_debug_string(harness.id)}: its memory "
            f"estimate of {estimate} bytes (its files' size x {RAM_MULTIPLIER}) does not fit in "
            f"--total_model_memory_limit_bytes={self._limit}, of which {used} bytes are held by "
            "the versions loaded; they keep serving"
        )
        self._load_failed(harness, error, may_retry=False)
        return False

    def _stale_bytes(self, harness: _Harness) -> int:
        """What the budget would get back by unloading the model's unaspired ready versions."""
        stream = self._streams.get(harness.id.name, {})
        return sum(
            self._reserved.get(h.id, 0)
            for h in stream.values()
            if not h.aspired and h.state is H.READY
        )

    def memory_reserved(self) -> int:
        """Bytes the budget holds for loading and loaded versions."""
        with self._lock:
            return sum(self._reserved.values())

    def _load_failed(self, harness: _Harness, error: ServingError, may_retry: bool = True) -> None:
        with self._lock:
            self._reserved.pop(harness.id, None)
            harness.attempts += 1
            harness.error = error
            retry = may_retry and harness.aspired and harness.attempts <= self._max_retries
            if retry:
                harness.state = H.NEW
                harness.retry_at = self._clock() + self._retry_interval
            else:
                harness.state = H.ERROR
        attempts = self._max_retries + 1 if may_retry else harness.attempts
        failed = f"attempt {harness.attempts} of {attempts} failed: {_status(error)}"
        where = {"model": harness.id.name, "version": harness.id.version}
        log_event(
            log, logging.ERROR, f"Loading servable: {_debug_string(harness.id)} failed: "
            f"{_status(error)}", **where,
        )  # fmt: skip
        if retry:
            log_event(log, logging.WARNING, failed, **where, retry_in_s=self._retry_interval)
            note = f"{failed} (retrying in {self._retry_interval:g} s)"
            self._publish([StateEvent(harness.id, ManagerState.LOADING, note=note)])
        else:
            if (
                may_retry and self._max_retries and harness.attempts > self._max_retries
            ):  # TF Serving's line
                log_event(
                    log, logging.INFO, f"Retrying of Loading servable: {_debug_string(harness.id)} "
                    f"exhausted max_num_retries: {self._max_retries}", **where,
                )  # fmt: skip
            log_event(log, logging.ERROR, f"{failed}; no retries left", **where)
            self._publish([StateEvent(harness.id, ManagerState.END, error)])
        self.wake()

    def _unload(self, harness: _Harness) -> None:
        try:
            harness.loader.unload()
        except Exception:
            log.exception("Unloading %s failed", harness.id)
        with self._lock:
            harness.state = H.DISABLED
            harness.servable = None
            self._reserved.pop(harness.id, None)
        self._publish([StateEvent(harness.id, ManagerState.END)])
        self.wake()

    def _publish(self, events: list[StateEvent]) -> None:
        for event in events:
            self._monitor.publish(event)


RAM_MULTIPLIER = 1.2
"""TF Serving's ``kResourceEstimateRAMMultiplier``: a version's RAM is estimated as its files'
size times this (``servables/tensorflow/util.cc``); loaders apply it."""


def _estimate(loader: Loader) -> int:
    try:
        return max(0, int(loader.estimate_bytes()))
    except Exception:
        log.exception("Estimating the memory of a version failed; counting 0 bytes")
        return 0


def _debug_string(servable: ServableId) -> str:
    """TF Serving's ``ServableId::DebugString()``: ``{name: m version: 1}``."""
    return f"{{name: {servable.name} version: {servable.version}}}"


def _status(error: ServingError) -> str:
    """An error as TF Serving prints a ``Status``: ``NOT_FOUND: message``."""
    return f"{error.code.name}: {error.message}"


def _as_serving_error(exc: Exception) -> ServingError:
    if isinstance(exc, ServingError):
        return exc
    return Unknown(str(exc) or type(exc).__name__)
