"""``tensorflow.ProfilerService`` on the gRPC port: TensorBoard's "capture profile" and
``tf.profiler.experimental.client.trace("grpc://host:8500", ...)`` work as with TF Serving.

Each call is passed through byte for byte to TensorFlow's own profiler server in the process
that runs the models (``runtime/profiler.py``; its port comes from ``ServiceAPI``), so the
trace is of the models' process, and no profiler message is declared here. The serving
interceptor authenticates and logs these calls like any other (an identity deserializer
lets it wrap them); the profiler's own status codes and messages come back unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import grpc

from tensorserve.service.api import ServiceAPI

SERVICE = "tensorflow.ProfilerService"
METHODS = ("Profile", "Terminate", "Monitor")


class ProfilerProxy:
    """Forwards the ProfilerService's unary calls; one channel per upstream port."""

    def __init__(self, service: ServiceAPI) -> None:
        self._service = service
        self._channel: grpc.aio.Channel | None = None
        self._port = 0
        self._swap = asyncio.Lock()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                method: grpc.unary_unary_rpc_method_handler(
                    self._forwarder(method), request_deserializer=_raw, response_serializer=None
                )
                for method in METHODS
            },
        )

    def _forwarder(
        self, method: str
    ) -> Callable[[bytes, grpc.aio.ServicerContext], Awaitable[bytes]]:
        path = f"/{SERVICE}/{method}"

        async def forward(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            channel = await self._upstream()
            call = channel.unary_unary(path)  # bytes in, bytes out
            try:
                response: bytes = await call(request, timeout=context.time_remaining())
            except grpc.aio.AioRpcError as err:
                await context.abort(err.code(), err.details() or "")
            return response

        return forward

    async def _upstream(self) -> grpc.aio.Channel:
        port = await self._service.profiler_port()
        async with self._swap:  # concurrent calls after a port change open one channel
            if self._channel is None or port != self._port:
                if self._channel is not None:
                    await self._channel.close()
                self._channel = grpc.aio.insecure_channel(
                    f"127.0.0.1:{port}",
                    options=[("grpc.max_receive_message_length", 2**31 - 1)],  # traces are large
                )
                self._port = port
            return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


def _raw(data: bytes) -> bytes:
    return data
