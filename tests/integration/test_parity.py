"""REST/gRPC parity: each behaviour runs over both protocols against the same server.

Successes must give the same answer (and the one the model's math predicts); errors must
carry the gRPC code whose HTTP status TF Serving's table (``http_server.cc``
``ToHTTPStatusCode``, compat doc §1.3) gives the REST answer, and the same message — except
that gRPC cuts messages longer than 1024 bytes (``grpc_status_util.cc``) and where TF
Serving's own REST JSON layer answers before the shared request path (``rest_message``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import json_format
from google.protobuf.message import Message
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

TIMEOUT = 20.0
S = grpc.StatusCode
# TF Serving's gRPC/absl code -> HTTP status (compat doc §1.3), written out independently.
HTTP_STATUS: dict[grpc.StatusCode, int] = {
    S.OK: 200,
    S.CANCELLED: 499,
    S.UNKNOWN: 500,
    S.INVALID_ARGUMENT: 400,
    S.DEADLINE_EXCEEDED: 504,
    S.NOT_FOUND: 404,
    S.ALREADY_EXISTS: 409,
    S.PERMISSION_DENIED: 403,
    S.RESOURCE_EXHAUSTED: 429,
    S.FAILED_PRECONDITION: 400,
    S.ABORTED: 409,
    S.OUT_OF_RANGE: 400,
    S.UNIMPLEMENTED: 501,
    S.INTERNAL: 500,
    S.UNAVAILABLE: 503,
    S.DATA_LOSS: 500,
    S.UNAUTHENTICATED: 401,
}
LONG_NAME = "n" * 3000


@dataclass(frozen=True)
class Call:
    """One behaviour, spelled for each protocol."""

    rest_method: str
    rest_path: str
    rest_body: dict[str, Any] | None
    grpc_method: str  # "Predict", "GetModelStatus", ...
    grpc_request: Callable[[], Message]


# ---- request builders ---------------------------------------------------------------------


def spec(
    target: Any,
    name: str,
    version: int | None = None,
    label: str | None = None,
    signature: str | None = None,
) -> None:
    target.name = name
    if version is not None:
        target.version.value = version
    if label is not None:
        target.version_label = label
    if signature is not None:
        target.signature_name = signature


def url(name: str, version: int | None = None, label: str | None = None) -> str:
    path = f"/v1/models/{name}"
    if version is not None:
        path += f"/versions/{version}"
    if label is not None:
        path += f"/labels/{label}"
    return path


def predict(
    name: str,
    inputs: dict[str, np.ndarray],
    *,
    version: int | None = None,
    label: str | None = None,
    signature: str | None = None,
    rest_body: dict[str, Any] | None = None,
) -> Call:
    def grpc_request() -> Message:
        request = predict_pb2.PredictRequest()
        spec(request.model_spec, name, version, label, signature)
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        return request

    body = (
        rest_body
        if rest_body is not None
        else {"inputs": {k: v.tolist() for k, v in inputs.items()}}
    )
    if signature is not None:
        body = {"signature_name": signature, **body}
    return Call("POST", url(name, version, label) + ":predict", body, "Predict", grpc_request)


def examples(
    kind: str,
    name: str,
    xs: list[float | None],
    *,
    context: float | None = None,
    version: int | None = None,
    label: str | None = None,
    signature: str | None = None,
) -> Call:
    def grpc_request() -> Message:
        request: Any = {
            "classify": classification_pb2.ClassificationRequest,
            "regress": regression_pb2.RegressionRequest,
        }[kind]()
        spec(request.model_spec, name, version, label, signature)
        items = [
            tf.train.Example()
            if x is None
            else tf.train.Example(
                features=tf.train.Features(
                    feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))}
                )
            )
            for x in xs
        ]
        if context is None:
            request.input.example_list.examples.extend(items)
        else:
            with_context = request.input.example_list_with_context
            with_context.examples.extend(items)
            with_context.context.features.feature["x"].float_list.value.append(context)
        return request

    body: dict[str, Any] = {"examples": [{} if x is None else {"x": x} for x in xs]}
    if context is not None:
        body["context"] = {"x": context}
    if signature is not None:
        body["signature_name"] = signature
    return Call(
        "POST", f"{url(name, version, label)}:{kind}", body, kind.capitalize(), grpc_request
    )


def metadata(name: str, version: int | None = None, label: str | None = None) -> Call:
    def grpc_request() -> Message:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        spec(request.model_spec, name, version, label)
        return request

    return Call(
        "GET", url(name, version, label) + "/metadata", None, "GetModelMetadata", grpc_request
    )


def status(name: str, version: int | None = None) -> Call:
    def grpc_request() -> Message:
        request = get_model_status_pb2.GetModelStatusRequest()
        spec(request.model_spec, name, version)
        return request

    return Call("GET", url(name, version), None, "GetModelStatus", grpc_request)


# ---- running one call on each protocol ----------------------------------------------------


def run_rest(http: httpx.Client, call: Call) -> httpx.Response:
    return http.request(call.rest_method, call.rest_path, json=call.rest_body)


def run_grpc(channel: grpc.Channel, call: Call) -> Any:
    stub: Any = (
        model_service_pb2_grpc.ModelServiceStub(channel)
        if call.grpc_method == "GetModelStatus"
        else prediction_service_pb2_grpc.PredictionServiceStub(channel)
    )
    return getattr(stub, call.grpc_method)(call.grpc_request(), timeout=TIMEOUT)


def grpc_failure(channel: grpc.Channel, call: Call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        run_grpc(channel, call)
    error = info.value
    assert isinstance(error, grpc.Call)
    return error.code(), error.details() or ""


def truncated(message: str) -> str:
    """What gRPC carries for ``message`` (TF Serving's ``ToGRPCStatus``)."""
    data = message.encode()
    return message if len(data) <= 1024 else data[:1024].decode(errors="ignore") + "...TRUNCATED"


# ---- errors -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorCase:
    id: str
    call: Call
    code: grpc.StatusCode
    message: str  # TF Serving's message (the whole text, or its first sentence if ``prefix``)
    prefix: bool = False
    rest_message: str | None = None  # TF Serving's REST layer has its own text (also ``prefix``)


HP2 = "half_plus_two"
X = {"x": np.array([1.0], np.float32)}
ERRORS = [
    ErrorCase(
        "predict-unknown-model",
        predict("nope", X),
        S.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    ),
    ErrorCase(
        "predict-unknown-version",
        predict(HP2, X, version=7),
        S.NOT_FOUND,
        "Servable not found for request: Specific(half_plus_two, 7)",
    ),
    ErrorCase(
        "predict-unknown-label",
        predict(HP2, X, label="nope"),
        S.INVALID_ARGUMENT,
        "Unrecognized servable version label: nope",
    ),
    # REST looks the signature up in its JSON layer (json_tensor.cc): INVALID_ARGUMENT, 400 too.
    ErrorCase(
        "predict-unknown-signature",
        predict(HP2, X, signature="nope"),
        S.FAILED_PRECONDITION,
        'Serving signature key "nope" not found.',
        prefix=True,
        rest_message='Serving signature name: "nope" not found in signature def',
    ),
    ErrorCase(
        "predict-long-message",
        predict(HP2, X, signature=LONG_NAME),
        S.FAILED_PRECONDITION,
        f'Serving signature key "{LONG_NAME}" not found.',
        prefix=True,
        rest_message=f'Serving signature name: "{LONG_NAME}" not found in signature def',
    ),
    ErrorCase(
        "predict-missing-input",
        predict("multi", {"a": np.ones((1, 2), np.float32)}),
        S.INVALID_ARGUMENT,
        "input size does not match signature: 1!=2 len({a}) != len({a,b}). "
        "Sent extra: {}. Missing but required: {b}.",
        prefix=True,  # then what the signature takes and what was sent
        rest_message="Missing named input: b in 'inputs' object. Signature 'serving_default' "
        "takes a: DT_FLOAT [-1, 2], b: DT_INT64 [-1].",
    ),
    ErrorCase(
        "classify-unknown-model",
        examples("classify", "nope", [1.0]),
        S.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    ),
    ErrorCase(
        "classify-unknown-label",
        examples("classify", HP2, [1.0], label="nope", signature="classify_x_to_y"),
        S.INVALID_ARGUMENT,
        "Unrecognized servable version label: nope",
    ),
    ErrorCase(
        "classify-unknown-signature",
        examples("classify", HP2, [1.0], signature="nope"),
        S.INVALID_ARGUMENT,
        "No signature was found with the name: nope",
    ),
    ErrorCase(
        "classify-predict-signature",
        examples("classify", HP2, [1.0]),
        S.INVALID_ARGUMENT,
        "No classification inputs found in SignatureDef: ",
        prefix=True,
    ),
    ErrorCase(
        "classify-long-message",
        examples("classify", HP2, [1.0], signature=LONG_NAME),
        S.INVALID_ARGUMENT,
        f"No signature was found with the name: {LONG_NAME}",
    ),
    ErrorCase(
        "regress-unknown-version",
        examples("regress", HP2, [1.0], version=7, signature="regress_x_to_y"),
        S.NOT_FOUND,
        "Servable not found for request: Specific(half_plus_two, 7)",
    ),
    ErrorCase(
        "regress-unknown-signature",
        examples("regress", HP2, [1.0], signature="nope"),
        S.INVALID_ARGUMENT,
        "No signature was found with the name: nope",
    ),
    ErrorCase(
        "regress-classify-signature",
        examples("regress", HP2, [1.0], signature="classify_x_to_y"),
        S.INVALID_ARGUMENT,
        "Expected one output Tensor.",
        prefix=True,  # then the signature in one line and the ones that fit
    ),
    ErrorCase(
        "metadata-unknown-model",
        metadata("nope"),
        S.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    ),
    ErrorCase(
        "metadata-unknown-version",
        metadata(HP2, version=7),
        S.NOT_FOUND,
        "Servable not found for request: Specific(half_plus_two, 7)",
    ),
    ErrorCase(
        "metadata-unknown-label",
        metadata(HP2, label="nope"),
        S.INVALID_ARGUMENT,
        "Unrecognized servable version label: nope",
    ),
    ErrorCase(
        "status-unknown-model",
        status("nope"),
        S.NOT_FOUND,
        "Could not find any versions of model nope",
    ),
    ErrorCase(
        "status-unknown-version",
        status(HP2, 7),
        S.NOT_FOUND,
        "Could not find version 7 of model half_plus_two",
    ),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c.id for c in ERRORS])
