"""One end of a worker <-> model-process connection: an ``asyncio.BufferedProtocol``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tensorserve.ipc import wire


class Channel(asyncio.BufferedProtocol):
    """Receives frames into ``on_frame``; ``send`` queues one frame without blocking.

    Frames sent during one pass of the event loop leave in one ``writev`` at its end, so
    under load many replies (or requests) share a system call.
    """

    def __init__(
        self,
        on_frame: wire.FrameHandler,
        on_lost: Callable[[Channel], None] = lambda _channel: None,
        on_open: Callable[[Channel], None] = lambda _channel: None,
    ) -> None:
        """``on_open`` runs once the transport exists: frames sent before that are dropped."""
        self._reader = wire.FrameReader(on_frame)
        self._on_lost = on_lost
        self._on_open = on_open
        self.transport: asyncio.Transport | None = None
        self._out: list[wire.Piece] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._on_open(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._reader.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self._reader.buffer_updated(nbytes)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._on_lost(self)

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def send(
        self, request_id: int, kind: int, meta: Any, buffers: list[memoryview] | None = None
    ) -> None:
        """Queue one frame; a closed channel drops it (its peer is gone)."""
        if self.transport is None or self.transport.is_closing():
            return
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.extend(wire.encode(request_id, kind, meta, buffers))

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(out)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
