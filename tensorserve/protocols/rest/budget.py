"""ByteBudget: how many bytes of request bodies one process buffers at once.

A request reserves its body's size before reading it and gives it back when its
response is sent. While the budget is spent, a request with a declared length waits
its turn (first come, first served) without reading its body: the connection stops
being read, so the client's bytes stay in the kernel's socket buffers and memory stays
bounded however many clients send at once. Pure asyncio, no timers: callers bound
the wait (``asyncio.timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class ByteBudget:
    """A counting semaphore in bytes with FIFO waiters; ``capacity`` > 0."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    def try_take(self, size: int) -> bool:
        """Reserve ``size`` now if it fits and nobody waits; False otherwise."""
        size = min(size, self.capacity)
        if size <= 0:
            return True  # nothing to hold: never waits behind others
        if self._waiters or self.used + size > self.capacity:
            return False
        self.used += size
        return True

    async def take(self, size: int) -> int:
        """Reserve ``size`` (at most ``capacity``), waiting behind earlier callers.

        Returns the amount reserved, to be passed to :meth:`give`. A cancelled wait
        reserves nothing (and returns a reservation granted just before the cancel).
        """
        size = min(size, self.capacity)
        if self.try_take(size):
            return size
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give(size)  # granted, then cancelled: hand it on
            else:
                with contextlib.suppress(ValueError):  # _wake may have dropped it already
                    self._waiters.remove(entry)
                self._wake()  # the head may have been what blocked the others
            raise
        return size

    def give(self, size: int) -> None:
        """Return a reservation and admit the waiters that now fit, in order."""
        self.used -= size
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            size, waiter = self._waiters[0]
            if waiter.done():  # cancelled, its take() not yet resumed: it takes nothing
                self._waiters.popleft()
                continue
            if self.used + size > self.capacity:
                return
            self._waiters.popleft()
            self.used += size
            waiter.set_result(None)


class Reservation:
    """What one request holds of a :class:`ByteBudget`; ``release`` gives all of it back."""

    def __init__(self, budget: ByteBudget) -> None:
        self._budget = budget
        self.size = 0

    async def take(self, size: int) -> None:
        self.size += await self._budget.take(size)

    def try_take(self, size: int) -> bool:
        if not self._budget.try_take(size):
            return False
        self.size += min(size, self._budget.capacity)
        return True

    def release(self) -> None:
        if self.size:
            self._budget.give(self.size)
            self.size = 0
