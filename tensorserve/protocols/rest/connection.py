"""The HTTP/1.1 connection: uvicorn's httptools protocol with the limits a public port needs.

uvicorn bounds none of these: a client that sends its headers a byte at a time, or opens
a connection and sends nothing, holds it forever, and headers may be of any size. Here:

- an idle connection (before its first request, or between keep-alive requests) is
  closed after ``keepalive_timeout_s``;
- a request's headers must be complete within ``header_timeout_s`` of its first byte
  (else 408) and within ``max_header_bytes`` (else 431);
- beyond ``max_connections`` open connections in this process, a request gets 429.

The body's own deadline and memory budget are the application's (``app.py``), which
reads it. Refusals are ``{"error": ...}`` JSON naming the flag that raises the limit,
and close the connection.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

REASONS = {
    408: b"Request Timeout",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
}


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Per-connection limits; every field is a ``--rest_api_*`` flag."""

    max_header_bytes: int = 64 << 10
    header_timeout_s: float = 30.0
    keepalive_timeout_s: float = 75.0
    max_connections: int = 4096


def protocol_class(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` enforcing ``limits``."""
    return type("LimitedHttpProtocol", (LimitedHttpProtocol,), {"limits": limits})


class LimitedHttpProtocol(HttpToolsProtocol):
    """See the module docstring; uvicorn creates one per connection."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0
        self._raw_header_bytes = 0  # bytes of reads that began and ended inside the headers
        self._began_message = False
        self._header_timer: asyncio.TimerHandle | None = None
        self._refused = False
        if len(self.connections) > self.limits.max_connections:
            self.app = _too_many_connections(self.limits.max_connections)
        # uvicorn arms its idle timer only after a response; arm it for the first request too
        self.timeout_keep_alive_task = self.loop.call_later(
            self.limits.keepalive_timeout_s, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        if self.timeout_keep_alive_task is not None:  # uvicorn leaves it on a reset
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._arm_header_timer()  # bytes between requests start the next one's clock
        self._began_message = False
        super().data_received(data)
        if self._header_timer is not None and not self._began_message:
            # The parser buffers a header line until its end: count whole reads that fell
            # inside the headers, so an endless line is cut off too (one read of slack).
            self._raw_header_bytes += len(data)
            self._count(0)

    # ---- parser callbacks -----------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._raw_header_bytes = 0
        self._began_message = True
        if self._header_timer is None:  # a pipelined request
            self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        if self._count(len(url)):
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._count(len(name) + len(value) + 4):  # "name: value\r\n"
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        self._raw_header_bytes = 0
        if not self._refused:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    # ---- refusals -------------------------------------------------------------------------
    def _count(self, size: int) -> bool:
        if self._refused:
            return False
        self._header_bytes += size
        limit = self.limits.max_header_bytes
        if max(self._header_bytes, self._raw_header_bytes) <= limit:
            return True
        self._refuse(
            431,
            f"Request line and headers exceed {limit} bytes; "
            "--rest_api_max_header_bytes raises the limit",
        )
        return False

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        self._refuse(
            408,
            f"Request headers were not complete within {self.limits.header_timeout_s:g} s; "
            "--rest_api_header_timeout_seconds raises the limit",
        )

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(
            self.limits.header_timeout_s, self._headers_too_slow
        )

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with a JSON error and close; the parser's later callbacks idle."""
        self._refused = True
        self._cancel_header_timer()
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a pipelined request: no answer inside the one in flight
            return
        body = orjson.dumps({"error": message})
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n"
        ) % (status, REASONS[status], len(body))
        self.transport.write(head + body)
        self.transport.close()


def _too_many_connections(limit: int) -> Any:
    """An ASGI app answering 429 and closing: this process has ``limit`` connections open."""
    body = orjson.dumps(
        {
            "error": f"This server process already has {limit} open connections; "
            "retry later, or raise --rest_api_max_connections"
        }
    )

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            (b"retry-after", b"1"),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
