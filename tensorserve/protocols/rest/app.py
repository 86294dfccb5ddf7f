"""The REST API as a plain ASGI application (served by uvicorn + httptools + uvloop).

TF Serving's URLs, JSON shapes and status codes (``routes.py``, ``json_decode.py``,
``json_encode.py``, ``json_examples.py``, ``status.py``); every model call goes through
a ``service.api.ServiceAPI`` (in-process, or the model process over ``ipc/``).
Beyond TF Serving: ``GET /v1/models``, the Open Inference Protocol under ``/v2``
(``oip.py``), gzip bodies, JSON 404s, a body size limit (413), a body deadline (408) and
a per-process budget of buffered bodies (``budget.py``; 429 when a body cannot wait).
A raw ASGI callable is used instead of a framework router: the route table is
a handful of regexes, and BENCHMARKS.md measures the difference.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
from google.protobuf import json_format

from tensorserve.core.ids import ServableRequest
from tensorserve.errors import Code, InvalidArgument, ServingError, Unavailable, drop_traceback
from tensorserve.metrics.endpoint import CONTENT_TYPE as METRICS_CONTENT_TYPE
from tensorserve.protocols import auth
from tensorserve.protocols.oip import infer
from tensorserve.protocols.rest import (
    dashboard,
    json_decode,
    json_encode,
    json_examples,
    oip,
    openapi,
)
from tensorserve.protocols.rest.budget import ByteBudget, Reservation
from tensorserve.protocols.rest.routes import ModelRoute, parse_v1, parse_v2_ready
from tensorserve.protocols.rest.status import http_status
from tensorserve.servable import SignatureSpec
from tensorserve.service.api import (
    Entrypoint,
    PredictCall,
    PredictResult,
    ServiceAPI,
    SignatureChanged,
    input_dtypes,
)

log = logging.getLogger(__name__)
REST = Entrypoint.REST
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
JSON = b"application/json"
Reply = oip.Reply  # status, body, content type, headers
_OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})  # probes need no token
_NO_STORE = [(b"cache-control", b"no-store")]
_OFFLOAD_BYTES = 1 << 20  # bodies above 1 MiB are parsed on a worker thread
_DEFLATE_RATIO = 1032  # the most a DEFLATE stream can inflate: a gzip body's reservation
_CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"POST, GET"),
    (b"access-control-allow-headers", b"Content-Type"),
]


@dataclass(frozen=True, slots=True)
class RestOptions:
    """REST behaviour from the command line."""

    timeout_s: float | None = 30.0
    enable_cors: bool = False
    max_body_bytes: int = 256 << 20
    max_buffered_body_bytes: int = 1 << 30  # all bodies held at once (budget.py)
    body_timeout_s: float = 60.0  # from the headers to the body's last byte
    metrics_path: str | None = None
    dashboard: bool = True
    tokens: auth.Tokens = field(default_factory=auth.Tokens)
    model_management: bool = False  # lists OIP's model_repository extension


Headers = list[tuple[bytes, bytes]]


class HttpError(Exception):
    """An HTTP-level failure that has no canonical code (e.g. 413), with extra headers."""

    def __init__(self, status: int, message: str, headers: Headers | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


class RestApp:
    """ASGI callable; create one per server."""

    def __init__(
        self,
        service: ServiceAPI,
        options: RestOptions,
        access_log: Callable[..., None] | None = None,
    ) -> None:
        self._service = service
        self._options = options
        self._access_log = access_log
        self._extra_headers = _CORS if options.enable_cors else []
        self._openapi_body: bytes | None = None
        self._budget = ByteBudget(options.max_buffered_body_bytes)
        self._oip = oip.OipRest(
            service,
            oip.OipOptions(options.timeout_s, infer.extensions(options.model_management)),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        start = time.perf_counter()
        status, route = await self._dispatch(scope, receive, send)
        if self._access_log is not None:
            self._access_log(
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - start) * 1e3,
                route.name if route else "",
                route.version if route else None,
                REST.value,
            )

    async def _dispatch(
        self, scope: Scope, receive: Receive, send: Send
    ) -> tuple[int, ModelRoute | None]:
        held = Reservation(self._budget)
        try:
            (status, payload, ctype, headers), route = await self._serve(scope, receive, held)
        finally:
            # The body and everything decoded from it are gone with _serve's frame: give the
            # bytes back before sending, so a client that does not read its answer holds none.
            held.release()
        await self._send(send, status, payload, ctype, headers)
        return status, route

    async def _serve(
        self, scope: Scope, receive: Receive, held: Reservation
    ) -> tuple[Reply, ModelRoute | None]:
        """The answer to one request (status, body, content type, extra headers)."""
        method, path = scope["method"], scope["path"]
        route: ModelRoute | None = None
        try:
            if method != "OPTIONS" and self._options.tokens.any and _guarded(path):
                self._authenticate(scope, method, path)
            if method == "OPTIONS":  # CORS preflight, before routing (as http_server.cc)
                status, payload = _preflight(scope)
                return (status, payload, JSON, []), None
            if path[:4].lower() == "/v1/":
                route = parse_v1(method, path)
                body = await self._body(scope, receive, held) if method == "POST" else b""
                status, payload = await self._model_call(route, body)
                return (status, payload, JSON, []), route
            if oip.is_oip(path):
                body = await self._body(scope, receive, held) if method == "POST" else b""
                reply = await self._oip.handle(method, path, _query(scope), _headers(scope), body)
                return reply, None
            return await self._other(scope, method, path), None
        except ServingError as exc:
            drop_traceback(exc)
            return (http_status(exc.code), json_encode.encode_error(exc.message), JSON, []), route
        except HttpError as exc:
            return (exc.status, json_encode.encode_error(exc.message), JSON, exc.headers), route
        except Exception as exc:
            log.exception("Unexpected error serving %s %s", method, path)
            drop_traceback(exc)
            message = f"Internal error: {type(exc).__name__}: {exc}"
            status = http_status(Code.INTERNAL)
            return (status, json_encode.encode_error(message), JSON, []), route

    async def _send(
        self, send: Send, status: int, body: bytes, ctype: bytes, extra: Headers | None = None
    ) -> None:
        headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": headers + self._extra_headers + (extra or []),
            }
        )
        await send({"type": "http.response.body", "body": body})

    # ---- /v1 ------------------------------------------------------------------------------
    async def _model_call(self, route: ModelRoute, body: bytes) -> tuple[int, bytes]:
        if route.action == "list":
            return 200, await self._list_models()
        model = ServableRequest(route.name, route.version, route.label)
        if route.action == "status":
            return 200, _proto_json(await self._service.model_status(model))
        if route.action == "metadata":
            return 200, await self._metadata(model)
        doc = await self._parse(body)
        if route.action == "predict":
            return 200, await self._predict(model, doc, heavy=len(body) > _OFFLOAD_BYTES)
        signature, request_input = json_examples.parse_examples(doc)
        timeout = self._options.timeout_s
        if route.action == "classify":
            cls = await self._service.classify(model, signature, request_input, REST, timeout)
            return 200, json_encode.encode_classify(cls.result)
        reg = await self._service.regress(model, signature, request_input, REST, timeout)
        return 200, json_encode.encode_regress(reg.result)

    async def _parse(self, body: bytes) -> Any:
        if len(body) > _OFFLOAD_BYTES:
            return await asyncio.get_running_loop().run_in_executor(None, json_decode.loads, body)
        return json_decode.loads(body)

    async def _predict(self, model: ServableRequest, doc: Any, heavy: bool) -> bytes:
        parsed = json_decode.parse_predict(doc)
        result = await self._run_predict(model, parsed, heavy)
        if heavy or _large(result.outputs):
            return await asyncio.get_running_loop().run_in_executor(
                None, json_encode.encode_predict, result.outputs, parsed.columnar
            )
        return json_encode.encode_predict(result.outputs, parsed.columnar)

    async def _run_predict(
        self, model: ServableRequest, parsed: json_decode.PredictBody, heavy: bool
    ) -> PredictResult:
        """JSON needs the signature's dtypes: decode for the signature the model has now,
        and once more if the call resolved to a different one (a swap in between)."""
        timeout = self._options.timeout_s
        try:
            spec = await self._service.signature(model, parsed.signature_name)
        except ServingError as exc:  # let the service raise it, so it is counted once
            call = PredictCall(model, parsed.signature_name, {}, decode_error=exc)
            return await self._service.predict(call, REST, timeout)
        for _attempt in range(2):
            call = await self._decode(model, parsed, spec, heavy)
            try:
                return await self._service.predict(call, REST, timeout)
            except SignatureChanged as changed:
                spec = changed.signature
        raise Unavailable(f"The signature of model {model.name} changed during the call; retry")

    async def _decode(
        self,
        model: ServableRequest,
        parsed: json_decode.PredictBody,
        spec: SignatureSpec,
        heavy: bool,
    ) -> PredictCall:
        try:
            if heavy:
                loop = asyncio.get_running_loop()
                inputs = await loop.run_in_executor(None, json_decode.decode_inputs, parsed, spec)
            else:
                inputs = json_decode.decode_inputs(parsed, spec)
        except ServingError as exc:
            return PredictCall(
                model, parsed.signature_name, {}, decoded_for=input_dtypes(spec), decode_error=exc
            )
        return PredictCall(model, parsed.signature_name, inputs, decoded_for=input_dtypes(spec))

    async def _metadata(self, model: ServableRequest) -> bytes:
        response = await self._service.metadata(model, ["signature_def"])
        spec = json_format.MessageToDict(
            response.model_spec,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
        sig_map = json_format.MessageToDict(
            _unpack_signature_map(response),
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
        return orjson.dumps({"model_spec": spec, "metadata": {"signature_def": sig_map}})

    async def _list_models(self) -> bytes:
        models = []
        for entry in await self._service.list_models():
            status = (
                _proto_dict(entry.status)
                if entry.status is not None
                else {"model_version_status": []}
            )
            models.append({"name": entry.name, **status})
        return orjson.dumps({"models": models})

    async def _body(self, scope: Scope, receive: Receive, held: Reservation) -> bytes:
        """The whole body, within ``max_body_bytes`` and ``body_timeout_s``, reserved in the
        process's body budget first (a gzip body: what it may inflate to)."""
        opts = self._options
        limit = opts.max_body_bytes
        headers = _headers(scope)
        declared = headers.get(b"content-length")
        # llhttp has checked it is digits; leading zeros may make it longer than int() takes
        length = int(declared.lstrip(b"0") or b"0") if declared and declared.isdigit() else None
        if length is not None and length > limit:
            raise HttpError(
                413,
                f"Request body of {length} bytes exceeds the limit of {limit} bytes "
                "(--rest_api_max_body_bytes)",
            )
        gzipped = b"gzip" in headers.get(b"content-encoding", b"").lower()
        try:
            async with asyncio.timeout(opts.body_timeout_s):
                if length is not None:
                    await held.take(min(limit, length * _DEFLATE_RATIO) if gzipped else length)
                body = await _read_body(receive, limit, None if length is not None else held)
        except TimeoutError:
            raise _body_timeout(opts.body_timeout_s, held.size == 0 and bool(length)) from None
        if gzipped:
            body = _gunzip(body, limit)
            if length is None and not held.try_take(len(body)):  # chunked: reserve what it became
                raise _buffers_full()
        return body

    # ---- authentication -------------------------------------------------------------------
    def _authenticate(self, scope: Scope, method: str, path: str) -> None:
        """HttpError 401 unless the bearer header, the dashboard cookie or (on the page's
        own URL) a ``token`` query parameter carries the token the call needs."""
        admin = method == "POST" and oip.changes_state(path)
        token = self._options.tokens.required(admin)
        if token is None:
            return
        headers = _headers(scope)
        presented = [
            auth.bearer(headers.get(b"authorization", b"").decode("latin-1")),
            auth.cookie_token(headers.get(b"cookie", b"").decode("latin-1")),
        ]
        if path == dashboard.PREFIX:
            presented.append(_query_token(scope))
        if not any(auth.matches(p, token) for p in presented):
            raise HttpError(
                401,
                auth.missing_message(path, admin),
                [(b"www-authenticate", b'Bearer realm="tensorserve"')],
            )

    # ---- everything else ------------------------------------------------------------------
    async def _other(self, scope: Scope, method: str, path: str) -> Reply:
        metrics_path = self._options.metrics_path
        if method == "GET":
            if metrics_path is not None and path == metrics_path:
                return 200, await self._service.scrape(), METRICS_CONTENT_TYPE.encode(), []
            if path == "/openapi.json":
                return 200, self._openapi(), JSON, []
            if self._options.dashboard and path.startswith("/dashboard"):
                return await self._dashboard(scope, path)
        return 404, json_encode.encode_error(f"Not found: {method} {path}"), JSON, []

    def _openapi(self) -> bytes:
        if self._openapi_body is None:
            doc = openapi.document(self._options.metrics_path, self._options.dashboard)
            self._openapi_body = orjson.dumps(doc)
        return self._openapi_body

    async def _dashboard(self, scope: Scope, path: str) -> Reply:
        if path == "/dashboard":
            return 308, b"", b"text/plain", [(b"location", dashboard.PREFIX.encode())]
        if path == dashboard.OVERVIEW:
            view = await self._service.overview()
            view["rest"] = {
                "pid": os.getpid(),
                "metrics_path": self._options.metrics_path,
                "auth": self._options.tokens.inference is not None,
            }
            return 200, orjson.dumps(view, option=orjson.OPT_NON_STR_KEYS), JSON, _NO_STORE
        token = self._options.tokens.inference
        if path == dashboard.PREFIX and token is not None and _query_token(scope) is not None:
            # authenticated with the token in the URL: keep it in a cookie for the page's
            # API calls, and take it out of the address bar
            cookie = f"{auth.COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict".encode()
            headers = [(b"location", dashboard.PREFIX.encode()), (b"set-cookie", cookie)]
            return 303, b"", b"text/plain", headers
        found = dashboard.asset(path)
        if found is None:
            return 404, json_encode.encode_error(f"Not found: GET {path}"), JSON, []
        body, ctype = found
        return 200, body, ctype, _NO_STORE