def test_error_parity(http: httpx.Client, channel: grpc.Channel, case: ErrorCase) -> None:
    code, details = grpc_failure(channel, case.call)
    response = run_rest(http, case.call)
    assert code == case.code, details
    assert response.status_code == HTTP_STATUS[code], response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"], body
    rest_error = body["error"]
    rest_message = case.rest_message or case.message
    if case.prefix:
        assert details.startswith(truncated(case.message))
        assert rest_error.startswith(rest_message)  # never truncated on REST
    else:
        assert details == truncated(case.message)
        assert rest_error == rest_message
    if case.rest_message is None:  # the same message on both protocols
        assert details == truncated(rest_error)


def test_long_messages_are_cut_on_grpc_only(http: httpx.Client, channel: grpc.Channel) -> None:
    call = examples("classify", HP2, [1.0], signature=LONG_NAME)
    _, details = grpc_failure(channel, call)
    rest_error = run_rest(http, call).json()["error"]
    assert len(rest_error) > 3000  # REST carries the whole message, as TF Serving
    assert len(details) == 1024 + len("...TRUNCATED")
    assert details == rest_error[:1024] + "...TRUNCATED"


# ---- successes ----------------------------------------------------------------------------


def tensor_values(proto: tensor_pb2.TensorProto) -> Any:
    """A gRPC output as REST would print it (nested lists; ``_bytes`` strings as b64)."""
    return tf.make_ndarray(proto).tolist()


