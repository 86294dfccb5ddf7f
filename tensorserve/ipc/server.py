"""ServiceHost: the model process's side; serves one ``Service`` to every worker connection.

Each CALL frame runs as a task on this event loop and is answered with REPLY
(the result) or ERROR (a pickled ``ServingError`` or ``SignatureChanged``; any
other exception is logged and answered as INTERNAL). Readiness changes are
pushed to every worker as EVENT frames, so gRPC health follows at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from tensorserve.errors import Internal, ServingError, Unimplemented, drop_traceback
from tensorserve.ipc import protocol, wire
from tensorserve.ipc.channel import Channel
from tensorserve.service.api import SignatureChanged
from tensorserve.service.service import Service

log = logging.getLogger(__name__)


class ServiceHost:
    """``start`` listens on ``path`` (mode 0600); ``close`` stops listening."""

    def __init__(self, service: Service, path: str) -> None:
        self._service = service
        self._path = path
        self._channels: set[Channel] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.AbstractServer | None = None
        self._ready: bool | None = None

    async def start(self) -> None:
        if os.path.exists(self._path):
            os.unlink(self._path)  # left by a model process that died
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(self._new_channel, self._path)
        os.chmod(self._path, 0o600)
        self._service.on_readiness(self._broadcast)

    def _new_channel(self) -> Channel:
        channel: Channel

        def on_frame(rid: int, kind: int, meta: Any, body: Any, offset: int) -> None:
            if kind == wire.CALL:
                task = asyncio.ensure_future(self._handle(channel, rid, meta, body, offset))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        channel = Channel(on_frame, self._channels.discard, self._opened)
        return channel

    def _opened(self, channel: Channel) -> None:
        """A worker connected: it learns the current readiness first (and every change)."""
        self._channels.add(channel)
        if self._ready is not None:
            channel.send(0, wire.EVENT, (protocol.READINESS, self._ready))

    async def _handle(self, channel: Channel, rid: int, meta: Any, body: Any, offset: int) -> None:
        try:
            if meta[0] == protocol.PREDICT:
                call, entrypoint, timeout = protocol.read_predict_request(meta, body, offset)
                result = await self._service.predict(call, entrypoint, timeout)
                reply, buffers = protocol.predict_reply(result)
                channel.send(rid, wire.REPLY, reply, buffers)
                return
            channel.send(rid, wire.REPLY, await self._generic(meta))
        except (ServingError, SignatureChanged) as exc:
            drop_traceback(exc)
            channel.send(rid, wire.ERROR, exc)
        except Exception as exc:
            log.exception("Unexpected error serving %s from a worker", meta[0])
            channel.send(rid, wire.ERROR, Internal(f"Internal error: {type(exc).__name__}: {exc}"))

    async def _generic(self, meta: Any) -> Any:
        method, args = meta
        if method not in protocol.GENERIC:
            raise Unimplemented(f"Unknown model-process call {method!r}")
        return await getattr(self._service, method)(*args)

    def _broadcast(self, ready: bool) -> None:
        if ready == self._ready:
            return
        self._ready = ready
        for channel in list(self._channels):
            channel.send(0, wire.EVENT, (protocol.READINESS, ready))

    async def close(self) -> None:
        """Stop accepting workers and close their connections."""
        if self._server is not None:
            self._server.close()
        for channel in list(self._channels):
            channel.close()
        if os.path.exists(self._path):
            os.unlink(self._path)
