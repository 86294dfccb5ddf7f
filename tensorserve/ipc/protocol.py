"""What a ``ServiceAPI`` call looks like on the wire (shared by both ends).

Predict, the hot path, is a flat tuple with its tensors as raw array segments;
every other call is ``(method, args)`` with pickled plain values. Method names
are a fixed table: the model process runs nothing else.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from tensorserve.core.ids import ServableRequest
from tensorserve.ipc import wire
from tensorserve.service.api import Entrypoint, PredictCall, PredictResult

PREDICT: Final = "predict"
GENERIC: Final = frozenset(
    {
        "classify",
        "regress",
        "multi_inference",
        "signature",
        "metadata",
        "model_status",
        "list_models",
        "ready",
        "model_ready",
        "reload_config",
        "scrape",
        "profiler_port",
        "overview",
        "statistics",
        "repository_index",
        "repository_load",
        "repository_unload",
    }
)
READINESS: Final = "readiness"  # EVENT meta: (READINESS, ready)


def predict_request(
    call: PredictCall, entrypoint: Entrypoint, timeout_s: float | None
) -> tuple[tuple[Any, ...], list[memoryview]]:
    descs, buffers = wire.pack_arrays(call.inputs)
    m = call.model
    meta = (
        PREDICT,
        entrypoint.value,
        timeout_s,
        m.name,
        m.version,
        m.label,
        call.signature_name,
        call.output_filter,
        call.decoded_for,
        call.decode_error,
        descs,
    )
    return meta, buffers


def read_predict_request(
    meta: tuple[Any, ...], body: Any, offset: int
) -> tuple[PredictCall, Entrypoint, float | None]:
    (_, entrypoint, timeout, name, version, label, signature, outputs, typed, error, descs) = meta
    call = PredictCall(
        ServableRequest(name, version, label),
        signature,
        wire.unpack_arrays(descs, body, offset),
        outputs,
        typed,
        error,
    )
    return call, Entrypoint(entrypoint), timeout


def predict_reply(result: PredictResult) -> tuple[tuple[Any, ...], list[memoryview]]:
    descs, buffers = wire.pack_arrays(result.outputs)
    meta = (
        result.model,
        result.version,
        result.signature_name,
        tuple(result.output_dtypes.items()),
        descs,
    )
    return meta, buffers


def read_predict_reply(meta: tuple[Any, ...], body: Any, offset: int) -> PredictResult:
    model, version, signature, output_dtypes, descs = meta
    outputs: dict[str, np.ndarray] = wire.unpack_arrays(descs, body, offset)
    return PredictResult(model, version, signature, outputs, dict(output_dtypes))
