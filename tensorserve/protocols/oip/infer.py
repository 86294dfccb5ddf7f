"""OIP requests and answers between the wire adapters and ``ServiceAPI``.

Both adapters (``protocols/rest/oip.py``, ``protocols/grpc/oip.py``) decode into
:class:`InferRequest`, call :func:`run`, and encode the :class:`InferAnswer`. Versions:
``""`` is the latest available one, digits a version number, anything else a TF Serving
version label (``/v2/models/m/versions/stable/infer``), since OIP has no labels of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from tensorflow_serving.apis import get_model_status_pb2

from tensorserve import __version__, dtypes
from tensorserve.core.ids import ServableRequest
from tensorserve.errors import InvalidArgument, NotFound
from tensorserve.protocols.oip import tensors
from tensorserve.servable import DEFAULT_SIGNATURE, SignatureSpec, TensorSpec
from tensorserve.service.api import Entrypoint, PredictCall, ServiceAPI

PLATFORM = "tensorflow_savedmodel"
SIGNATURE_PARAMETER = "signature_name"
BASE_EXTENSIONS = ("binary_tensor_data", "parameters", "statistics")
_INT64_MAX = 2**63 - 1


def extensions(model_management: bool) -> tuple[str, ...]:
    """The OIP extensions this server offers (server metadata)."""
    return BASE_EXTENSIONS + (("model_repository",) if model_management else ())


def model_request(name: str, version: str) -> ServableRequest:
    """A model name and OIP version string as a ServableRequest (see the module doc)."""
    if not name:
        raise InvalidArgument("The model name is empty; expected the name of a served model")
    if not version:
        return ServableRequest(name)
    number = _number(version)
    return (
        ServableRequest(name, label=version)
        if number is None
        else ServableRequest(name, version=number)
    )


def _number(version: str) -> int | None:
    """An ASCII decimal version number within int64, or None (then it is a label)."""
    if not (version.isascii() and version.isdigit()):
        return None
    if int(version) > _INT64_MAX:
        raise InvalidArgument(f"Failed to convert version: {version} to numeric.")
    return int(version)


def stats_version(version: str) -> int | None:
    """The version a statistics request names ("" = every version); labels are refused,
    since statistics are kept per version number."""
    if not version:
        return None
    number = _number(version)
    if number is None:
        raise InvalidArgument(f"Statistics are kept per version number; got '{version}'")
    return number


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    """One entry of ``outputs``: its name and whether it should travel as binary."""

    name: str
    binary: bool | None = None  # None: the request-level default


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A decoded infer request; ``inputs`` already typed by their OIP datatypes."""

    model: ServableRequest
    inputs: dict[str, np.ndarray]
    request_id: str = ""
    signature_name: str = ""
    outputs: tuple[RequestedOutput, ...] = ()
    binary_outputs: bool = False  # the request-level ``binary_data_output`` parameter


@dataclass(frozen=True, slots=True)
class OutputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray
    binary: bool


@dataclass(frozen=True, slots=True)
class InferAnswer:
    model_name: str
    model_version: str
    request_id: str
    outputs: tuple[OutputTensor, ...]


def signature_of(parameters: Mapping[str, Any]) -> str:
    """The ``signature_name`` request parameter ("" = serving_default)."""
    value = parameters.get(SIGNATURE_PARAMETER, "")
    if not isinstance(value, str):
        raise InvalidArgument(
            f"Parameter '{SIGNATURE_PARAMETER}' is {value!r}; expected a signature name string"
        )
    return value


async def run(
    service: ServiceAPI, request: InferRequest, entrypoint: Entrypoint, timeout_s: float | None
) -> InferAnswer:
    """Predict through the one request path; outputs in the order they were asked for."""
    wanted = tuple(o.name for o in request.outputs)
    call = PredictCall(request.model, request.signature_name, request.inputs, wanted)
    result = await service.predict(call, entrypoint, timeout_s)  # typed: no SignatureChanged
    binary = {o.name: o.binary for o in request.outputs}
    outputs = []
    for name, array in result.outputs.items():
        choice = binary.get(name)
        datatype = tensors.datatype_of(result.output_dtypes.get(name, 0))
        if datatype == "INVALID":
            datatype = tensors.datatype_of(dtypes.from_numpy(array.dtype))
        outputs.append(
            OutputTensor(
                name,
                datatype,
                tuple(array.shape),
                array,
                request.binary_outputs if choice is None else choice,
            )
        )
    return InferAnswer(result.model, str(result.version), request.request_id, tuple(outputs))


# ---- metadata -------------------------------------------------------------------------------
def server_metadata(extensions: tuple[str, ...]) -> dict[str, Any]:
    return {"name": "tensorserve", "version": __version__, "extensions": list(extensions)}


def tensor_metadata(alias: str, spec: TensorSpec) -> dict[str, Any]:
    """name, OIP datatype and shape (-1 for unknown dimensions, ``[-1]`` for unknown rank)."""
    shape = [-1] if spec.shape is None else [d if d >= 0 else -1 for d in spec.shape]
    return {"name": alias, "datatype": tensors.datatype_of(spec.dtype), "shape": shape}


async def model_metadata(
    service: ServiceAPI, model: ServableRequest, parameters: Mapping[str, Any]
) -> dict[str, Any]:
    """OIP model metadata of ``model``'s signature (``serving_default`` unless a
    ``signature_name`` parameter names another), with every available version."""
    signature = signature_of(parameters)
    spec: SignatureSpec = await service.signature(model, signature)
    status = await service.model_status(ServableRequest(model.name))
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    versions = sorted(
        (str(v.version) for v in status.model_version_status if v.state == available), key=int
    )
    return {
        "name": model.name,
        "versions": versions,
        "platform": PLATFORM,
        "inputs": [tensor_metadata(k, v) for k, v in spec.inputs.items()],
        "outputs": [tensor_metadata(k, v) for k, v in spec.outputs.items()],
        "parameters": {SIGNATURE_PARAMETER: signature or DEFAULT_SIGNATURE},
    }


async def model_ready(service: ServiceAPI, model: ServableRequest) -> bool:
    """Ready at the version (or label) asked; NotFound for an unknown model or version."""
    if model.label is not None:
        status = await service.model_status(model)  # NotFound for an unknown label
        available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        return any(v.state == available for v in status.model_version_status)
    ready = await service.model_ready(model.name, model.version)
    if ready is None:
        raise NotFound(f"Model {model.name} is not configured")
    if not ready and model.version is not None:
        await service.model_status(model)  # NotFound for a version never seen
    return ready
