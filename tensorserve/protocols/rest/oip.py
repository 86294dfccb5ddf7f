"""The Open Inference Protocol's REST binding (``/v2``), beside TF Serving's ``/v1``.

Health, server and model metadata, readiness, ``infer`` (JSON and Triton's binary tensor
extension: ``Inference-Header-Content-Length`` splits a JSON header from raw tensor bytes),
statistics and the model repository. Everything goes through ``ServiceAPI``; errors are
``ServingError`` and become ``{"error": ...}`` with the one REST status table.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from tensorserve.core.ids import ServableRequest
from tensorserve.errors import FailedPrecondition, InvalidArgument, NotFound
from tensorserve.protocols.oip import infer, tensors
from tensorserve.protocols.rest import json_decode, json_encode
from tensorserve.service.api import Entrypoint, ServiceAPI

JSON = b"application/json"
BINARY = b"application/octet-stream"
HEADER_LENGTH = b"inference-header-content-length"
Reply = tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]
_MODEL = re.compile(
    r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
    r"(?:/(?P<action>ready|infer|stats))?$"
)
_REPOSITORY = re.compile(r"^/v2/repository/models/(?P<name>[^/]+)/(?P<action>load|unload)$")
_OFFLOAD_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class OipOptions:
    timeout_s: float | None
    extensions: tuple[str, ...]


def is_oip(path: str) -> bool:
    return path == "/v2" or path.startswith("/v2/")


def changes_state(path: str) -> bool:
    """A repository load or unload (POST): the calls ``--admin_token_file`` guards."""
    return _REPOSITORY.match(path) is not None


class OipRest:
    """``handle(method, path, query, headers, body)`` -> (status, body, content type, headers)."""

    def __init__(self, service: ServiceAPI, options: OipOptions) -> None:
        self._service = service
        self._options = options

    async def handle(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[bytes, bytes],
        body: bytes,
    ) -> Reply:
        if method == "GET":
            if path in ("/v2", "/v2/"):
                return _json(infer.server_metadata(self._options.extensions))
            if path == "/v2/health/live":
                return 200, b'{"live":true}', JSON, []
            if path == "/v2/health/ready":
                ready = await self._service.ready()
                return (200 if ready else 503), orjson.dumps({"ready": ready}), JSON, []
            if path == "/v2/models/stats":
                return _json({"model_stats": await self._service.statistics("", None)})
        if method == "POST" and path.startswith("/v2/repository/"):
            return await self._repository(path, body)
        match = _MODEL.match(path)
        if match is None or method != ("POST" if match.group("action") == "infer" else "GET"):
            raise NotFound(f"Not found: {method} {path}")
        name, version = match.group("name"), match.group("version") or ""
        model = infer.model_request(name, version)
        action = match.group("action")
        if action == "infer":
            return await self._infer(model, headers, body)
        if action == "ready":
            ready = await infer.model_ready(self._service, model)
            return (200 if ready else 503), orjson.dumps({"name": name, "ready": ready}), JSON, []
        if action == "stats":
            stats = await self._service.statistics(name, infer.stats_version(version))
            return _json({"model_stats": stats})
        return _json(await infer.model_metadata(self._service, model, query))

    # ---- infer ----------------------------------------------------------------------------
    async def _infer(
        self, model: ServableRequest, headers: Mapping[bytes, bytes], body: bytes
    ) -> Reply:
        heavy = len(body) > _OFFLOAD_BYTES
        if heavy:
            loop = asyncio.get_running_loop()
            request = await loop.run_in_executor(None, decode_request, model, headers, body)
        else:
            request = decode_request(model, headers, body)
        answer = await infer.run(
            self._service, request, Entrypoint.OIP_REST, self._options.timeout_s
        )
        if heavy or sum(o.array.size for o in answer.outputs) > _OFFLOAD_BYTES // 16:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, encode_answer, answer)
        return encode_answer(answer)

    # ---- repository -----------------------------------------------------------------------
    async def _repository(self, path: str, body: bytes) -> Reply:
        doc = _object(body, "repository request") if body.strip() else {}
        if path == "/v2/repository/index":
            ready_only = doc.get("ready", False)
            if not isinstance(ready_only, bool):
                raise InvalidArgument(f"'ready' is {ready_only!r}; expected true or false")
            index = await self._service.repository_index()
            if ready_only:
                index = [m for m in index if m.get("state") == "READY"]
            return _json(index)
        match = _REPOSITORY.match(path)
        if match is None:
            raise NotFound(f"Not found: POST {path}")
        parameters = doc.get("parameters", {})
        if not isinstance(parameters, dict):
            raise InvalidArgument(f"'parameters' is {parameters!r}; expected a JSON object")
        try:
            if match.group("action") == "load":
                await self._service.repository_load(match.group("name"), parameters)
            else:
                await self._service.repository_unload(match.group("name"), parameters)
        except FailedPrecondition as exc:  # the model list is not this API's to change
            return 409, orjson.dumps({"error": exc.message}), JSON, []
        return 200, b"", JSON, []


def _json(doc: Any) -> Reply:
    return 200, orjson.dumps(doc), JSON, []


def _object(raw: bytes | memoryview, what: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:  # NaN/Infinity tokens, or the error in TF Serving's words
        doc = json_decode.loads(bytes(raw))
    if not isinstance(doc, dict):
        raise InvalidArgument(f"The {what} is a JSON {type(doc).__name__}; expected an object")
    return doc


# ---- codec ----------------------------------------------------------------------------------
def decode_request(
    model: ServableRequest, headers: Mapping[bytes, bytes], body: bytes
) -> infer.InferRequest:
    """An infer body (JSON, or JSON header + binary tensors) as an InferRequest."""
    view = memoryview(body)
    declared = headers.get(HEADER_LENGTH)
    if declared is None:
        header_end = len(body)
    else:
        text = declared.decode("latin-1").strip()
        if not text.isdigit() or int(text) > len(body):
            raise InvalidArgument(
                f"Inference-Header-Content-Length is '{text}'; expected the byte length of "
                f"the JSON header, at most the body's {len(body)} bytes"
            )
        header_end = int(text)
    doc = _object(view[:header_end], "inference request")
    binary = view[header_end:]
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidArgument("'inputs' is missing or empty; expected a list of input tensors")
    parameters = _parameters(doc.get("parameters"), "request")
    inputs: dict[str, Any] = {}
    offset = 0
    for entry in raw_inputs:
        name, array, used = _input(entry, binary, offset)
        if name in inputs:
            raise InvalidArgument(f"Input '{name}' appears more than once")
        inputs[name] = array
        offset += used
    if offset != len(binary):
        raise InvalidArgument(
            f"The body has {len(binary) - offset} bytes of binary data that no input's "
            "binary_data_size accounts for"
        )
    request_id = doc.get("id", "")
    if not isinstance(request_id, str):
        raise InvalidArgument(f"'id' is {request_id!r}; expected a string")
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise InvalidArgument(f"'binary_data_output' is {binary_default!r}; expected a boolean")
    return infer.InferRequest(
        model,
        inputs,
        request_id,
        infer.signature_of(parameters),
        _outputs(doc.get("outputs")),
        binary_default,
    )


def _parameters(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidArgument(f"The {where} 'parameters' is {raw!r}; expected a JSON object")
    return raw


def _input(entry: Any, binary: memoryview, offset: int) -> tuple[str, Any, int]:
    if not isinstance(entry, dict):
        raise InvalidArgument(f"An input is {entry!r}; expected an object with name, shape, "
                              "datatype and data")  # fmt: skip
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument("An input has no 'name'; expected the signature's input name")
    datatype = entry.get("datatype")
    if not isinstance(datatype, str):
        raise InvalidArgument(
            f"Input '{name}' has no 'datatype'; expected one of {tensors.DATATYPES}"
        )
    shape = tensors.check_shape(name, entry.get("shape"))
    parameters = _parameters(entry.get("parameters"), f"input '{name}'")
    size = parameters.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidArgument(
                f"Input '{name}' binary_data_size is {size!r}; expected a byte count"
            )
        if offset + size > len(binary):
            raise InvalidArgument(
                f"Input '{name}' declares {size} bytes of binary data but only "
                f"{len(binary) - offset} follow the JSON header"
            )
        raw = binary[offset : offset + size]
        return name, tensors.from_binary(name, datatype, shape, raw), size
    if "data" not in entry:
        raise InvalidArgument(
            f"Input '{name}' has no 'data'; expected a list of values or a "
            "binary_data_size parameter"
        )
    return name, tensors.from_json(name, datatype, shape, entry["data"]), 0


def _outputs(raw: Any) -> tuple[infer.RequestedOutput, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidArgument(f"'outputs' is {raw!r}; expected a list of requested outputs")
    out = []
    for entry in raw:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f'A requested output is {entry!r}; expected {{"name": ...}}')
        parameters = _parameters(entry.get("parameters"), f"output '{name}'")
        if parameters.get("classification"):
            raise InvalidArgument(
                f"Output '{name}' asks for the classification extension, which this server "
                "does not offer; request the output's values and rank them client-side"
            )
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise InvalidArgument(f"Output '{name}' binary_data is {binary!r}; expected a boolean")
        out.append(infer.RequestedOutput(name, binary))
    return tuple(out)


def _data(array: Any) -> Any:
    """An output's JSON ``data``; NaN and infinities as the bare tokens /v1 writes too."""
    data = tensors.to_json(array)
    if isinstance(data, np.ndarray) and data.dtype.kind == "f" and not np.isfinite(data).all():
        return orjson.Fragment(json_encode.nonfinite_text(data))
    return data


def encode_answer(answer: infer.InferAnswer) -> Reply:
    """The JSON answer, or JSON header + binary outputs when any output travels binary."""
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for out in answer.outputs:
        entry: dict[str, Any] = {"name": out.name, "datatype": out.datatype, "shape": out.shape}
        if out.binary:
            raw = tensors.to_binary(out.array)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = _data(out.array)
        outputs.append(entry)
    doc: dict[str, Any] = {"model_name": answer.model_name, "model_version": answer.model_version}
    if answer.request_id:
        doc["id"] = answer.request_id
    doc["outputs"] = outputs
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return 200, header, JSON, []
    length = [(HEADER_LENGTH, str(len(header)).encode())]
    return 200, b"".join([header, *chunks]), BINARY, length
