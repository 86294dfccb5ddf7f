"""ServingInterceptor's access log records the code a call really ended with, also when the
servicer aborts by itself (the profiler's pass-through re-raises the upstream's status)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from tensorserve import logs
from tensorserve.protocols.grpc.interceptor import ServingInterceptor


def _raw(data: bytes) -> bytes:
    return data


async def _aborts(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "upstream says no")
    raise AssertionError("unreachable")


async def _answers(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


def test_access_log_has_the_code_of_a_servicer_abort(monkeypatch: pytest.MonkeyPatch) -> None:
    logged: list[tuple[str, int]] = []

    def record(method: str, path: str, status: int, *rest: Any) -> None:
        logged.append((path, status))

    monkeypatch.setattr(logs, "access_log", record)

    async def scenario() -> grpc.StatusCode:
        server = grpc.aio.server(interceptors=[ServingInterceptor()])
        methods = {
            name: grpc.unary_unary_rpc_method_handler(
                behavior, request_deserializer=_raw, response_serializer=None
            )
            for name, behavior in (("Abort", _aborts), ("Echo", _answers))
        }
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("t.S", methods)])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                assert await channel.unary_unary("/t.S/Echo")(b"hi") == b"hi"
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await channel.unary_unary("/t.S/Abort")(b"")
                return failed.value.code()
        finally:
            await server.stop(0)

    code = asyncio.run(scenario())
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert logged == [
        ("/t.S/Echo", 0),
        ("/t.S/Abort", grpc.StatusCode.FAILED_PRECONDITION.value[0]),
    ]
