"""Warm-up: replay a version's recorded requests before it becomes AVAILABLE.

TF Serving replays ``assets.extra/tf_serving_warmup_requests`` (PredictionLog
records; reading and checks in ``runtime/warmup.py``) and fails the load on
any error. Beyond TF Serving, ``--enable_synthetic_warmup`` warms versions that
have no such file with zero-filled inputs built from each signature (once per
allowed batch size when batching is on); those runs are best-effort.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from tensorflow_serving.apis import prediction_log_pb2

from tensorserve import dtypes, logs
from tensorserve.errors import ServingError, Unimplemented
from tensorserve.runtime import warmup as warmup_io
from tensorserve.servable import Servable, SignatureSpec
from tensorserve.service import examples, tensors
from tensorserve.service.predict import check_inputs, output_keys, select_signature

log = logging.getLogger(__name__)


class WarmupMetrics(Protocol):
    def record_warmup(
        self, model_path: str, ok: bool, latency_us: float, records: int, error: str = ""
    ) -> None: ...


class BatchSizes(Protocol):
    @property
    def allowed_batch_sizes(self) -> Sequence[int]: ...


def replay(servable: Servable, record: prediction_log_pb2.PredictionLog) -> None:
    """Run one warm-up record against ``servable`` on the calling thread; raises on error."""
    kind = record.WhichOneof("log_type")
    if kind == "predict_log":
        _predict(servable, record.predict_log.request)
    elif kind == "classify_log":
        request = record.classify_log.request
        _examples(servable, request.model_spec.signature_name, request.input, examples.CLASSIFY)
    elif kind == "regress_log":
        request = record.regress_log.request
        _examples(servable, request.model_spec.signature_name, request.input, examples.REGRESS)
    elif kind == "multi_inference_log":
        request = record.multi_inference_log.request
        for task in request.tasks:
            api = examples.api_for_method(task.method_name)
            _examples(servable, task.model_spec.signature_name, request.input, api)
    else:
        raise Unimplemented(f"Unsupported log_type for warmup: {kind}")


def _predict(servable: Servable, request: Any) -> None:
    spec = select_signature(servable, request.model_spec.signature_name)
    inputs = check_inputs(spec, tensors.inputs_to_numpy(request.inputs))
    servable.run(spec.key, inputs, output_keys(spec, tuple(request.output_filter)), None)


def _examples(servable: Servable, name: str, request_input: Any, api: examples.ExamplesApi) -> None:
    spec = examples.find_signature(servable, name)
    in_key, out_keys = api.check(spec)
    servable.run(spec.key, {in_key: examples.serialize_examples(request_input)}, out_keys, None)


def zero_inputs(spec: SignatureSpec, batch: int) -> dict[str, np.ndarray] | None:
    """Zero-filled inputs for a signature, or None when a shape/dtype cannot be made."""
    inputs: dict[str, np.ndarray] = {}
    for key, tensor in spec.inputs.items():
        dtype = dtypes.to_numpy(tensor.dtype)
        if dtype is None or tensor.shape is None:
            return None
        shape = [batch if i == 0 and d < 0 else max(d, 1) for i, d in enumerate(tensor.shape)]
        value = np.zeros(shape, dtype=dtype)
        if dtype.kind == "O":
            value = np.full(shape, b"", dtype=object)
        inputs[key] = value
    return inputs


class Warmup:
    """Loader hook: ``warm(servable, model, version, path)``; raises to fail the load."""

    def __init__(
        self,
        enabled: bool,
        iterations: int,
        synthetic: bool,
        batching: BatchSizes | None,
        metrics: WarmupMetrics | None = None,
    ) -> None:
        self._enabled = enabled
        self._iterations = iterations if iterations > 0 else 1
        self._synthetic = synthetic
        self._batch_sizes = tuple(batching.allowed_batch_sizes) if batching else ()
        self._metrics = metrics

    def warm(self, servable: Servable, model: str, version: int, path: str) -> None:
        if not self._enabled:
            return
        file = warmup_io.warmup_file(path)
        if file is not None:
            self._replay_file(servable, model, version, path, file)
        elif self._synthetic:
            self._zeros(servable, model, version)

    def _replay_file(
        self, servable: Servable, model: str, version: int, path: str, file: str
    ) -> None:
        start = time.perf_counter()
        records: list[prediction_log_pb2.PredictionLog] = []
        try:
            records = warmup_io.read_warmup_records(file)
            warmup_io.run_warmup(records, lambda r: replay(servable, r), self._iterations)
        except ServingError as exc:
            # The status label is TF's Status::ToString(): "<CODE>: <message>".
            self._record(path, False, start, len(records), f"{exc.code.name}: {exc.message}")
            raise
        latency_us = self._record(path, True, start, len(records))
        logs.log_event(
            log,
            logging.INFO,
            f"Finished reading warmup data for model at {file}. Number of warmup records "
            f"read: {len(records)}. Elapsed time (microseconds): {int(latency_us)}.",
            model=model,
            version=version,
            records=len(records),
            iterations=self._iterations,
        )

    def _record(self, path: str, ok: bool, start: float, records: int, error: str = "") -> float:
        latency = (time.perf_counter() - start) * 1e6
        if self._metrics is not None:
            self._metrics.record_warmup(path, ok, latency, records, error)
        return latency

    def _zeros(self, servable: Servable, model: str, version: int) -> None:
        # A batching servable knows its own sizes (a per-model batching_params.pbtxt).
        sizes = servable.allowed_batch_sizes or self._batch_sizes
        for spec in servable.signatures.values():
            if spec.key.startswith("__"):
                continue
            for batch in sizes or (1,):
                inputs = zero_inputs(spec, batch)
                if inputs is None:
                    break
                try:
                    servable.run(spec.key, inputs, sorted(spec.outputs), None)
                except ServingError as exc:
                    logs.log_event(
                        log,
                        logging.INFO,
                        f"Synthetic warm-up of {model} v{version} signature {spec.key} "
                        f"skipped: {exc.message}",
                        model=model,
                        version=version,
                        signature=spec.key,
                    )
                    break
