"""The seam between the protocols and the model: what crosses, and the interface they call.

Every protocol adapter (REST, gRPC) decodes its wire format into the plain values
below and calls a :class:`ServiceAPI`. Two implementations exist: ``Service``
(in the process that owns the models) and ``ipc.client.RemoteService`` (in a
protocol worker process, forwarding each call to the model process). Everything
here is plain data that pickles: numpy arrays, protos, frozen dataclasses and
``ServingError``; never a closure.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    input_pb2,
)

from tensorserve import dtypes
from tensorserve.core.ids import ServableRequest
from tensorserve.errors import ServingError, drop_traceback
from tensorserve.servable import SignatureSpec

InputDtypes = tuple[tuple[str, int], ...]


class Entrypoint(enum.Enum):
    """Which protocol a call came in on.

    ``transport`` is TF Serving's ``entrypoint`` metric label (``REST`` or ``GRPC``);
    ``predict_api`` the ``API`` label of a Predict-like call, which tells the protocols
    apart (TF Serving's ``predict``/``Predict``, the Open Inference Protocol's
    ``infer``/``ModelInfer``).
    """

    REST = "REST"
    GRPC = "GRPC"
    OIP_REST = "OIP_REST"
    OIP_GRPC = "OIP_GRPC"

    @property
    def transport(self) -> str:
        return "REST" if self in (Entrypoint.REST, Entrypoint.OIP_REST) else "GRPC"

    @property
    def predict_api(self) -> str:
        return _PREDICT_API[self]


_PREDICT_API = {
    Entrypoint.REST: "predict",
    Entrypoint.GRPC: "Predict",
    Entrypoint.OIP_REST: "infer",
    Entrypoint.OIP_GRPC: "ModelInfer",
}


@dataclass(frozen=True, slots=True)
class PredictCall:
    """A decoded Predict request.

    ``inputs`` are numpy arrays (object arrays of ``bytes`` for strings).
    ``decoded_for`` is the signature's input dtypes the inputs were typed for
    (REST JSON has no types of its own; ``None`` when the wire format carried
    them, as gRPC's TensorProtos do): when the resolved signature differs, the
    service raises :class:`SignatureChanged` and the caller decodes again.
    ``decode_error`` is a decoding failure, raised only after the model and the
    signature resolved (TF Serving's order: an unknown model wins over a bad tensor).
    """

    model: ServableRequest
    signature_name: str
    inputs: Mapping[str, np.ndarray]
    output_filter: tuple[str, ...] = ()
    decoded_for: InputDtypes | None = None
    decode_error: ServingError | None = None

    def __post_init__(self) -> None:
        drop_traceback(self.decode_error)  # it outlives its frames (see drop_traceback)


@dataclass(frozen=True, slots=True)
class PredictResult:
    """Outputs in signature order (or ``output_filter`` order), with what was resolved."""

    model: str
    version: int
    signature_name: str
    outputs: dict[str, np.ndarray]
    output_dtypes: Mapping[str, int]  # alias -> dtypes code, for typed wire encodings


@dataclass(frozen=True, slots=True)
class ExamplesResult:
    """A Classify or Regress answer: the result proto and what was resolved."""

    result: Any  # classification_pb2.ClassificationResult | regression_pb2.RegressionResult
    version: int
    signature_name: str


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One configured model in ``GET /v1/models``; ``status`` is None before any version."""

    name: str
    status: get_model_status_pb2.GetModelStatusResponse | None


class SignatureChanged(Exception):
    """The inputs were decoded for another signature than the one the call resolved to.

    Carries the resolved signature, so the caller can decode again and retry
    once (a version swap that changed input dtypes, or a stale cache).
    """

    def __init__(self, signature: SignatureSpec) -> None:
        super().__init__(signature)
        self.signature = signature


def input_dtypes(signature: SignatureSpec) -> InputDtypes:
    """The part of a signature that typing a JSON payload depends on."""
    return tuple(sorted((k, dtypes.base(v.dtype)) for k, v in signature.inputs.items()))


ReadinessListener = Callable[[bool], None]


class ServiceAPI(Protocol):
    """What a protocol adapter may ask; the same over a process boundary.

    Every method raises only ``ServingError`` (and ``SignatureChanged`` from
    ``predict``). ``timeout_s`` bounds the computation. Answers reflect the one
    model owner's state at the time of the call, whichever process asks.
    """

    async def predict(
        self, call: PredictCall, entrypoint: Entrypoint, timeout_s: float | None = None
    ) -> PredictResult: ...

    async def classify(
        self,
        model: ServableRequest,
        signature_name: str,
        request_input: input_pb2.Input,
        entrypoint: Entrypoint,
        timeout_s: float | None = None,
    ) -> ExamplesResult: ...

    async def regress(
        self,
        model: ServableRequest,
        signature_name: str,
        request_input: input_pb2.Input,
        entrypoint: Entrypoint,
        timeout_s: float | None = None,
    ) -> ExamplesResult: ...

    async def multi_inference(
        self,
        request: inference_pb2.MultiInferenceRequest,
        entrypoint: Entrypoint,
        timeout_s: float | None = None,
    ) -> inference_pb2.MultiInferenceResponse: ...

    async def signature(self, model: ServableRequest, signature_name: str) -> SignatureSpec:
        """The Predict signature a call would resolve to now (REST wording on errors)."""
        ...

    async def metadata(
        self, model: ServableRequest, fields: Sequence[str]
    ) -> get_model_metadata_pb2.GetModelMetadataResponse: ...

    async def model_status(
        self, model: ServableRequest
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """Every version (or the one named by version or label), highest first."""
        ...

    async def list_models(self) -> list[ModelEntry]: ...

    async def ready(self) -> bool:
        """Every configured model has an AVAILABLE version."""
        ...

    async def model_ready(self, name: str, version: int | None) -> bool | None:
        """Whether ``name`` (at ``version``) is AVAILABLE; None if not configured."""
        ...

    async def reload_config(self, config: Any) -> None:
        """HandleReloadConfigRequest: apply a ``ModelServerConfig``; waits for added models."""
        ...

    async def scrape(self) -> bytes:
        """The Prometheus page (TF Serving's exposition) of the whole server."""
        ...

    async def profiler_port(self) -> int:
        """The loopback port of TensorFlow's profiler service in the process that runs the
        models, started on first use; Unavailable when ``--enable_profiler=false``."""
        ...

    async def overview(self) -> dict[str, Any]:
        """What an operator's page shows, as JSON-able data: ``server`` (version, start,
        flags, configuration, workers), ``models`` (configuration and every version's
        state, error and time) and ``metrics`` (cumulative counters, see
        ``Metrics.summary``)."""
        ...

    async def statistics(self, name: str, version: int | None) -> list[dict[str, Any]]:
        """Triton's ``model_stats`` entries: every served model when ``name`` is "", else
        ``name``'s versions (or the one asked); NotFound for an unknown model or version."""
        ...

    async def repository_index(self) -> list[dict[str, Any]]:
        """Every model the repository knows: name, version, state, reason."""
        ...

    async def repository_load(self, name: str, parameters: Mapping[str, Any]) -> None:
        """Serve ``name`` from the repository (or a ``base_path`` parameter); waits for it."""
        ...

    async def repository_unload(self, name: str, parameters: Mapping[str, Any]) -> None:
        """Stop serving ``name``."""
        ...

    def on_readiness(self, listener: ReadinessListener) -> None:
        """Call ``listener(ready)`` on the caller's event loop whenever readiness may change."""
        ...


def request_from_spec(spec: Any) -> ServableRequest:
    """A ``tensorflow.serving.ModelSpec`` as a ServableRequest."""
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return ServableRequest(spec.name, version=spec.version.value)
    if choice == "version_label":
        return ServableRequest(spec.name, label=spec.version_label)
    return ServableRequest(spec.name)
