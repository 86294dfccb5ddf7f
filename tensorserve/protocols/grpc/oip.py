"""``inference.GRPCInferenceService`` (the Open Inference Protocol over gRPC).

The stubs are the generated ones ``tritonclient`` ships (``tritonclient.grpc.service_pb2``).
Inputs arrive typed in ``contents`` or raw in ``raw_input_contents`` (one entry per input,
in order); outputs go back raw when the request came raw, as Triton answers (and FP16/BF16
always raw: ``InferTensorContents`` has no field for them), else in typed ``contents``.
Streaming inference, model configuration, shared memory, tracing and log settings are
not offered (UNIMPLEMENTED).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from google.protobuf import json_format
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tensorserve.errors import InvalidArgument
from tensorserve.protocols.grpc.servicers import _timeout
from tensorserve.protocols.oip import infer, tensors
from tensorserve.service.api import Entrypoint, ServiceAPI

Context: TypeAlias = grpc.aio.ServicerContext


def add_to_server(server: grpc.aio.Server, servicer: OipServicer) -> None:
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)


class OipServicer(service_pb2_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc]
    """Adapts each RPC onto ``ServiceAPI``; errors are ServingErrors (the interceptor maps)."""

    def __init__(self, service: ServiceAPI, extensions: tuple[str, ...]) -> None:
        self._service = service
        self._extensions = extensions

    async def ServerLive(self, request: Any, context: Context) -> Any:
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Context) -> Any:
        return service_pb2.ServerReadyResponse(ready=await self._service.ready())

    async def ModelReady(self, request: Any, context: Context) -> Any:
        model = infer.model_request(request.name, request.version)
        return service_pb2.ModelReadyResponse(ready=await infer.model_ready(self._service, model))

    async def ServerMetadata(self, request: Any, context: Context) -> Any:
        return service_pb2.ServerMetadataResponse(**infer.server_metadata(self._extensions))

    async def ModelMetadata(self, request: Any, context: Context) -> Any:
        model = infer.model_request(request.name, request.version)
        doc = await infer.model_metadata(self._service, model, {})
        doc.pop("parameters")
        return json_format.ParseDict(doc, service_pb2.ModelMetadataResponse())

    async def ModelInfer(self, request: Any, context: Context) -> Any:
        decoded, raw = decode_request(request)
        answer = await infer.run(self._service, decoded, Entrypoint.OIP_GRPC, _timeout(context))
        return encode_answer(answer, raw)

    async def ModelStatistics(self, request: Any, context: Context) -> Any:
        version = infer.stats_version(request.version)
        stats = await self._service.statistics(request.name, version)
        return json_format.ParseDict({"model_stats": stats}, service_pb2.ModelStatisticsResponse())

    async def RepositoryIndex(self, request: Any, context: Context) -> Any:
        index = await self._service.repository_index()
        if request.ready:
            index = [m for m in index if m.get("state") == "READY"]
        return json_format.ParseDict({"models": index}, service_pb2.RepositoryIndexResponse())

    async def RepositoryModelLoad(self, request: Any, context: Context) -> Any:
        await self._service.repository_load(request.model_name, _parameters(request.parameters))
        return service_pb2.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request: Any, context: Context) -> Any:
        await self._service.repository_unload(request.model_name, _parameters(request.parameters))
        return service_pb2.RepositoryModelUnloadResponse()


def _parameters(parameters: Any) -> dict[str, Any]:
    """InferParameter / ModelRepositoryParameter maps as plain values."""
    out: dict[str, Any] = {}
    for key, value in parameters.items():
        choice = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, choice) if choice else None
    return out


def decode_request(request: Any) -> tuple[infer.InferRequest, bool]:
    """The request as an InferRequest, and whether its inputs came raw."""
    model = infer.model_request(request.model_name, request.model_version)
    raw_inputs = list(request.raw_input_contents)
    if raw_inputs and len(raw_inputs) != len(request.inputs):
        raise InvalidArgument(
            f"raw_input_contents has {len(raw_inputs)} entries for {len(request.inputs)} "
            "inputs; expected one per input, in order"
        )
    if not request.inputs:
        raise InvalidArgument("The request has no inputs; expected the signature's inputs")
    inputs = {}
    for i, tensor in enumerate(request.inputs):
        name = tensor.name
        if name in inputs:
            raise InvalidArgument(f"Input '{name}' appears more than once")
        shape = tensors.check_shape(name, list(tensor.shape))
        if raw_inputs:
            inputs[name] = tensors.from_binary(
                name, tensor.datatype, shape, memoryview(raw_inputs[i])
            )
        else:
            inputs[name] = tensors.from_contents(name, tensor.datatype, shape, tensor.contents)
    parameters = _parameters(request.parameters)
    outputs = tuple(infer.RequestedOutput(o.name) for o in request.outputs)
    return (
        infer.InferRequest(
            model,
            inputs,
            request.id,
            infer.signature_of(parameters),
            outputs,
            bool(raw_inputs),
        ),
        bool(raw_inputs),
    )


def encode_answer(answer: infer.InferAnswer, raw: bool) -> Any:
    response = service_pb2.ModelInferResponse(
        model_name=answer.model_name, model_version=answer.model_version, id=answer.request_id
    )
    outputs = [(out, response.outputs.add()) for out in answer.outputs]
    typed = not raw and all(tensors.CONTENTS_FIELD.get(o.datatype) for o, _ in outputs)
    for out, tensor in outputs:
        tensor.name = out.name
        tensor.datatype = out.datatype
        tensor.shape.extend(out.shape)
        if typed:
            tensors.fill_contents(out.array, out.datatype, tensor.contents)
        else:
            response.raw_output_contents.append(tensors.to_binary(out.array))
    return response
