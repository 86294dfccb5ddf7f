"""ByteBudget: FIFO admission in bytes, cancellation, and error tracebacks let go."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from tensorserve.errors import InvalidArgument, drop_traceback
from tensorserve.protocols.rest.budget import ByteBudget, Reservation


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_takes_within_capacity_at_once() -> None:
    async def scenario() -> None:
        budget = ByteBudget(100)
        assert await budget.take(60) == 60
        assert budget.try_take(40)
        assert not budget.try_take(1)
        budget.give(60)
        assert budget.used == 40

    asyncio.run(scenario())


def test_waiters_are_admitted_in_order_as_bytes_come_back() -> None:
    async def scenario() -> None:
        budget = ByteBudget(100)
        await budget.take(90)
        order: list[str] = []

        async def wait(name: str, size: int) -> None:
            await budget.take(size)
            order.append(name)

        big = asyncio.ensure_future(wait("big", 80))
        small = asyncio.ensure_future(wait("small", 5))  # fits now, but waits its turn
        await _settle()
        assert order == [] and not budget.try_take(1)  # nobody jumps the queue
        budget.give(90)
        await _settle()
        assert order == ["big", "small"]
        assert budget.used == 85
        await asyncio.gather(big, small)

    asyncio.run(scenario())


def test_nothing_to_hold_never_waits() -> None:
    async def scenario() -> None:
        budget = ByteBudget(100)
        await budget.take(90)
        waiting = asyncio.ensure_future(budget.take(50))
        await _settle()
        assert not waiting.done()
        assert budget.try_take(0)  # an empty body does not queue behind the waiter
        assert await asyncio.wait_for(budget.take(0), 1) == 0
        budget.give(90)
        assert await waiting == 50

    asyncio.run(scenario())


def test_a_request_larger_than_the_budget_takes_all_of_it() -> None:
    async def scenario() -> None:
        budget = ByteBudget(100)
        assert await budget.take(500) == 100
        assert budget.used == 100

    asyncio.run(scenario())


@pytest.mark.parametrize("give_back_first", [False, True], ids=["cancel", "bytes-back-first"])
def test_a_cancelled_waiter_takes_nothing_and_unblocks_the_next(give_back_first: bool) -> None:
    async def scenario() -> None:
        budget = ByteBudget(100)
        await budget.take(50)
        head = asyncio.ensure_future(budget.take(80))
        behind = asyncio.ensure_future(budget.take(40))
        await _settle()
        head.cancel()  # its future is cancelled now; its except clause runs later
        if give_back_first:
            budget.give(50)  # before that: the cancelled waiter must be skipped, not granted
        await _settle()
        assert behind.done() and await behind == 40
        assert budget.used == (40 if give_back_first else 90)
        with pytest.raises(asyncio.CancelledError):
            await head

    asyncio.run(scenario())


def test_timeout_while_waiting_leaves_the_budget_whole() -> None:
    async def scenario() -> None:
        budget = ByteBudget(10)
        held = Reservation(budget)
        await held.take(10)
        other = Reservation(budget)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0):
                await other.take(5)
        assert other.size == 0
        held.release()
        held.release()  # idempotent
        assert budget.used == 0

    asyncio.run(scenario())


def test_reservation_try_take_counts_only_what_it_got() -> None:
    budget = ByteBudget(10)
    held = Reservation(budget)
    assert held.try_take(6)
    assert not held.try_take(6)
    assert held.size == 6
    held.release()
    assert budget.used == 0


class _Payload:
    pass


def test_drop_traceback_frees_the_frames_an_error_holds() -> None:
    """An error kept after its handler must not keep the request's data alive."""
    gc.disable()
    try:
        kept: list[Exception] = []

        def fail(payload: _Payload) -> None:
            raise InvalidArgument("bad")

        def call() -> weakref.ref[_Payload]:
            payload = _Payload()
            try:
                fail(payload)
            except InvalidArgument as exc:
                kept.append(exc)
            return weakref.ref(payload)

        alive = call()
        assert alive() is not None  # the traceback's frame still holds it
        drop_traceback(kept[0])
        assert alive() is None
    finally:
        gc.enable()


def test_drop_traceback_follows_the_cause_chain() -> None:
    try:
        try:
            raise ValueError("inner")
        except ValueError as inner:
            raise InvalidArgument("outer") from inner
    except InvalidArgument as exc:
        error = exc
    drop_traceback(error)
    assert error.__traceback__ is None
    assert error.__cause__ is not None and error.__cause__.__traceback__ is None
