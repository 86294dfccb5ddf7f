"""RemoteService: the ``ServiceAPI`` of a protocol worker, forwarded to the model process.

One connection per worker carries every call, multiplexed by request id.
While the model process is away (restarting), calls fail at once with
UNAVAILABLE and readiness is false; the connection is re-established in the
background. The Predict signatures that REST decoding needs are cached here
and refreshed when the model process answers ``SignatureChanged``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    input_pb2,
)

from tensorserve.core.ids import ServableRequest
from tensorserve.errors import DeadlineExceeded, Unavailable
from tensorserve.ipc import protocol, wire
from tensorserve.ipc.channel import Channel
from tensorserve.servable import SignatureSpec
from tensorserve.service.api import (
    Entrypoint,
    ExamplesResult,
    ModelEntry,
    PredictCall,
    PredictResult,
    ReadinessListener,
    SignatureChanged,
)

log = logging.getLogger(__name__)
MODEL_PROCESS_DOWN = (
    "The model process is not available (it is restarting and reloading the models); retry shortly"
)
_RECONNECT_S = 0.05
_CONTROL_TIMEOUT_S = 60.0
_SLACK_S = 5.0  # the model process enforces the computation's timeout; this bounds the wait
_CACHE_LIMIT = 4096
SignatureKey = tuple[str, int | None, str | None, str]


class RemoteService:
    """Implements ``service.api.ServiceAPI`` over the model process's Unix socket."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._channel: Channel | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._listeners: list[ReadinessListener] = []
        self._ready = False
        self._signatures: dict[SignatureKey, SignatureSpec] = {}
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._closed = False

    # ---- connection -----------------------------------------------------------------------
    async def connect(self) -> None:
        """Start the connection loop; returns once connected the first time."""
        self._runner = asyncio.create_task(self._run())
        await self._connected.wait()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            try:
                _transport, channel = await loop.create_unix_connection(
                    lambda: Channel(self._on_frame, self._on_lost), self._path
                )
            except OSError:
                await asyncio.sleep(_RECONNECT_S)
                continue
            self._channel = channel
            self._connected.set()
            await self._lost.wait()
            self._lost.clear()

    def _on_lost(self, channel: Channel) -> None:
        if channel is not self._channel:
            return
        self._channel = None
        self._connected.clear()
        self._signatures.clear()
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(Unavailable(MODEL_PROCESS_DOWN))
        self._set_ready(False)
        if not self._closed:
            log.warning("Lost the model process; answering UNAVAILABLE until it is back")
        self._lost.set()

    def _on_frame(self, rid: int, kind: int, meta: Any, body: Any, offset: int) -> None:
        if kind == wire.EVENT:
            if meta[0] == protocol.READINESS:
                self._set_ready(bool(meta[1]))
            return
        future = self._pending.pop(rid, None)
        if future is not None and not future.done():
            future.set_result((kind, meta, body, offset))

    def _set_ready(self, ready: bool) -> None:
        self._ready = ready
        for listener in self._listeners:
            listener(ready)

    async def close(self) -> None:
        self._closed = True
        if self._channel is not None:
            self._channel.close()
        if self._runner is not None:
            self._runner.cancel()

    async def _roundtrip(
        self, meta: Any, buffers: list[memoryview] | None, timeout_s: float | None
    ) -> tuple[Any, Any, int]:
        channel = self._channel
        if channel is None or not channel.open:
            raise Unavailable(MODEL_PROCESS_DOWN)
        rid = next(self._ids) & 0xFFFFFFFF or next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        channel.send(rid, wire.CALL, meta, buffers)
        try:
            async with asyncio.timeout(timeout_s):
                kind, reply, body, offset = await future
        except TimeoutError:
            raise DeadlineExceeded("Deadline Exceeded") from None
        finally:
            self._pending.pop(rid, None)
        if kind == wire.ERROR:
            raise reply
        return reply, body, offset

    async def _call(
        self, method: str, *args: Any, timeout_s: float | None = _CONTROL_TIMEOUT_S
    ) -> Any:
        reply, _body, _offset = await self._roundtrip((method, args), None, timeout_s)
        return reply

    # ---- ServiceAPI -----------------------------------------------------------------------
    async def predict(
        self, call: PredictCall, entrypoint: Entrypoint, timeout_s: float | None = None
    ) -> PredictResult:
        meta, buffers = protocol.predict_request(call, entrypoint, timeout_s)
        wait = None if timeout_s is None else timeout_s + _SLACK_S
        try:
            reply, body, offset = await self._roundtrip(meta, buffers, wait)
        except SignatureChanged as changed:
            self._remember(_key(call.model, call.signature_name), changed.signature)
            raise
        return protocol.read_predict_reply(reply, body, offset)

    async def signature(self, model: ServableRequest, signature_name: str) -> SignatureSpec:
        key = _key(model, signature_name)
        spec = self._signatures.get(key)
        if spec is None:
            spec = await self._call("signature", model, signature_name)
            self._remember(key, spec)
        return spec

    def _remember(self, key: SignatureKey, spec: SignatureSpec) -> None:
        if len(self._signatures) >= _CACHE_LIMIT:
            self._signatures.clear()
        self._signatures[key] = spec

    async def classify(
        self,
        model: ServableRequest,
        signature_name: str,
        request_input: input_pb2.Input,
        entrypoint: Entrypoint,
        timeout_s: float | None = None,
    ) -> ExamplesResult:
        args = (model, signature_name, request_input, entrypoint, timeout_s)
        return await self._call("classify", *args, timeout_s=_wait(timeout_s))  # type: ignore[no-any-return]

    async def regress(
        self,
        model: ServableRequest,
        signature_name: str,
        request_input: input_pb2.Input,
        entrypoint: Entrypoint,
        timeout_s: float | None = None,
    ) -> ExamplesResult:
        args = (model, signature_name, request_input, entrypoint, timeout_s)
        return await self._call("regress", *args, timeout_s=_wait(timeout_s))  # type: ignore[no-any-return]

    async def multi_inference(
        self,
        request: inference_pb2.MultiInferenceRequest,
        entrypoint: Entrypoint,
        timeout_s: float | None = None,
    ) -> inference_pb2.MultiInferenceResponse:
        args = (request, entrypoint, timeout_s)
        return await self._call("multi_inference", *args, timeout_s=_wait(timeout_s))  # type: ignore[no-any-return]

    async def metadata(
        self, model: ServableRequest, fields: Sequence[str]
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return await self._call("metadata", model, list(fields))  # type: ignore[no-any-return]

    async def model_status(
        self, model: ServableRequest
    ) -> get_model_status_pb2.GetModelStatusResponse:
        return await self._call("model_status", model)  # type: ignore[no-any-return]

    async def list_models(self) -> list[ModelEntry]:
        return await self._call("list_models")  # type: ignore[no-any-return]

    async def ready(self) -> bool:
        if self._channel is None:
            return False
        return bool(await self._call("ready"))

    async def model_ready(self, name: str, version: int | None) -> bool | None:
        if self._channel is None:
            return False
        return await self._call("model_ready", name, version)  # type: ignore[no-any-return]

    async def reload_config(self, config: Any) -> None:
        await self._call("reload_config", config, timeout_s=None)

    async def scrape(self) -> bytes:
        return await self._call("scrape")  # type: ignore[no-any-return]

    async def overview(self) -> dict[str, Any]:
        return await self._call("overview")  # type: ignore[no-any-return]

    async def profiler_port(self) -> int:
        return await self._call("profiler_port")  # type: ignore[no-any-return]

    async def statistics(self, name: str, version: int | None) -> list[dict[str, Any]]:
        return await self._call("statistics", name, version)  # type: ignore[no-any-return]

    async def repository_index(self) -> list[dict[str, Any]]:
        return await self._call("repository_index")  # type: ignore[no-any-return]

    async def repository_load(self, name: str, parameters: Mapping[str, Any]) -> None:
        await self._call("repository_load", name, dict(parameters), timeout_s=None)

    async def repository_unload(self, name: str, parameters: Mapping[str, Any]) -> None:
        await self._call("repository_unload", name, dict(parameters), timeout_s=None)

    def on_readiness(self, listener: ReadinessListener) -> None:
        self._listeners.append(listener)
        listener(self._ready)


def _key(model: ServableRequest, signature_name: str) -> SignatureKey:
    return (model.name, model.version, model.label, signature_name)


def _wait(timeout_s: float | None) -> float | None:
    return None if timeout_s is None else timeout_s + _SLACK_S