def grpc_predict_view(response: predict_pb2.PredictResponse) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for alias, proto in response.outputs.items():
        value = tensor_values(proto)
        if proto.dtype == tf.string.as_datatype_enum:
            value = [
                ({"b64": base64.b64encode(v).decode()} if alias.endswith("_bytes") else v.decode())
                for v in value
            ]
        view[alias] = value
    return view


def test_predict_parity_row_format(http: httpx.Client, channel: grpc.Channel) -> None:
    xs = [1.0, 2.0, 5.0]
    call = predict(HP2, {"x": np.array(xs, np.float32)}, version=1, rest_body={"instances": xs})
    rest = run_rest(http, call)
    assert rest.status_code == 200, rest.text
    expected = [0.5 * x + 2.0 for x in xs]
    assert rest.json() == {"predictions": expected}
    assert grpc_predict_view(run_grpc(channel, call)) == {"y": expected}


def test_predict_parity_label(http: httpx.Client, channel: grpc.Channel) -> None:
    call = predict(HP2, {"x": np.array([4.0], np.float32)}, label="canary")
    rest = run_rest(http, call)
    assert rest.status_code == 200, rest.text
    assert rest.json() == {"outputs": [5.0]}  # canary = version 2: 0.5 * 4 + 3
    response = run_grpc(channel, call)
    assert response.model_spec.version.value == 2
    assert grpc_predict_view(response) == {"y": [5.0]}


