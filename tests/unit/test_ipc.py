"""The worker <-> model-process link: readiness reaches a worker whenever it connects."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

from tensorserve.ipc.client import RemoteService
from tensorserve.ipc.server import ServiceHost
from tensorserve.service.api import ReadinessListener
from tensorserve.service.service import Service


class _Readiness:
    """Only what ServiceHost asks of a Service before any call: readiness events."""

    def __init__(self, ready: bool) -> None:
        self.ready = ready
        self.listeners: list[ReadinessListener] = []

    def on_readiness(self, listener: ReadinessListener) -> None:
        self.listeners.append(listener)
        listener(self.ready)

    def change(self, ready: bool) -> None:
        self.ready = ready
        for listener in self.listeners:
            listener(ready)


async def _worker(path: str) -> tuple[RemoteService, list[bool]]:
    remote = RemoteService(path)
    seen: list[bool] = []
    remote.on_readiness(seen.append)
    await remote.connect()
    return remote, seen


async def _settle(seen: list[bool], want: bool) -> None:
    async with asyncio.timeout(5):
        while not seen or seen[-1] is not want:
            await asyncio.sleep(0.01)


def test_a_worker_that_connects_after_the_models_are_ready_learns_it(tmp_path: Path) -> None:
    async def scenario() -> list[bool]:
        service = _Readiness(ready=True)
        host = ServiceHost(cast(Service, service), str(tmp_path / "s.sock"))
        await host.start()
        remote, seen = await _worker(str(tmp_path / "s.sock"))
        try:
            await _settle(seen, True)
            return list(seen)  # closing appends False (the model process is gone)
        finally:
            await remote.close()
            await host.close()

    assert asyncio.run(scenario()) == [False, True]


def test_every_connected_worker_follows_each_change(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[bool], list[bool]]:
        service = _Readiness(ready=False)
        path = str(tmp_path / "s.sock")
        host = ServiceHost(cast(Service, service), path)
        await host.start()
        workers: list[Any] = [await _worker(path), await _worker(path)]
        try:
            service.change(True)
            for _remote, seen in workers:
                await _settle(seen, True)
            service.change(False)
            for _remote, seen in workers:
                await _settle(seen, False)
            return list(workers[0][1]), list(workers[1][1])
        finally:
            for remote, _seen in workers:
                await remote.close()
            await host.close()

    first, second = asyncio.run(scenario())
    assert first[-2:] == [True, False] and second[-2:] == [True, False]
