"""PredictionService and ModelService over grpc.aio: thin adapters onto a ``ServiceAPI``.

Requests arrive parsed as the official ``tensorflow_serving.apis`` protos; each
method decodes what the service needs, awaits it, and encodes the response.
Parsing, error mapping and access logging happen once, in ``interceptor.py``.
"""

from __future__ import annotations

from typing import Any, TypeVar

import grpc
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

from tensorserve.errors import Code, FailedPrecondition, ServingError
from tensorserve.service import tensors
from tensorserve.service.api import (
    Entrypoint,
    PredictCall,
    PredictResult,
    ServiceAPI,
    request_from_spec,
)

R = TypeVar("R")
GRPC = Entrypoint.GRPC
NOT_A_CONFIG_LIST = (
    "Cannot transition to requested config. It is only legal to transition from one "
    "ModelConfigList to another."
)  # ServerCore::ReloadConfig: an empty or custom config after the first one


def _timeout(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return remaining if remaining is not None and remaining < 1e9 else None


def _spec(spec: Any, version: int, signature: str) -> None:
    spec.version.value = version
    spec.signature_name = signature


def predict_call(request: predict_pb2.PredictRequest) -> PredictCall:
    """The request as a PredictCall. A malformed tensor is carried as ``decode_error`` and
    raised once the model and signature are resolved (TF Serving's order), so that it does
    not hide an unknown model, label or signature."""
    model = request_from_spec(request.model_spec)
    try:
        inputs = tensors.inputs_to_numpy(request.inputs)
    except ServingError as exc:
        return PredictCall(model, request.model_spec.signature_name, {}, decode_error=exc)
    return PredictCall(
        model, request.model_spec.signature_name, inputs, tuple(request.output_filter)
    )


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``tensorflow.serving.PredictionService``."""

    def __init__(self, service: ServiceAPI, tensor_content_outputs: bool = False) -> None:
        self._service = service
        self._as_content = tensor_content_outputs

    async def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> predict_pb2.PredictResponse:
        result = await self._service.predict(predict_call(request), GRPC, _timeout(context))
        return self._response(request, result)

    def _response(
        self, request: predict_pb2.PredictRequest, result: PredictResult
    ) -> predict_pb2.PredictResponse:
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        _spec(response.model_spec, result.version, result.signature_name)
        outputs = response.outputs
        for key, value in result.outputs.items():
            dtype = result.output_dtypes[key]
            tensors.fill(outputs[key], value, dtype, as_content=self._as_content)
        return response

    async def Classify(
        self, request: classification_pb2.ClassificationRequest, context: grpc.aio.ServicerContext
    ) -> classification_pb2.ClassificationResponse:
        spec = request.model_spec
        answer = await self._service.classify(
            request_from_spec(spec), spec.signature_name, request.input, GRPC, _timeout(context)
        )
        return _examples_response(classification_pb2.ClassificationResponse(), spec, answer)

    async def Regress(
        self, request: regression_pb2.RegressionRequest, context: grpc.aio.ServicerContext
    ) -> regression_pb2.RegressionResponse:
        spec = request.model_spec
        answer = await self._service.regress(
            request_from_spec(spec), spec.signature_name, request.input, GRPC, _timeout(context)
        )
        return _examples_response(regression_pb2.RegressionResponse(), spec, answer)

    async def MultiInference(
        self, request: inference_pb2.MultiInferenceRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.MultiInferenceResponse:
        return await self._service.multi_inference(request, GRPC, _timeout(context))

    async def GetModelMetadata(
        self,
        request: get_model_metadata_pb2.GetModelMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return await self._service.metadata(
            request_from_spec(request.model_spec), list(request.metadata_field)
        )


def _examples_response(response: R, spec: Any, answer: Any) -> R:
    """Fill a Classify/Regress response: the result and the resolved model_spec."""
    response.result.CopyFrom(answer.result)  # type: ignore[attr-defined]
    response.model_spec.name = spec.name  # type: ignore[attr-defined]
    _spec(response.model_spec, answer.version, answer.signature_name)  # type: ignore[attr-defined]
    return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService``."""

    def __init__(self, service: ServiceAPI) -> None:
        self._service = service

    async def GetModelStatus(
        self,
        request: get_model_status_pb2.GetModelStatusRequest,
        context: grpc.aio.ServicerContext,
    ) -> get_model_status_pb2.GetModelStatusResponse:
        return await self._service.model_status(request_from_spec(request.model_spec))

    async def HandleReloadConfigRequest(
        self,
        request: model_management_pb2.ReloadConfigRequest,
        context: grpc.aio.ServicerContext,
    ) -> model_management_pb2.ReloadConfigResponse:
        if not request.config.HasField("model_config_list"):
            raise FailedPrecondition(NOT_A_CONFIG_LIST)
        await self._service.reload_config(request.config)
        response = model_management_pb2.ReloadConfigResponse()
        response.status.error_code = int(Code.OK)  # type: ignore[assignment]
        return response