def _guarded(path: str) -> bool:
    """Everything but the health checks (server and model readiness) needs the token."""
    return path not in _OPEN_PATHS and parse_v2_ready(path) is None


def _query(scope: Scope) -> dict[str, str]:
    """The query string's parameters (the first value of each)."""
    parsed = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return {key: values[0] for key, values in parsed.items()}


def _query_token(scope: Scope) -> str | None:
    return _query(scope).get("token")


def _large(outputs: Mapping[str, Any]) -> bool:
    """Outputs big enough that JSON encoding belongs on a worker thread."""
    return sum(getattr(v, "size", 0) for v in outputs.values()) > _OFFLOAD_BYTES // 16


def _proto_dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(  # type: ignore[no-any-return]
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _proto_json(message: Any) -> bytes:
    return orjson.dumps(_proto_dict(message))


def _unpack_signature_map(response: Any) -> Any:
    from tensorflow_serving.apis import get_model_metadata_pb2

    sig_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(sig_map)
    return sig_map


def _headers(scope: Scope) -> Mapping[bytes, bytes]:
    return {k.lower(): v for k, v in scope["headers"]}


async def _read_body(receive: Receive, limit: int, held: Reservation | None) -> bytes:
    """Read to the end; ``held`` (a body of undeclared length) reserves chunk by chunk."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(499, "Client closed the connection")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HttpError(
                413,
                f"Request body exceeds the limit of {limit} bytes (--rest_api_max_body_bytes)",
            )
        if held is not None and not held.try_take(len(chunk)):
            raise _buffers_full()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _body_timeout(timeout_s: float, waited_for_budget: bool) -> HttpError:
    if waited_for_budget:
        return HttpError(
            429,
            f"The server could not take this request's body within {timeout_s:g} s: it is "
            "holding as many request bodies as --rest_api_max_buffered_body_bytes allows; "
            "retry later",
            [(b"connection", b"close"), (b"retry-after", b"1")],
        )
    return HttpError(
        408,
        f"Request body was not complete within {timeout_s:g} s of its headers; "
        "--rest_api_body_timeout_seconds raises the limit",
        [(b"connection", b"close")],
    )


def _buffers_full() -> HttpError:
    return HttpError(
        429,
        "The server is holding as many request bodies as --rest_api_max_buffered_body_bytes "
        "allows; retry later (or send a Content-Length, so the body waits its turn)",
        [(b"connection", b"close"), (b"retry-after", b"1")],
    )


def _gunzip(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidArgument(f"Request body is not valid gzip: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise HttpError(
            413,
            f"Decompressed request body exceeds the limit of {limit} bytes "
            "(--rest_api_max_body_bytes)",
        )
    return out


def _preflight(scope: Scope) -> tuple[int, bytes]:
    origin = _headers(scope).get(b"origin", b"")
    if origin.startswith((b"http://", b"https://")):
        return 200, b""
    error = ServingError("Origin header is missing in CORS preflight", Code.FAILED_PRECONDITION)
    return http_status(error.code), json_encode.encode_error(error.message)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
