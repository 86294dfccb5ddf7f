"""The model process: the one owner of every loaded model, serving workers over ``ipc/``.

Listens on the IPC socket before loading (so status and readiness answer while
models load), reports ``ipc-ready`` and then ``loaded`` once the initial models
are available or failed, and on SIGTERM unloads everything and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import uvloop

from tensorserve import logs
from tensorserve.ipc.server import ServiceHost
from tensorserve.lifecycle import ModelLifecycle
from tensorserve.processes.spec import ChildSpec, StatusPipe

log = logging.getLogger("tensorserve.server")


def run_model_process(spec: ChildSpec, status: StatusPipe) -> int:
    opts = spec.options
    logs.configure_logging(opts.log_format, opts.log_level, access_log=opts.access_log)  # type: ignore[arg-type]
    return uvloop.run(_serve(spec, status))


async def _serve(spec: ChildSpec, status: StatusPipe) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    lifecycle = ModelLifecycle(spec.options, spec.settings)
    lifecycle.start()
    host = ServiceHost(lifecycle.service, spec.ipc_path)
    await host.start()
    status.send("ipc-ready")
    initial: asyncio.Future[None] = loop.run_in_executor(None, lifecycle.initial_load)
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    either: list[asyncio.Future[Any]] = [initial, stopping]
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if initial.done():
        status.send("loaded")
        await stopping
    await loop.run_in_executor(None, lifecycle.stop, spec.options.shutdown_grace_seconds)
    await host.close()
    return 0
