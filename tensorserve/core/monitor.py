"""ServableStateMonitor: remembers every version's last state and lets callers wait.

Fed by the manager's state events; answers GetModelStatus, readiness and
"wait until these versions settle" (start-up, ReloadConfig). Like TF Serving
it never forgets a version: unloaded or failed versions stay listed as END.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tensorserve.core.ids import ServableId
from tensorserve.core.states import ManagerState, VersionStatus
from tensorserve.errors import Code, ServingError


@dataclass(frozen=True, slots=True)
class StateEvent:
    """One published transition; ``error`` is set when a version ended by failing.

    ``note`` is the status message of a state without an error: while a failed load waits
    for its retry, the version is LOADING with the last attempt's error as its note.
    """

    id: ServableId
    state: ManagerState
    error: ServingError | None = None
    note: str = ""
    memory: tuple[int, int] | None = None  # AVAILABLE: (estimated bytes, RSS growth in bytes)


Listener = Callable[[StateEvent], None]


class ServableStateMonitor:
    """Thread-safe store of the latest :class:`VersionStatus` per version."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._states: dict[str, dict[int, VersionStatus]] = {}
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` for every later event, on the publishing thread; it must not raise."""
        self._listeners.append(listener)

    def publish(self, event: StateEvent) -> None:
        """Record an event and wake waiters."""
        error = event.error
        status = VersionStatus(
            version=event.id.version,
            state=event.state,
            error_code=error.code if error else Code.OK,
            error_message=error.message if error else event.note,
            since=time.time(),
            memory_estimate_bytes=event.memory[0] if event.memory else 0,
            rss_growth_bytes=event.memory[1] if event.memory else 0,
        )
        with self._cond:
            self._states.setdefault(event.id.name, {})[event.id.version] = status
            self._cond.notify_all()
        for listener in self._listeners:
            listener(event)

    def versions(self, name: str) -> list[VersionStatus]:
        """Every known version of ``name``, highest first (empty if never seen)."""
        with self._cond:
            known = self._states.get(name, {})
            return [known[v] for v in sorted(known, reverse=True)]

    def available(self, name: str) -> list[int]:
        """Versions of ``name`` currently AVAILABLE, highest first."""
        return [s.version for s in self.versions(name) if s.state is ManagerState.AVAILABLE]

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float | None) -> bool:
        """Block until ``predicate()`` holds (re-checked after each event) or the timeout."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout_s)

    def notify(self) -> None:
        """Wake waiters without an event (e.g. when the aspired set changed)."""
        with self._cond:
            self._cond.notify_all()
