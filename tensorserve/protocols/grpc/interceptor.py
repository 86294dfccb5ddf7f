"""The one place gRPC calls are parsed, mapped to a status and logged.

Every unary RPC of the server passes through :class:`ServingInterceptor`:

* the request bytes are parsed here, so a message whose wire format does not
  parse is ``INVALID_ARGUMENT`` naming the message type (grpc's default is
  ``UNKNOWN: Unexpected <class DecodeError>``);
* a ``ServingError`` becomes its canonical code with TF Serving's message cap
  (``status.py``); any other exception is logged and answered ``INTERNAL``;
* one access-log line per call, with the code actually returned;
* with a token (``--auth_token_file``), calls without ``authorization: Bearer <token>``
  metadata are ``UNAUTHENTICATED`` (``grpc.health.v1`` stays open, for probes).

Wrapped handlers are built once per method and cached.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from tensorserve import logs
from tensorserve.errors import (
    Code,
    Internal,
    InvalidArgument,
    ServingError,
    Unauthenticated,
    drop_traceback,
)
from tensorserve.protocols import auth
from tensorserve.protocols.grpc.status import grpc_code, grpc_message

log = logging.getLogger(__name__)
_OPEN_SERVICE = "/grpc.health.v1.Health/"
Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


class ServingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Parse, map errors and log every unary-unary call of the wrapped services."""

    def __init__(self, entrypoint: str = "GRPC", tokens: auth.Tokens | None = None) -> None:
        self._entrypoint = entrypoint
        self._tokens = tokens or auth.Tokens()
        self._cache: dict[str, grpc.RpcMethodHandler | None] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method: str = details.method
        if method in self._cache:
            return self._cache[method]
        handler = await continuation(details)
        wrapped = self._wrap(method, handler)
        self._cache[method] = wrapped
        return wrapped

    def _wrap(self, method: str, handler: Any) -> Any:
        if handler is None or handler.unary_unary is None or handler.request_deserializer is None:
            return handler  # streaming (none of ours) or unknown methods: as grpc does
        behavior: Behavior = handler.unary_unary
        parse: Callable[[bytes], Any] = handler.request_deserializer
        message_type = _message_type(parse)
        rpc = method.rsplit("/", 1)[-1]
        admin = method in auth.STATE_CHANGING_RPCS
        token = None if method.startswith(_OPEN_SERVICE) else self._tokens.required(admin)

        async def call(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            code = Code.OK
            model = ""
            try:
                if token is not None:
                    _authenticate(context, token, method, admin)
                request = _parse(parse, raw, message_type)
                model = _model_name(request)
                return await behavior(request, context)
            except ServingError as exc:
                code = exc.code
                drop_traceback(exc)
                await context.abort(grpc_code(exc.code), grpc_message(exc.message))
            except asyncio.CancelledError:
                code = Code.CANCELLED
                raise
            except Exception as exc:
                if isinstance(exc, grpc.aio.AbortError):  # the servicer aborted: its code
                    code = _aborted_code(context)
                    raise
                log.exception("Unexpected error in %s", method)
                code = Code.INTERNAL
                error = Internal(f"Internal error: {type(exc).__name__}: {exc}")
                await context.abort(grpc_code(code), grpc_message(error.message))
            finally:
                logs.access_log(
                    rpc,
                    method,
                    int(code),
                    (time.perf_counter() - start) * 1e3,
                    model or None,
                    None,
                    self._entrypoint,
                )
            raise AssertionError("unreachable")  # abort() always raises

        return grpc.unary_unary_rpc_method_handler(
            call, request_deserializer=None, response_serializer=handler.response_serializer
        )


def _aborted_code(context: grpc.aio.ServicerContext) -> Code:
    """The code a servicer's own ``context.abort`` set (the profiler's pass-through)."""
    status = context.code()
    return Code(status.value[0]) if isinstance(status, grpc.StatusCode) else Code.UNKNOWN


def _authenticate(context: grpc.aio.ServicerContext, token: str, method: str, admin: bool) -> None:
    presented = None
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            presented = auth.bearer(value)
    if not auth.matches(presented, token):
        raise Unauthenticated(auth.missing_message(method, admin))


def _parse(parse: Callable[[bytes], Any], raw: bytes, message_type: str) -> Any:
    try:
        return parse(raw)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise InvalidArgument(
            f"Could not parse the request as {message_type}: {exc}. Expected a serialized "
            f"{message_type} (protobuf wire format)"
        ) from None


def _message_type(parse: Callable[[bytes], Any]) -> str:
    owner = getattr(parse, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "the request message"))


def _model_name(request: Any) -> str:
    spec = getattr(request, "model_spec", None)
    if spec is not None:
        return str(spec.name)
    tasks = getattr(request, "tasks", None)
    if tasks:
        return str(tasks[0].model_spec.name)
    return str(getattr(request, "model_name", "") or getattr(request, "name", ""))  # OIP
