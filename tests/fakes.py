"""Test doubles for the lifecycle core: no TensorFlow, no threads, no sleeps.

* :class:`FakeLoader` records every ``load``/``unload`` call and can be told to fail
  a number of times (or forever) or to hold a load open until the test lets it go.
* :class:`ManualClock` is a monotonic clock the test moves by hand.
* :class:`InlineExecutor` runs a submitted job on the spot (``step()`` then finishes
  every load and unload it started before returning); :class:`QueueExecutor` keeps the
  jobs until the test runs them, to look at the states in between.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

from tensorserve.errors import Unknown

P = ParamSpec("P")
T = TypeVar("T")


class FakeServable:
    """What a FakeLoader hands out: knows its model and version."""

    def __init__(self, name: str, version: int) -> None:
        self.name = name
        self.version = version
        self.closed = False

    def __repr__(self) -> str:
        return f"FakeServable({self.name}, {self.version})"


class FakeLoader:
    """A Loader (``core/loader.py``) whose outcome the test decides.

    ``fail_times``: how many first ``load`` calls raise ``error`` (-1: all of them).
    """

    def __init__(
        self,
        name: str = "m",
        version: int = 1,
        *,
        fail_times: int = 0,
        error: Exception | None = None,
        estimate: int = 0,
    ) -> None:
        self.name = name
        self.version = version
        self.fail_times = fail_times
        self.error: Exception = error or Unknown(f"load of {name}:{version} failed")
        self.estimate = estimate
        self.loads = 0
        self.unloads = 0
        self.servable: FakeServable | None = None

    def load(self) -> Any:
        self.loads += 1
        if self.fail_times < 0 or self.loads <= self.fail_times:
            raise self.error
        self.servable = FakeServable(self.name, self.version)
        return self.servable

    def estimate_bytes(self) -> int:
        return self.estimate

    def unload(self) -> None:
        self.unloads += 1
        if self.servable is not None:
            self.servable.closed = True


class ManualClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class InlineExecutor(Executor):
    """Runs each job immediately on the caller's thread; counts them."""

    def __init__(self) -> None:
        self.submitted = 0

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        self.submitted += 1
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # a job must not raise; surface it in the test
            future.set_exception(exc)
            raise
        return future


class QueueExecutor(Executor):
    """Keeps submitted jobs until :meth:`run_all` (to observe in-between states)."""

    def __init__(self) -> None:
        self.jobs: list[Callable[[], object]] = []

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        self.jobs.append(lambda: fn(*args, **kwargs))
        return Future()

    def run_all(self) -> int:
        jobs, self.jobs = self.jobs, []
        for job in jobs:
            job()
        return len(jobs)
