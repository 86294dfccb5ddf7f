"""Where a computation runs: on the compute pool, or inline when that is cheaper.

Running a signature on a worker thread costs two thread hand-offs (about 50 µs
each here) but keeps the event loop free. For a lone request on a fast model
the hand-offs are most of the latency, so the dispatcher runs it inline on the
calling (event-loop) thread when all of these hold: nothing else is computing,
the servable allows it (``inline_ok``; never a batching wrapper, which waits
for other requests), the inputs are small, and this signature's recent runs
(an exponential moving average) stayed under the budget. The loop is then
blocked for at most about the budget; under concurrency everything goes to
the pool, where TensorFlow runs in parallel with request parsing.

A servable with a queue of its own (batching: ``Servable.schedule``) is awaited
directly: the call joins the queue from the event loop and its future completes
from the batch thread, so no compute thread blocks per request.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from typing import Any

import numpy as np

from tensorserve.core.handle import ServableHandle
from tensorserve.errors import DeadlineExceeded
from tensorserve.servable import Servable

_SMALL_INPUT_BYTES = 64 << 10
_EWMA_WEIGHT = 0.2


class Dispatcher:
    """Runs ``Servable.run`` for the service; single event-loop use, thread-safe pool."""

    def __init__(self, executor: Executor, inline_budget_us: float = 250.0) -> None:
        self._executor = executor
        self._budget = inline_budget_us
        self._busy = 0
        # servable -> signature -> EWMA of run time; entries go with the unloaded servable
        self._cost_us: weakref.WeakKeyDictionary[Any, dict[str, float]] = (
            weakref.WeakKeyDictionary()
        )

    async def run(
        self,
        handle: ServableHandle,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        keys: Sequence[str],
        timeout_s: float | None,
    ) -> dict[str, np.ndarray]:
        """The outputs; the servable stays held until the computation really ends."""
        if self._inline(handle.servable, signature, inputs):
            return self._timed(handle.servable, signature, inputs, keys, None)
        queued = handle.servable.schedule(signature, inputs, keys, timeout_s)
        if queued is not None:  # a batching queue: await the batch, no thread blocked
            return await self._await_queued(handle, queued, timeout_s)
        hold = handle.retain()  # kept until the computation ends, even if the call is cancelled
        self._busy += 1
        try:
            future = self._executor.submit(
                self._timed, handle.servable, signature, inputs, keys, timeout_s
            )
        except BaseException:
            self._busy -= 1
            hold.release()
            raise
        future.add_done_callback(lambda _f: hold.release())
        try:
            async with asyncio.timeout(timeout_s):
                outputs: dict[str, np.ndarray] = await asyncio.wrap_future(future)
        except TimeoutError:
            raise DeadlineExceeded("Deadline Exceeded") from None
        finally:
            self._busy -= 1
        return outputs

    async def _await_queued(
        self, handle: ServableHandle, queued: Future[dict[str, np.ndarray]], timeout_s: float | None
    ) -> dict[str, np.ndarray]:
        hold = handle.retain()  # until the batch has run, even if this call is cancelled
        queued.add_done_callback(lambda _f: hold.release())
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.wrap_future(queued)
        except TimeoutError:
            queued.cancel()  # dropped if its batch has not started
            raise DeadlineExceeded("Deadline Exceeded") from None

    def _inline(self, servable: Servable, signature: str, inputs: Mapping[str, Any]) -> bool:
        if self._busy or not servable.inline_ok:
            return False
        cost = self._cost_us.get(servable, {}).get(signature)
        if cost is None or cost > self._budget:
            return False
        return bool(sum(v.nbytes for v in inputs.values()) <= _SMALL_INPUT_BYTES)

    def _timed(
        self,
        servable: Any,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        keys: Sequence[str],
        timeout_s: float | None,
    ) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        outputs: dict[str, np.ndarray] = servable.run(signature, inputs, keys, timeout_s)
        elapsed = (time.perf_counter() - start) * 1e6
        costs = self._cost_us.setdefault(servable, {})
        previous = costs.get(signature, elapsed)
        costs[signature] = previous + _EWMA_WEIGHT * (elapsed - previous)
        return outputs