def test_predict_parity_columnar_several_outputs(http: httpx.Client, channel: grpc.Channel) -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    b = np.array([2, 3], np.int64)
    call = predict("multi", {"a": a, "b": b})
    rest = run_rest(http, call)
    assert rest.status_code == 200, rest.text
    expected = {"sum": [3.0, 7.0], "scaled": [[2.0, 4.0], [9.0, 12.0]], "total": 10.0}
    assert rest.json() == {"outputs": expected}
    assert grpc_predict_view(run_grpc(channel, call)) == expected


def test_predict_parity_strings(http: httpx.Client, channel: grpc.Channel) -> None:
    words = ["abc", "hé!"]
    call = predict(
        "strings",
        {"text": np.array([w.encode() for w in words], object)},
        rest_body={"inputs": words},
    )
    rest = run_rest(http, call)
    assert rest.status_code == 200, rest.text
    expected = {
        "upper": ["ABC", "Hé!"],  # tf.strings.upper changes ASCII letters only
        "length": [3, 4],  # bytes
        "raw_bytes": [{"b64": base64.b64encode(w.encode()[::-1]).decode()} for w in words],
    }
    assert rest.json() == {"outputs": expected}
    assert grpc_predict_view(run_grpc(channel, call)) == expected


@pytest.mark.parametrize(
    ("xs", "context", "x_used"),
    [
        ([1.0, 4.0], None, [1.0, 4.0]),
        ([None, 4.0], 10.0, [10.0, 4.0]),
    ],
    ids=["examples", "with-context"],
)
def test_classify_parity(
    http: httpx.Client,
    channel: grpc.Channel,
    xs: list[float | None],
    context: float | None,
    x_used: list[float],
) -> None:
    call = examples("classify", HP2, xs, context=context, version=1, signature="classify_x_to_y")
    rest = run_rest(http, call)
    assert rest.status_code == 200, rest.text
    expected = [[["", 0.5 * x + 2.0]] for x in x_used]
    assert rest.json() == {"results": expected}
    response = run_grpc(channel, call)
    assert [
        [[c.label, c.score] for c in row.classes] for row in response.result.classifications
    ] == expected


@pytest.mark.parametrize(
    ("xs", "context", "x_used"),
    [
        ([1.0, 4.0], None, [1.0, 4.0]),
        ([None, 4.0], 10.0, [10.0, 4.0]),
    ],
    ids=["examples", "with-context"],
)
def test_regress_parity(
    http: httpx.Client,
    channel: grpc.Channel,
    xs: list[float | None],
    context: float | None,
    x_used: list[float],
) -> None:
    call = examples("regress", HP2, xs, context=context, label="canary", signature="regress_x_to_y")
    rest = run_rest(http, call)
    assert rest.status_code == 200, rest.text
    expected = [0.5 * x + 3.0 for x in x_used]
    assert rest.json() == {"results": expected}
    assert [r.value for r in run_grpc(channel, call).result.regressions] == expected


@pytest.mark.parametrize("version", [None, 1])
def test_metadata_parity(http: httpx.Client, channel: grpc.Channel, version: int | None) -> None:
    call = metadata(HP2, version=version)
    rest = run_rest(http, call)
    assert rest.status_code == 200, rest.text
    body = rest.json()
    assert body["model_spec"] == {"name": HP2, "signature_name": "", "version": str(version or 2)}
    rest_map = json_format.ParseDict(
        body["metadata"]["signature_def"], get_model_metadata_pb2.SignatureDefMap()
    )
    response = run_grpc(channel, call)
    grpc_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(grpc_map)
    assert rest_map == grpc_map
    assert {"serving_default", "classify_x_to_y", "regress_x_to_y"} <= set(grpc_map.signature_def)
    assert response.model_spec.version.value == (version or 2)


@pytest.mark.parametrize("version", [None, 1])
def test_status_parity(http: httpx.Client, channel: grpc.Channel, version: int | None) -> None:
    call = status(HP2, version)
    rest = run_rest(http, call)
    assert rest.status_code == 200, rest.text
    rest_status = json_format.ParseDict(rest.json(), get_model_status_pb2.GetModelStatusResponse())
    grpc_status = run_grpc(channel, call)
    assert rest_status == grpc_status
    expected = [2, 1] if version is None else [version]
    assert [s.version for s in grpc_status.model_version_status] == expected
