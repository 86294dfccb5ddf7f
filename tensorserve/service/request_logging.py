"""Request logging that works: per-model ``logging_config`` -> sampled PredictionLogs.

TF Serving's open-source build refuses any ``logging_config`` ("No
request-logger-creator provided"); here each model with one gets a
``runtime.request_log.RequestLogger`` writing TFRecord files of
``PredictionLog`` (request and response). Sampling is decided before any
proto is built; writing happens on a background thread; a full queue drops
the record. A request is never slowed down or failed by logging.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from tensorflow_serving.apis import prediction_log_pb2

from tensorserve.config.logging_config import parse_logging_config
from tensorserve.config.models import ModelConfig
from tensorserve.errors import Code
from tensorserve.runtime.request_log import RequestLogger
from tensorserve.service import tensors

log = logging.getLogger(__name__)


class LogMetrics(Protocol):
    def record_request_log(self, model: str, code: Code) -> None: ...


class RequestLogging:
    """Holds one RequestLogger per model that configures logging; thread-safe."""

    def __init__(self, metrics: LogMetrics | None = None) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()
        self._loggers: dict[str, tuple[bytes, RequestLogger]] = {}

    def configure(self, configs: Sequence[ModelConfig]) -> None:
        """Start, keep or stop loggers to match the models' ``logging_config``."""
        wanted = {c.name: c.logging_config for c in configs if c.logging_config}
        stale: list[RequestLogger] = []
        with self._lock:
            for name, (raw, logger) in list(self._loggers.items()):
                if wanted.get(name) != raw:
                    stale.append(logger)
                    del self._loggers[name]
            for name, raw in wanted.items():
                if name not in self._loggers:
                    options = parse_logging_config(raw, model_name=name)
                    if options is not None:
                        self._loggers[name] = (
                            raw,
                            RequestLogger(options, name, self._result_counter(name)),
                        )
        for logger in stale:
            logger.close()

    def _result_counter(self, model: str) -> Callable[[bool], None] | None:
        metrics = self._metrics
        if metrics is None:
            return None
        return lambda ok: metrics.record_request_log(model, Code.OK if ok else Code.UNAVAILABLE)

    def enabled(self, model: str) -> bool:
        """Whether ``model`` logs requests (cheap; check before building closures)."""
        return model in self._loggers

    def log(self, model: str, build: Callable[[], prediction_log_pb2.PredictionLog]) -> None:
        """Sample and enqueue one call; ``build`` runs only when the call is sampled."""
        entry = self._loggers.get(model)
        if entry is not None:
            entry[1].maybe_log(build)

    def flush(self, timeout_s: float = 30.0) -> None:
        for _raw, logger in list(self._loggers.values()):
            logger.flush(timeout_s)

    def close(self) -> None:
        with self._lock:
            loggers = [logger for _raw, logger in self._loggers.values()]
            self._loggers.clear()
        for logger in loggers:
            logger.close()


def _spec(target: Any, model: str, version: int, signature: str) -> None:
    target.name = model
    target.version.value = version
    target.signature_name = signature


def predict_log(
    model: str,
    version: int,
    signature: str,
    inputs: Mapping[str, np.ndarray],
    output_filter: Sequence[str],
    result: Any,
) -> prediction_log_pb2.PredictionLog:
    """A PredictLog of one call (REST calls are logged as the equivalent PredictRequest)."""
    record = prediction_log_pb2.PredictionLog()
    _spec(record.log_metadata.model_spec, model, version, signature)
    request = record.predict_log.request
    _spec(request.model_spec, model, version, signature)
    for key, value in inputs.items():
        tensors.fill(request.inputs[key], value, as_content=value.dtype.kind != "O")
    request.output_filter.extend(output_filter)
    response = record.predict_log.response
    _spec(response.model_spec, model, version, signature)
    for key, value in result.outputs.items():
        dtype = result.output_dtypes[key]
        tensors.fill(response.outputs[key], value, dtype)
    return record


def examples_log(
    kind: str, model: str, version: int, signature: str, request_input: Any, result: Any
) -> prediction_log_pb2.PredictionLog:
    """A ClassifyLog or RegressLog (``kind`` is "classify" or "regress")."""
    record = prediction_log_pb2.PredictionLog()
    _spec(record.log_metadata.model_spec, model, version, signature)
    entry = getattr(record, f"{kind}_log")
    _spec(entry.request.model_spec, model, version, signature)
    entry.request.input.CopyFrom(request_input)
    _spec(entry.response.model_spec, model, version, signature)
    entry.response.result.CopyFrom(result)
    return record


def multi_inference_log(request: Any, response: Any) -> prediction_log_pb2.PredictionLog:
    """A MultiInferenceLog of one call."""
    record = prediction_log_pb2.PredictionLog()
    if request.tasks:
        record.log_metadata.model_spec.CopyFrom(request.tasks[0].model_spec)
    record.multi_inference_log.request.CopyFrom(request)
    record.multi_inference_log.response.CopyFrom(response)
    return record
