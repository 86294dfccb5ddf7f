"""The dispatcher: inline for a lone fast request, the pool otherwise."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tensorserve.core.handle import ServableHandle
from tensorserve.core.ids import ServableId
from tensorserve.errors import DeadlineExceeded
from tensorserve.service.dispatch import Dispatcher


class RecordingServable:
    """Records the thread each run happened on; optionally blocks until released."""

    def __init__(self, inline_ok: bool = True) -> None:
        self.inline_ok = inline_ok
        self.allowed_batch_sizes = ()
        self.threads: list[int] = []
        self.gate = threading.Event()
        self.gate.set()

    def schedule(self, *_args: object) -> None:
        return None  # no queue of its own: the dispatcher picks inline or the pool

    def run(
        self,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_keys: Sequence[str],
        timeout_s: float | None = None,
    ) -> dict[str, np.ndarray]:
        self.threads.append(threading.get_ident())
        self.gate.wait(5)
        return {"y": inputs["x"] * 2}


def handle_for(servable: RecordingServable, held: list[int]) -> ServableHandle:
    def retain() -> ServableHandle:
        held[0] += 1
        return ServableHandle(ServableId("m", 1), servable, release, retain)

    def release() -> None:
        held[0] -= 1

    return ServableHandle(ServableId("m", 1), servable, release, retain)


def run(coro_factory: object) -> None:
    asyncio.run(coro_factory())  # type: ignore[operator]


X = {"x": np.ones((1, 4), np.float32)}


async def until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Yield to the loop until ``condition`` holds (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


def test_first_call_uses_the_pool_then_a_fast_lone_call_runs_inline() -> None:
    servable, held = RecordingServable(), [0]
    loop_thread = threading.get_ident()

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            dispatcher = Dispatcher(pool, inline_budget_us=1e6)
            handle = handle_for(servable, held)
            for _ in range(3):
                out = await dispatcher.run(handle, "s", X, ["y"], None)
                np.testing.assert_array_equal(out["y"], X["x"] * 2)

    run(main)
    assert servable.threads[0] != loop_thread  # no estimate yet: the pool
    assert servable.threads[1:] == [loop_thread, loop_thread]
    assert held == [0]


@pytest.mark.parametrize(
    "budget, inline_ok, rows", [(0.0, True, 1), (1e6, False, 1), (1e6, True, 40_000)]
)
def test_never_inline_when_slow_batching_or_large(
    budget: float, inline_ok: bool, rows: int
) -> None:
    servable, held = RecordingServable(inline_ok), [0]
    loop_thread = threading.get_ident()
    inputs = {"x": np.ones((rows, 4), np.float32)}

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            dispatcher = Dispatcher(pool, inline_budget_us=budget)
            for _ in range(3):
                await dispatcher.run(handle_for(servable, held), "s", inputs, ["y"], None)

    run(main)
    assert loop_thread not in servable.threads
    assert held == [0]


def test_concurrent_calls_go_to_the_pool() -> None:
    servable, held = RecordingServable(), [0]
    loop_thread = threading.get_ident()

    async def main() -> None:
        with ThreadPoolExecutor(4) as pool:
            dispatcher = Dispatcher(pool, inline_budget_us=1e6)
            handle = handle_for(servable, held)
            await dispatcher.run(handle, "fast", X, ["y"], None)  # learn its cost
            servable.threads.clear()
            servable.gate.clear()
            # "slow" has no estimate yet, so it goes to the pool and blocks there ...
            first = asyncio.ensure_future(dispatcher.run(handle, "slow", X, ["y"], None))
            await until(lambda: len(servable.threads) == 1)
            # ... and while it computes, even the known-fast signature uses the pool.
            second = asyncio.ensure_future(dispatcher.run(handle, "fast", X, ["y"], None))
            await until(lambda: len(servable.threads) == 2)
            servable.gate.set()
            await asyncio.gather(first, second)

    run(main)
    assert len(servable.threads) == 2 and loop_thread not in servable.threads


def test_timeout_keeps_the_servable_held_until_the_computation_ends() -> None:
    servable, held = RecordingServable(inline_ok=False), [0]

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            dispatcher = Dispatcher(pool)
            servable.gate.clear()
            with pytest.raises(DeadlineExceeded):
                await dispatcher.run(handle_for(servable, held), "s", X, ["y"], 0.05)
            assert held == [1]  # still computing: the version cannot be unloaded yet
            servable.gate.set()

    run(main)
    assert held == [0]
