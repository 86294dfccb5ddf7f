"""A protocol worker process: REST and gRPC on the shared ports, over ``ipc.RemoteService``.

Holds no model: it parses requests, decodes tensors to numpy, forwards each
call to the model process and encodes the answers. It binds only when the
supervisor says ``listen`` on its stdin (after the initial models loaded, when
``--wait_for_initial_models``); on SIGTERM it drains its connections and exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import sys

import uvloop

from tensorserve import logs
from tensorserve.ipc.client import RemoteService
from tensorserve.processes.spec import ChildSpec, StatusPipe
from tensorserve.protocols.frontend import Frontend, Placement


async def _told_to_listen(stop: asyncio.Event) -> bool:
    """Wait for the supervisor's ``listen`` line on stdin; False if stopped first."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer
    )
    line = asyncio.ensure_future(reader.readline())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([line, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        line.cancel()
        transport.close()
    return line.done() and not line.cancelled() and line.result() == b"listen\n"


def run_worker(spec: ChildSpec, status: StatusPipe) -> int:
    opts = spec.options
    logs.configure_logging(opts.log_format, opts.log_level, access_log=opts.access_log)  # type: ignore[arg-type]
    return uvloop.run(_serve(spec, status))


async def _serve(spec: ChildSpec, status: StatusPipe) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    service = RemoteService(spec.ipc_path)
    await service.connect()
    if not await _told_to_listen(stop):
        await service.close()
        return 0  # stopped (or the supervisor went away) before the ports opened
    first = spec.index == 0
    placement = Placement(reuse_port=True, unix_socket=first, announce=first)
    frontend = Frontend(spec.options, spec.settings, service, placement)
    try:
        await frontend.start()
    except (OSError, ssl.SSLError, RuntimeError, ValueError) as exc:
        status.send("error", message=str(exc))
        await frontend.stop(0)
        return 1
    status.send("listening", grpc_port=frontend.grpc_port, rest_port=frontend.rest_port)
    await stop.wait()
    await frontend.stop(spec.options.shutdown_grace_seconds)
    await service.close()
    return 0
