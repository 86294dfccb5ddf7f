"""The one request path: every REST and gRPC call ends up in :class:`Service`.

Protocols decode their wire format into the values of ``service/api.py`` and
encode what comes back; they never touch the manager, servables or TensorFlow.
In a multi-process server this object lives in the model process and protocol
workers reach it through ``ipc/``. Here each
call resolves the model (name + version or label), holds the servable for the
call's length, validates, runs the signature on the compute executor (never
on the event loop), records metrics once, and raises only ``ServingError``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol, TypeVar

import numpy as np
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    input_pb2,
    prediction_log_pb2,
)

from tensorserve.config.models import ModelConfig
from tensorserve.core.handle import ServableHandle
from tensorserve.core.ids import ServableRequest
from tensorserve.core.server_core import ServerCore
from tensorserve.core.states import VersionStatus
from tensorserve.errors import (
    Code,
    Internal,
    InvalidArgument,
    NotFound,
    ServingError,
    Unavailable,
    Unimplemented,
)
from tensorserve.servable import SignatureSpec
from tensorserve.service import examples, request_logging
from tensorserve.service.api import (
    Entrypoint,
    ExamplesResult,
    ModelEntry,
    PredictCall,
    PredictResult,
    ReadinessListener,
    SignatureChanged,
    input_dtypes,
    request_from_spec,
)
from tensorserve.service.dispatch import Dispatcher
from tensorserve.service.examples import CLASSIFY, REGRESS, ExamplesApi
from tensorserve.service.predict import check_inputs, check_size, output_keys, select_signature
from tensorserve.service.repository import ModelRepository

T = TypeVar("T")
log = logging.getLogger(__name__)


class RequestMetrics(Protocol):
    """What the service records per call (``metrics.registry.Metrics`` implements it)."""

    def record_request(
        self,
        model: str,
        api: str,
        entrypoint: str,
        code: Code,
        latency_us: float,
        version: int | None = None,
        signature: str = "",
        items: int = 0,
    ) -> None: ...

    def record_runtime(
        self,
        model: str,
        api: str,
        latency_us: float,
        runtime: str = "TF1",
        version: int | None = None,
    ) -> None: ...

    def record_examples(self, model: str, count: int) -> None: ...

    def inflight(self, model: str) -> AbstractContextManager[None]: ...


class RequestLog(Protocol):
    """Per-model request logging hook (sampled; never blocks, never raises)."""

    def enabled(self, model: str) -> bool: ...

    def log(self, model: str, build: Callable[[], prediction_log_pb2.PredictionLog]) -> None: ...


class Service:
    """Protocol-neutral PredictionService and ModelService: the in-process :class:`ServiceAPI`."""

    def __init__(
        self,
        core: ServerCore,
        executor: Executor,
        metrics: RequestMetrics | None = None,
        request_log: RequestLog | None = None,
        inline_budget_us: float = 250.0,
        reload: Callable[[Any], Awaitable[None]] | None = None,
        scrape: Callable[[], bytes] | None = None,
        describe: Callable[[], dict[str, Any]] | None = None,
        statistics: Callable[[dict[str, list[int]]], list[dict[str, Any]]] | None = None,
        repository: ModelRepository | None = None,
        max_tensor_elements: int = 0,
        profiler: Callable[[], int] | None = None,
    ) -> None:
        self.core = core
        self._max_tensor_elements = max_tensor_elements
        self._profiler = profiler
        self._executor = executor
        self._dispatcher = Dispatcher(executor, inline_budget_us)
        self._metrics = metrics
        self._request_log = request_log
        self._reload = reload
        self._scrape = scrape
        self._describe = describe
        self._statistics = statistics
        self._repository = repository
        self._closed = False

    def close(self) -> None:
        """Refuse new calls (graceful shutdown); in-flight calls finish."""
        self._closed = True

    # ---- Predict --------------------------------------------------------------------------
    async def predict(
        self, call: PredictCall, entrypoint: Entrypoint, timeout_s: float | None = None
    ) -> PredictResult:
        """Run a Predict; ``SignatureChanged`` when ``call`` was typed for another signature."""
        api = entrypoint.predict_api

        async def body(handle: ServableHandle) -> PredictResult:
            spec = select_signature(
                handle.servable, call.signature_name, entrypoint.transport == "REST"
            )
            if call.decoded_for is not None and call.decoded_for != input_dtypes(spec):
                raise SignatureChanged(spec)
            if call.decode_error is not None:
                raise call.decode_error
            check_size(call.inputs, self._max_tensor_elements)
            inputs = check_inputs(spec, call.inputs)
            keys = output_keys(spec, call.output_filter)
            outputs = await self._run(handle, spec.key, inputs, keys, timeout_s, "Predict")
            result = PredictResult(
                handle.id.name,
                handle.id.version,
                spec.key,
                outputs,
                {key: spec.outputs[key].dtype for key in outputs},
            )
            if self._logging(handle):
                self._log(
                    handle,
                    lambda: request_logging.predict_log(
                        handle.id.name,
                        handle.id.version,
                        spec.key,
                        inputs,
                        call.output_filter,
                        result,
                    ),
                )
            return result

        return await self._call(
            call.model, api, entrypoint, body, _predict_signature, _predict_items
        )

    async def signature(self, model: ServableRequest, signature_name: str) -> SignatureSpec:
        """The Predict signature ``model`` resolves to now (REST's wording when missing)."""
        with self.core.acquire(model) as handle:
            return select_signature(handle.servable, signature_name, rest=True)

    # ---- Classify / Regress ---------------------------------------------------------------
    async def classify(
        self,
        model: ServableRequest,
        signature_name: str,
        request_input: input_pb2.Input,
        entrypoint: Entrypoint,
        timeout_s: float | None = None,
    ) -> ExamplesResult:
        """Classify; the result is a ``ClassificationResult``."""
        return await self._examples_call(
            CLASSIFY, model, signature_name, request_input, entrypoint, timeout_s
        )

    async def regress(
        self,
        model: ServableRequest,
        signature_name: str,
        request_input: input_pb2.Input,
        entrypoint: Entrypoint,
        timeout_s: float | None = None,
    ) -> ExamplesResult:
        """Regress; the result is a ``RegressionResult``."""
        return await self._examples_call(
            REGRESS, model, signature_name, request_input, entrypoint, timeout_s
        )

    async def _examples_call(
        self,
        api: ExamplesApi,
        model: ServableRequest,
        signature_name: str,
        request_input: input_pb2.Input,
        entrypoint: Entrypoint,
        timeout_s: float | None,
    ) -> ExamplesResult:
        async def body(handle: ServableHandle) -> ExamplesResult:
            spec = examples.find_signature(handle.servable, signature_name)
            result = await self._run_examples(api, handle, spec, request_input, timeout_s)
            self._log_examples(api.kind, handle, spec.key, request_input, result)
            return ExamplesResult(result, handle.id.version, spec.key)

        label = api.name if entrypoint.transport == "GRPC" else api.kind
        return await self._call(model, label, entrypoint, body, _examples_signature_name)

    async def _run_examples(
        self,
        api: ExamplesApi,
        handle: ServableHandle,
        spec: SignatureSpec,
        request_input: input_pb2.Input,
        timeout_s: float | None,
    ) -> Any:
        in_key, out_keys = api.check(spec)
        serialized = examples.serialize_examples(request_input)
        self._count_examples(handle.id.name, len(serialized))
        outputs = await self._run(
            handle, spec.key, {in_key: serialized}, out_keys, timeout_s, api.name
        )
        return api.result(outputs, len(serialized), spec)

    # ---- MultiInference -------------------------------------------------------------------
    async def multi_inference(
        self,
        request: inference_pb2.MultiInferenceRequest,
        entrypoint: Entrypoint,
        timeout_s: float | None = None,
    ) -> inference_pb2.MultiInferenceResponse:
        """Several classify/regress signatures of one model over the same examples."""
        model = _multi_inference_model(request)

        async def body(handle: ServableHandle) -> inference_pb2.MultiInferenceResponse:
            response = inference_pb2.MultiInferenceResponse()
            seen: set[str] = set()
            for task in request.tasks:
                spec = examples.find_signature(handle.servable, task.model_spec.signature_name)
                if spec.key in seen:
                    raise InvalidArgument(f"Duplicate evaluation of signature: {spec.key}")
                seen.add(spec.key)
                await self._multi_task(handle, task, spec, request.input, response, timeout_s)
            if self._logging(handle):
                self._log(handle, lambda: request_logging.multi_inference_log(request, response))
            return response

        return await self._call(model, "MultiInference", entrypoint, body)

    async def _multi_task(
        self,
        handle: ServableHandle,
        task: inference_pb2.InferenceTask,
        spec: SignatureSpec,
        request_input: input_pb2.Input,
        response: inference_pb2.MultiInferenceResponse,
        timeout_s: float | None,
    ) -> None:
        result = response.results.add()
        result.model_spec.name = handle.id.name
        result.model_spec.version.value = handle.id.version
        result.model_spec.signature_name = spec.key
        api = examples.api_for_method(task.method_name)
        outcome = await self._run_examples(api, handle, spec, request_input, timeout_s)
        target = result.classification_result if api is CLASSIFY else result.regression_result
        target.CopyFrom(outcome)

    # ---- metadata and status --------------------------------------------------------------
    async def metadata(
        self, model: ServableRequest, fields: Sequence[str]
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """GetModelMetadata: only ``signature_def`` is supported (as TF Serving)."""
        if not fields:
            raise InvalidArgument(
                "GetModelMetadataRequest must specify at least one metadata_field"
            )
        for field in fields:
            if field != "signature_def":
                raise InvalidArgument(f"Metadata field {field} is not supported")
        with self.core.acquire(model) as handle:
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = handle.id.name
            response.model_spec.version.value = handle.id.version
            sig_map = get_model_metadata_pb2.SignatureDefMap()
            sig_map.ParseFromString(handle.servable.signature_def_map())
            response.metadata["signature_def"].Pack(sig_map)
            return response

    async def model_status(
        self, model: ServableRequest
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """GetModelStatus: every known version (or the one named), highest first."""
        if model.label is not None:
            model = self.core.resolve(model)
        return self._status(model.name, model.version)

    def _status(
        self, name: str, version: int | None
    ) -> get_model_status_pb2.GetModelStatusResponse:
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in self.core.model_status(name, version):
            entry = response.model_version_status.add()
            entry.version = status.version
            entry.state = int(status.state)  # type: ignore[assignment]
            entry.status.error_code = int(status.error_code)  # type: ignore[assignment]
            entry.status.error_message = status.error_message
        return response

    async def list_models(self) -> list[ModelEntry]:
        """Every configured model with its status (None before any version is known)."""
        entries = []
        for name in self.core.model_names():
            try:
                entries.append(ModelEntry(name, self._status(name, None)))
            except NotFound:
                entries.append(ModelEntry(name, None))
        return entries

    async def ready(self) -> bool:
        """Every configured model has an AVAILABLE version (OIP server readiness)."""
        return self.is_ready()

    def is_ready(self) -> bool:
        """:meth:`ready`, synchronously (any thread)."""
        return all(self.core.monitor.available(name) for name in self.core.model_names())

    async def model_ready(self, name: str, version: int | None) -> bool | None:
        """``name`` (at ``version``, or any version) is AVAILABLE; None if not configured."""
        if name not in self.core.configs:
            return None
        available = self.core.monitor.available(name)
        return bool(available) if version is None else version in available

    async def reload_config(self, config: Any) -> None:
        """HandleReloadConfigRequest, through the lifecycle owner's ``reload``."""
        if self._reload is None:
            raise Unimplemented("This server does not accept configuration reloads")
        await self._reload(config)

    async def scrape(self) -> bytes:
        """The Prometheus page; NotFound when monitoring is off."""
        if self._scrape is None:
            raise NotFound("Prometheus metrics are not enabled (--monitoring_config_file)")
        return self._scrape()

    async def profiler_port(self) -> int:
        """TensorFlow's profiler server port (started on the first call)."""
        if self._profiler is None:
            raise Unavailable("The profiler service is disabled (--enable_profiler=false)")
        return await asyncio.get_running_loop().run_in_executor(None, self._profiler)

    async def overview(self) -> dict[str, Any]:
        """The operator's view: the assembly's ``describe()`` plus every model's state."""
        view = dict(self._describe()) if self._describe is not None else {}
        configs = self.core.configs
        view["models"] = [
            model_overview(configs[name], self.core.monitor.versions(name))
            for name in sorted(configs)
        ]
        return view

    async def statistics(self, name: str, version: int | None) -> list[dict[str, Any]]:
        """Per-version inference statistics (Triton's statistics extension)."""
        if self._statistics is None:
            raise Unimplemented("This server keeps no inference statistics")
        if not name:
            wanted = {n: self._known_versions(n) for n in self.core.model_names()}
        elif name not in self.core.configs:
            raise NotFound(f"Request for unknown model: '{name}' is not found")
        elif version is None:
            wanted = {name: self._known_versions(name)}
        elif version in self._known_versions(name):
            wanted = {name: [version]}
        else:
            raise NotFound(f"Request for unknown model: '{name}' version {version} is not found")
        return self._statistics(wanted)

    def _known_versions(self, name: str) -> list[int]:
        return sorted(v.version for v in self.core.monitor.versions(name))

    async def repository_index(self) -> list[dict[str, Any]]:
        return self._model_repository().index()

    async def repository_load(self, name: str, parameters: Mapping[str, Any]) -> None:
        await self._model_repository().load(name, parameters)

    async def repository_unload(self, name: str, parameters: Mapping[str, Any]) -> None:
        await self._model_repository().unload(name, parameters)

    def _model_repository(self) -> ModelRepository:
        if self._repository is None:
            raise Unimplemented("This server has no model repository")
        return self._repository

    def on_readiness(self, listener: ReadinessListener) -> None:
        """``listener(ready)`` on this event loop after every servable state change."""
        loop = asyncio.get_running_loop()

        def on_event(_event: object) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(lambda: listener(self.is_ready()))

        self.core.monitor.add_listener(on_event)
        listener(self.is_ready())

    # ---- shared machinery -----------------------------------------------------------------
    async def _call(
        self,
        model: ServableRequest,
        api: str,
        entrypoint: Entrypoint,
        body: Callable[[ServableHandle], Awaitable[T]],
        signature_of: Callable[[T], str] = lambda _result: "",
        items_of: Callable[[T], int] | None = None,
    ) -> T:
        """Resolve and hold the model for ``body``; record the request metrics once
        (``items_of``: the samples of an inference, for the per-version statistics)."""
        start = time.perf_counter()
        code: Code | None = Code.OK
        version: int | None = None
        signature = ""
        items = 1 if items_of is not None else 0
        try:
            if self._closed:
                raise Unavailable("Server is shutting down")
            handle = self.core.acquire(model)
            version = handle.id.version
            try:
                with self._inflight(model.name):
                    result = await body(handle)
                signature = signature_of(result)
                if items_of is not None:
                    items = items_of(result)
                return result
            finally:
                handle.release()
        except ServingError as exc:
            code = exc.code
            raise
        except SignatureChanged:
            code = None  # the caller decodes again and retries: not a request of its own
            raise
        except Exception as exc:
            log.exception("Unexpected error in %s of model %s", api, model.name)
            code = Code.INTERNAL
            raise Internal(f"Internal error: {type(exc).__name__}: {exc}") from exc
        finally:
            if self._metrics is not None and code is not None:
                latency = (time.perf_counter() - start) * 1e6
                self._metrics.record_request(
                    model.name, api, entrypoint.transport, code, latency, version, signature, items
                )

    def _inflight(self, model: str) -> AbstractContextManager[None]:
        return self._metrics.inflight(model) if self._metrics is not None else nullcontext()

    async def _run(
        self,
        handle: ServableHandle,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        keys: Sequence[str],
        timeout_s: float | None,
        api: str,
    ) -> dict[str, np.ndarray]:
        """Run the signature (see ``service/dispatch.py``) and record the runtime latency."""
        start = time.perf_counter()
        outputs = await self._dispatcher.run(handle, signature, inputs, keys, timeout_s)
        if self._metrics is not None:
            latency = (time.perf_counter() - start) * 1e6
            self._metrics.record_runtime(handle.id.name, api, latency, version=handle.id.version)
        return outputs

    def _logging(self, handle: ServableHandle) -> bool:
        return self._request_log is not None and self._request_log.enabled(handle.id.name)

    def _log(
        self, handle: ServableHandle, build: Callable[[], prediction_log_pb2.PredictionLog]
    ) -> None:
        if self._request_log is not None:
            self._request_log.log(handle.id.name, build)

    def _log_examples(
        self, kind: str, handle: ServableHandle, signature: str, request_input: Any, result: Any
    ) -> None:
        if self._logging(handle):
            name, version = handle.id.name, handle.id.version
            self._log(
                handle,
                lambda: request_logging.examples_log(
                    kind, name, version, signature, request_input, result
                ),
            )

    def _count_examples(self, model: str, count: int) -> None:
        if self._metrics is not None:
            self._metrics.record_examples(model, count)


def _predict_signature(result: PredictResult) -> str:
    return result.signature_name


def _predict_items(result: PredictResult) -> int:
    """Samples in a Predict: the batch dimension of its first output (1 for a scalar)."""
    first = next(iter(result.outputs.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


def _examples_signature_name(result: ExamplesResult) -> str:
    return result.signature_name


def _multi_inference_model(request: inference_pb2.MultiInferenceRequest) -> ServableRequest:
    if not request.tasks:
        raise InvalidArgument("MultiInferenceRequest must contain at least one task")
    first = request.tasks[0].model_spec
    for task in request.tasks:
        if task.model_spec.name != first.name:
            raise InvalidArgument(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name."
            )
    return request_from_spec(first)


def model_overview(config: ModelConfig, versions: Sequence[VersionStatus]) -> dict[str, Any]:
    """One model's configuration and version states as JSON-able data (highest first)."""
    policy = config.policy
    failed = [v for v in versions if v.error_message]
    last = max(failed, key=lambda v: v.since) if failed else None
    return {
        "name": config.name,
        "base_path": config.base_path,
        "platform": config.platform,
        "policy": {
            "kind": policy.kind,
            "num_versions": policy.num_versions,
            "versions": list(policy.versions),
        },
        "labels": dict(config.labels),
        "versions": [
            {
                "version": v.version,
                "state": v.state.name,
                "since": v.since,
                "error_code": v.error_code.name,
                "error_message": v.error_message,
                "memory_estimate_bytes": v.memory_estimate_bytes,
                "rss_growth_bytes": v.rss_growth_bytes,
            }
            for v in versions
        ],
        "last_error": (
            None
            if last is None
            else {"version": last.version, "message": last.error_message, "time": last.since}
        ),
    }
