"""PredictionService and ModelService over grpc.aio: thin adapters onto ``Service``.

Requests arrive as the official ``tensorflow_serving.apis`` protos; each method
decodes what the service needs, awaits it, and encodes the response. Errors
are mapped in one place (:func:`_abort`), with ``protocols/grpc/status.py``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import numpy as np
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tensorserve import logs
from tensorserve.errors import Code, FailedPrecondition, ServingError
from tensorserve.protocols.grpc.status import grpc_code, grpc_message
from tensorserve.servable import SignatureSpec
from tensorserve.service import tensors
from tensorserve.service.predict import PredictCall, PredictResult
from tensorserve.service.service import GRPC, Service, request_from_spec

T = TypeVar("T")
R = TypeVar("R")
NOT_A_CONFIG_LIST = (
    "Cannot transition to requested config. It is only legal to transition from one "
    "ModelConfigList to another."
)  # ServerCore::ReloadConfig: an empty or custom config after the first one
ReloadFn = Callable[[Any], Awaitable[None]]


async def _guard(context: grpc.aio.ServicerContext, work: Awaitable[T], rpc: str, model: str) -> T:
    """Await ``work``; map a ServingError to its gRPC status; write the access log line."""
    start = time.perf_counter()
    code = Code.OK
    try:
        return await work
    except ServingError as exc:
        code = exc.code
        await context.abort(grpc_code(exc.code), grpc_message(exc.message))
    finally:
        logs.access_log(
            rpc,
            _RPC_PATHS.get(rpc, rpc),
            int(code),
            (time.perf_counter() - start) * 1e3,
            model,
            None,
            GRPC,
        )
    raise AssertionError("unreachable")  # abort() always raises


_RPC_PATHS = {
    **{
        m: f"/tensorflow.serving.PredictionService/{m}"
        for m in ("Predict", "Classify", "Regress", "MultiInference", "GetModelMetadata")
    },
    "GetModelStatus": "/tensorflow.serving.ModelService/GetModelStatus",
}


def _timeout(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return remaining if remaining is not None and remaining < 1e9 else None


def _spec(spec: Any, version: int, signature: str) -> None:
    spec.version.value = version
    spec.signature_name = signature


def _decoder(
    request: predict_pb2.PredictRequest,
) -> Callable[[SignatureSpec], dict[str, np.ndarray]]:
    """Decode the inputs once the model and signature are resolved (TF Serving's order), so
    that a malformed tensor does not hide an unknown model, label or signature."""
    return lambda _signature: tensors.inputs_to_numpy(request.inputs)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``tensorflow.serving.PredictionService``."""

    def __init__(self, service: Service, tensor_content_outputs: bool = False) -> None:
        self._service = service
        self._as_content = tensor_content_outputs

    async def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> predict_pb2.PredictResponse:
        return await _guard(
            context, self._predict(request, _timeout(context)), "Predict", request.model_spec.name
        )

    async def _predict(
        self, request: predict_pb2.PredictRequest, timeout: float | None
    ) -> predict_pb2.PredictResponse:
        call = PredictCall(
            request_from_spec(request.model_spec),
            request.model_spec.signature_name,
            _decoder(request),
            tuple(request.output_filter),
        )
        result = await self._service.predict(call, GRPC, timeout)
        return self._response(request, result)

    def _response(
        self, request: predict_pb2.PredictRequest, result: PredictResult
    ) -> predict_pb2.PredictResponse:
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        _spec(response.model_spec, result.version, result.signature_name)
        outputs = response.outputs
        for key, value in result.outputs.items():
            dtype = result.signature.outputs[key].dtype
            outputs[key].CopyFrom(tensors.from_numpy(value, dtype, as_content=self._as_content))
        return response

    async def Classify(
        self, request: classification_pb2.ClassificationRequest, context: grpc.aio.ServicerContext
    ) -> classification_pb2.ClassificationResponse:
        work = self._examples(
            self._service.classify, request, classification_pb2.ClassificationResponse(), context
        )
        return await _guard(context, work, "Classify", request.model_spec.name)

    async def Regress(
        self, request: regression_pb2.RegressionRequest, context: grpc.aio.ServicerContext
    ) -> regression_pb2.RegressionResponse:
        work = self._examples(
            self._service.regress, request, regression_pb2.RegressionResponse(), context
        )
        return await _guard(context, work, "Regress", request.model_spec.name)

    async def _examples(
        self, call: Any, request: Any, response: R, context: grpc.aio.ServicerContext
    ) -> R:
        """Classify or Regress: run ``call`` and fill ``response`` (result + model_spec)."""
        spec = request.model_spec
        result, version, signature = await call(
            request_from_spec(spec), spec.signature_name, request.input, GRPC, _timeout(context)
        )
        response.result.CopyFrom(result)  # type: ignore[attr-defined]
        response.model_spec.name = spec.name  # type: ignore[attr-defined]
        _spec(response.model_spec, version, signature)  # type: ignore[attr-defined]
        return response

    async def MultiInference(
        self, request: inference_pb2.MultiInferenceRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.MultiInferenceResponse:
        model = request.tasks[0].model_spec.name if request.tasks else ""
        return await _guard(
            context,
            self._service.multi_inference(request, GRPC, _timeout(context)),
            "MultiInference",
            model,
        )

    async def GetModelMetadata(
        self,
        request: get_model_metadata_pb2.GetModelMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        async def work() -> get_model_metadata_pb2.GetModelMetadataResponse:
            return self._service.metadata(
                request_from_spec(request.model_spec), list(request.metadata_field)
            )

        return await _guard(context, work(), "GetModelMetadata", request.model_spec.name)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService``."""

    def __init__(self, service: Service, reload: ReloadFn) -> None:
        self._service = service
        self._reload = reload

    async def GetModelStatus(
        self,
        request: get_model_status_pb2.GetModelStatusRequest,
        context: grpc.aio.ServicerContext,
    ) -> get_model_status_pb2.GetModelStatusResponse:
        async def work() -> get_model_status_pb2.GetModelStatusResponse:
            model = request_from_spec(request.model_spec)
            if model.label is not None:
                model = self._service.core.resolve(model)
            return self._service.model_status(model.name, model.version)

        return await _guard(context, work(), "GetModelStatus", request.model_spec.name)

    async def HandleReloadConfigRequest(
        self,
        request: model_management_pb2.ReloadConfigRequest,
        context: grpc.aio.ServicerContext,
    ) -> model_management_pb2.ReloadConfigResponse:
        response = model_management_pb2.ReloadConfigResponse()
        try:
            if not request.config.HasField("model_config_list"):
                raise FailedPrecondition(NOT_A_CONFIG_LIST)
            await self._reload(request.config)
        except ServingError as exc:
            response.status.error_code = int(exc.code)  # type: ignore[assignment]
            response.status.error_message = exc.message
            await context.abort(grpc_code(exc.code), grpc_message(exc.message))
        response.status.error_code = int(Code.OK)  # type: ignore[assignment]
        return response
