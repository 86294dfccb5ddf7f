"""gRPC API through the official ``tensorflow_serving.apis`` stubs (compat doc §2).

PredictionService (Predict, Classify, Regress, MultiInference, GetModelMetadata),
ModelService.GetModelStatus, the gRPC health service, the Unix socket and
``--enable_serialization_as_tensor_content``. Expected values come from the fixture
models' math (half_plus_two: v1 y = 0.5x + 2, v2 y = 0.5x + 3); tensors are decoded
with TensorFlow's own ``Tensor::FromProto`` (``tf.io.parse_tensor``), not the server's code.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.harness import Server, model_config, start_server

TIMEOUT = 20.0
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
OFFSET = {1: 2.0, 2: 3.0}  # half_plus_two version -> b in y = 0.5 x + b

# all_types: alias -> (dtype, typed field, two sample values covering the type's range).
ALL_TYPES: dict[str, tuple[int, str, list[Any]]] = {
    "f32": (types_pb2.DT_FLOAT, "float_val", [1.5, -3.25]),
    "f64": (types_pb2.DT_DOUBLE, "double_val", [2.0**-40, -1e300]),
    "i8": (types_pb2.DT_INT8, "int_val", [-128, 127]),
    "i16": (types_pb2.DT_INT16, "int_val", [-32768, 32767]),
    "i32": (types_pb2.DT_INT32, "int_val", [-(2**31), 2**31 - 1]),
    "i64": (types_pb2.DT_INT64, "int64_val", [-(2**63), 2**63 - 1]),
    "u8": (types_pb2.DT_UINT8, "int_val", [0, 255]),
    "u16": (types_pb2.DT_UINT16, "int_val", [1, 65535]),
    "u32": (types_pb2.DT_UINT32, "uint32_val", [1, 2**32 - 1]),
    "u64": (types_pb2.DT_UINT64, "uint64_val", [1, 2**64 - 1]),
    "b": (types_pb2.DT_BOOL, "bool_val", [False, True]),
    "s": (types_pb2.DT_STRING, "string_val", [b"a\x00b", "é".encode() + b"\xff"]),
}
ZERO: dict[str, Any] = {"b": False, "s": b""}


# ---- helpers ------------------------------------------------------------------------------


def decode(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """TensorFlow's own decoding of a TensorProto (C++ ``Tensor::FromProto``)."""
    tensor = tf.io.parse_tensor(proto.SerializeToString(), out_type=tf.as_dtype(proto.dtype))
    return np.asarray(tensor.numpy())


def typed(
    dtype: int, field: str, values: Sequence[Any], shape: Sequence[int]
) -> tensor_pb2.TensorProto:
    """A TensorProto carrying ``values`` in its typed ``field`` (no tensor_content)."""
    proto = tensor_pb2.TensorProto(dtype=dtype)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    getattr(proto, field).extend(values)
    return proto


def floats(values: Sequence[float], shape: Sequence[int] | None = None) -> tensor_pb2.TensorProto:
    return typed(types_pb2.DT_FLOAT, "float_val", values, [len(values)] if shape is None else shape)


def set_spec(
    spec: Any,
    name: str,
    version: int | None = None,
    label: str | None = None,
    signature: str | None = None,
) -> None:
    spec.name = name
    if version is not None:
        spec.version.value = version
    if label is not None:
        spec.version_label = label
    if signature is not None:
        spec.signature_name = signature


def predict_request(
    name: str,
    inputs: dict[str, tensor_pb2.TensorProto],
    *,
    version: int | None = None,
    label: str | None = None,
    signature: str | None = None,
    output_filter: Sequence[str] = (),
) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(output_filter=list(output_filter))
    set_spec(request.model_spec, name, version, label, signature)
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(value)
    return request


def example(**features: float) -> tf.train.Example:
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                key: tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
                for key, value in features.items()
            }
        )
    )


def examples_request(
    kind: type[Message],
    name: str,
    xs: Sequence[float | None],
    *,
    context: float | None = None,
    version: int | None = None,
    label: str | None = None,
    signature: str | None = None,
) -> Any:
    """A Classification/Regression request; ``None`` in ``xs`` is an example without x."""
    request: Any = kind()
    set_spec(request.model_spec, name, version, label, signature)
    fill_input(request.input, xs, context)
    return request


def fill_input(inp: Any, xs: Sequence[float | None], context: float | None) -> None:
    items = [example() if x is None else example(x=x) for x in xs]
    if context is None:
        inp.example_list.examples.extend(items)
    else:
        inp.example_list_with_context.examples.extend(items)
        inp.example_list_with_context.context.CopyFrom(example(x=context))


def rpc_error(method: Callable[..., Any], request: Message) -> tuple[grpc.StatusCode, str]:
    """Call ``method`` expecting a failure; returns (code, details)."""
    with pytest.raises(grpc.RpcError) as info:
        method(request, timeout=TIMEOUT)
    error = info.value
    assert isinstance(error, grpc.Call)
    return error.code(), error.details() or ""


def half_plus_two(xs: Sequence[float], version: int) -> np.ndarray:
    return np.float32(0.5) * np.asarray(xs, np.float32) + np.float32(OFFSET[version])


def health_status(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    status: int = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT).status
    return status


def peak_rss_kib(pid: int) -> int:
    """``VmHWM`` (peak resident set) of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("VmHWM missing from /proc status")


# ---- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def models(channel: grpc.Channel) -> model_service_pb2_grpc.ModelServiceStub:
    return model_service_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture(scope="module")
def socket_server(models_dir: Path) -> Iterator[tuple[Server, str]]:
    """No TCP gRPC (``--port=0``), gRPC on a Unix socket, outputs as tensor_content."""
    folder = Path(tempfile.mkdtemp(prefix="ts-sock-", dir="/tmp"))
    config = folder / "models.config"
    config.write_text(
        model_config(
            [
                ("half_plus_two", str(models_dir / "half_plus_two"), ""),
                ("all_types", str(models_dir / "all_types"), ""),
            ]
        )
    )
    socket_path = folder / "grpc.sock"
    srv = start_server(
        [
            f"--model_config_file={config}",
            f"--grpc_socket_path={socket_path}",
            "--enable_serialization_as_tensor_content=true",
        ],
        grpc_port=False,
    )
    yield srv, f"unix:{socket_path}"
    srv.stop()


@pytest.fixture(scope="module")
def socket_stub(
    socket_server: tuple[Server, str],
) -> Iterator[prediction_service_pb2_grpc.PredictionServiceStub]:
    with grpc.insecure_channel(socket_server[1]) as chan:
        yield prediction_service_pb2_grpc.PredictionServiceStub(chan)


@pytest.fixture(scope="module")
def broken_server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose only model fails to load."""
    config = tmp_path_factory.mktemp("broken") / "models.config"
    config.write_text(model_config([("broken", str(models_dir / "broken"), "")]))
    srv = start_server(
        [
            f"--model_config_file={config}",
            "--enable_grpc_healthcheck_service=true",
            "--max_num_load_retries=0",
        ]
    )
    yield srv
    srv.stop()


# ---- Predict ------------------------------------------------------------------------------


def test_predict_make_tensor_proto_resolves_latest_and_echoes_spec(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    x = tf.make_tensor_proto(np.array([1.0, 2.0, 5.0], np.float32))
    assert x.tensor_content and not x.float_val  # the usual client encoding
    response = stub.Predict(predict_request("half_plus_two", {"x": x}), timeout=TIMEOUT)
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.WhichOneof("version_choice") == "version"
    assert response.model_spec.version.value == 2
    assert response.model_spec.signature_name == "serving_default"
    assert list(response.outputs) == ["y"]
    y = response.outputs["y"]
    assert y.dtype == types_pb2.DT_FLOAT
    assert [d.size for d in y.tensor_shape.dim] == [3]
    assert not y.tensor_content and len(y.float_val) == 3  # typed field by default
    np.testing.assert_array_equal(decode(y), half_plus_two([1.0, 2.0, 5.0], 2))


@pytest.mark.parametrize(
    ("values", "shape", "x"),
    [
        ([1.0, 2.0, 5.0], [3], [1.0, 2.0, 5.0]),
        ([1.0, 3.0], [4], [1.0, 3.0, 3.0, 3.0]),  # the last value is repeated
        ([7.0], [3], [7.0, 7.0, 7.0]),
        ([], [3], [0.0, 0.0, 0.0]),  # no values: zero-filled
        ([], [0], []),
    ],
    ids=["full", "last-repeated", "one-value", "zero-values", "empty"],
)
def test_predict_typed_float_val(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    values: list[float],
    shape: list[int],
    x: list[float],
) -> None:
    request = predict_request("half_plus_two", {"x": floats(values, shape)}, version=1)
    response = stub.Predict(request, timeout=TIMEOUT)
    y = decode(response.outputs["y"])
    assert y.shape == (len(x),)
    np.testing.assert_array_equal(y, half_plus_two(x, 1))


@pytest.mark.parametrize(
    ("choice", "version"),
    [
        ({"version": 1}, 1),
        ({"version": 2}, 2),
        ({"label": "stable"}, 1),
        ({"label": "canary"}, 2),
    ],
    ids=["version-1", "version-2", "label-stable", "label-canary"],
)
def test_predict_model_spec_version_and_label(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    choice: dict[str, Any],
    version: int,
) -> None:
    request = predict_request(
        "half_plus_two", {"x": floats([4.0])}, signature="serving_default", **choice
    )
    response = stub.Predict(request, timeout=TIMEOUT)
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == version  # the label resolved to its version
    assert response.model_spec.signature_name == "serving_default"
    np.testing.assert_array_equal(decode(response.outputs["y"]), half_plus_two([4.0], version))


def test_predict_all_types_from_make_tensor_proto(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    arrays = {
        alias: np.array(values, dtype=tf.as_dtype(dtype).as_numpy_dtype)
        for alias, (dtype, _, values) in ALL_TYPES.items()
    }
    inputs = {alias: tf.make_tensor_proto(array) for alias, array in arrays.items()}
    response = stub.Predict(predict_request("all_types", inputs), timeout=TIMEOUT)
    assert sorted(response.outputs) == sorted(ALL_TYPES)
    for alias, (dtype, field, _) in ALL_TYPES.items():
        out = response.outputs[alias]
        assert out.dtype == dtype, alias
        assert len(getattr(out, field)) == 2 and not out.tensor_content, alias
        np.testing.assert_array_equal(decode(out), arrays[alias], err_msg=alias)


@pytest.mark.parametrize("mode", ["full", "last-repeated", "zero-values"])
def test_predict_all_types_typed_fields(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    mode: str,
) -> None:
    inputs, expected = {}, {}
    for alias, (dtype, field, values) in ALL_TYPES.items():
        np_type = tf.as_dtype(dtype).as_numpy_dtype
        sent = {"full": values, "last-repeated": values, "zero-values": []}[mode]
        size = 2 if mode == "full" else 4
        inputs[alias] = typed(dtype, field, sent, [size])
        full = {
            "full": values,
            "last-repeated": [*values, values[-1], values[-1]],
            "zero-values": [ZERO.get(alias, 0)] * 4,
        }[mode]
        expected[alias] = np.array(full, dtype=np_type)
    response = stub.Predict(predict_request("all_types", inputs), timeout=TIMEOUT)
    for alias in ALL_TYPES:
        np.testing.assert_array_equal(
            decode(response.outputs[alias]), expected[alias], err_msg=alias
        )


def test_predict_string_tensor_content(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    words = [b"abc", b"", b"hello world"]
    # TensorFlow's string-list encoding: one varint length per element, then the bytes.
    content = bytes(len(w) for w in words) + b"".join(words)
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_content=content)
    proto.tensor_shape.dim.add(size=len(words))
    assert list(decode(proto)) == words  # TensorFlow agrees with the encoding
    response = stub.Predict(predict_request("strings", {"text": proto}), timeout=TIMEOUT)
    assert list(decode(response.outputs["upper"])) == [w.upper() for w in words]
    assert list(decode(response.outputs["length"])) == [len(w) for w in words]
    assert list(decode(response.outputs["raw_bytes"])) == [w[::-1] for w in words]


def multi_inputs() -> dict[str, tensor_pb2.TensorProto]:
    return {
        "a": tf.make_tensor_proto(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)),
        "b": tf.make_tensor_proto(np.array([2, 3], np.int64)),
    }


@pytest.mark.parametrize("output_filter", [(), ("scaled",), ("total", "sum")])
def test_predict_output_filter_selects_outputs(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    output_filter: tuple[str, ...],
) -> None:
    a = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    expected = {
        "sum": a.sum(axis=1),
        "scaled": a * np.array([[2.0], [3.0]], np.float32),
        "total": np.float32(a.sum()),
    }
    request = predict_request("multi", multi_inputs(), output_filter=output_filter)
    response = stub.Predict(request, timeout=TIMEOUT)
    assert sorted(response.outputs) == sorted(output_filter or expected)
    for alias, out in response.outputs.items():
        np.testing.assert_array_equal(decode(out), expected[alias], err_msg=alias)


def test_predict_output_filter_unknown_alias(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    request = predict_request("multi", multi_inputs(), output_filter=["sum", "nope"])
    assert rpc_error(stub.Predict, request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "output tensor alias not found in signature: nope Outputs expected to be in the set "
        "{scaled,sum,total}.",
    )


def test_predict_output_filter_duplicate_alias(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    request = predict_request("multi", multi_inputs(), output_filter=["sum", "total", "sum"])
    code, details = rpc_error(stub.Predict, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("duplicate output tensor alias") and details.endswith(": sum")


# ---- Predict errors (§2.4) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "code", "message"),
    [
        ({"name": ""}, grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified."),
        (
            {"name": "nope"},
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Latest(nope)",
        ),
        (
            {"name": "half_plus_two", "version": 7},
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Specific(half_plus_two, 7)",
        ),
        (
            {"name": "half_plus_two", "label": "nope"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "Unrecognized servable version label: nope",
        ),
    ],
    ids=["empty-name", "unknown-model", "unknown-version", "unknown-label"],
)
def test_predict_unresolvable_model_spec(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    spec: dict[str, Any],
    code: grpc.StatusCode,
    message: str,
) -> None:
    request = predict_request(inputs={"x": floats([1.0])}, **spec)
    assert rpc_error(stub.Predict, request) == (code, message)


def test_predict_unknown_signature_is_failed_precondition(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    request = predict_request("half_plus_two", {"x": floats([1.0])}, signature="nope")
    code, details = rpc_error(stub.Predict, request)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.startswith('Serving signature key "nope" not found.')


@pytest.mark.parametrize(
    ("model", "inputs", "message"),
    [
        (
            "half_plus_two",
            {"x": floats([1.0]), "q": floats([1.0])},
            "input size does not match signature: 2!=1 len({q,x}) != len({x}). Sent extra: {q}. "
            "Missing but required: {}.",
        ),
        (
            "half_plus_two",
            {},
            "input size does not match signature: 0!=1 len({}) != len({x}). "
            "Sent extra: {}. Missing but required: {x}.",
        ),
        (
            "multi",
            {"a": tf.make_tensor_proto(np.ones((1, 2), np.float32))},
            "input size does not match signature: 1!=2 len({a}) != len({a,b}). Sent extra: {}. "
            "Missing but required: {b}.",
        ),
    ],
    ids=["extra", "none", "missing"],
)
def test_predict_input_names_must_match_signature(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    model: str,
    inputs: dict[str, tensor_pb2.TensorProto],
    message: str,
) -> None:
    request = predict_request(model, inputs)
    code, details = rpc_error(stub.Predict, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith(message + " Signature 'serving_default' takes "), details


def test_predict_wrong_dtype(stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    x = tf.make_tensor_proto(np.array([1, 2], np.int32))
    code, details = rpc_error(stub.Predict, predict_request("half_plus_two", {"x": x}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "float" in details and "int32" in details


def content_proto(dtype: int, content: bytes, shape: Sequence[int]) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_content=content)
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


@pytest.mark.parametrize(
    "proto",
    [
        content_proto(types_pb2.DT_FLOAT, np.ones(2, np.float32).tobytes(), [3]),
        content_proto(types_pb2.DT_FLOAT, np.ones(4, np.float32).tobytes(), [3]),
        content_proto(types_pb2.DT_FLOAT, b"\x00\x00\x80", [1]),
        floats([1.0, 2.0, 3.0], [2]),  # more values than the shape holds
    ],
    ids=["content-short", "content-long", "content-partial", "too-many-values"],
)
def test_predict_payload_disagreeing_with_shape(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    proto: tensor_pb2.TensorProto,
) -> None:
    code, _ = rpc_error(stub.Predict, predict_request("half_plus_two", {"x": proto}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("spec", "code", "message"),
    [
        (
            {"name": "nope"},
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Latest(nope)",
        ),
        (
            {"name": "half_plus_two", "label": "nope"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "Unrecognized servable version label: nope",
        ),
        (
            {"name": "half_plus_two", "signature": "nope"},
            grpc.StatusCode.FAILED_PRECONDITION,
            'Serving signature key "nope" not found.',
        ),
    ],
    ids=["unknown-model", "unknown-label", "unknown-signature"],
)
def test_predict_resolves_model_and_signature_before_decoding_tensors(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    spec: dict[str, Any],
    code: grpc.StatusCode,
    message: str,
) -> None:
    # As TF Serving (servable handle, then signature, then Tensor::FromProto): a malformed
    # tensor does not hide what is wrong with the ModelSpec.
    malformed = content_proto(types_pb2.DT_FLOAT, b"\x00" * 3, [-1])
    got_code, details = rpc_error(stub.Predict, predict_request(inputs={"x": malformed}, **spec))
    assert got_code == code
    assert details.startswith(message)


HUGE = [
    ("negative-dim", floats([1.0], [-1])),
    ("negative-dim-content", content_proto(types_pb2.DT_FLOAT, b"\x00" * 4, [-4])),
    ("dim-2**40-one-value", floats([1.0], [2**40])),
    ("dim-2**40-no-value", floats([], [2**40])),
    ("dim-2**40-content", content_proto(types_pb2.DT_FLOAT, b"\x00" * 4, [2**40])),
    ("dims-overflow-int64", floats([1.0], [2**31, 2**31, 2**31])),
    ("dims-overflow-to-zero", floats([], [2**32, 2**32, 0])),
]


@pytest.mark.parametrize("proto", [p for _, p in HUGE], ids=[i for i, _ in HUGE])
def test_predict_negative_or_enormous_dims_rejected_without_allocating(
    server: Server,
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    proto: tensor_pb2.TensorProto,
) -> None:
    assert server.process is not None
    before = peak_rss_kib(server.process.pid)
    model = "half_plus_two"
    code, details = rpc_error(stub.Predict, predict_request(model, {"x": proto}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    growth_mib = (peak_rss_kib(server.process.pid) - before) / 1024
    assert growth_mib < 256, f"server peak RSS grew by {growth_mib:.0f} MiB"
    # ... and it keeps serving.
    response = stub.Predict(
        predict_request(model, {"x": floats([2.0])}, version=1), timeout=TIMEOUT
    )
    np.testing.assert_array_equal(decode(response.outputs["y"]), half_plus_two([2.0], 1))


def test_predict_enormous_string_dim_rejected(
    server: Server,
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    assert server.process is not None
    before = peak_rss_kib(server.process.pid)
    for proto in (
        typed(types_pb2.DT_STRING, "string_val", [b"x" * 64], [2**40]),
        content_proto(types_pb2.DT_STRING, b"\x01x", [2**40]),
    ):
        code, _ = rpc_error(stub.Predict, predict_request("strings", {"text": proto}))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert (peak_rss_kib(server.process.pid) - before) / 1024 < 256


def test_long_message_truncated_after_1024_bytes(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    name = "s" * 3000
    request = predict_request("half_plus_two", {"x": floats([1.0])}, signature=name)
    code, details = rpc_error(stub.Predict, request)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    # grpc_status_util.cc: the first 1024 bytes of the message, then "...TRUNCATED".
    assert details == ('Serving signature key "' + name)[:1024] + "...TRUNCATED"


def test_long_non_ascii_message_truncated_on_a_character_boundary(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    name = "é" * 1000  # 2 bytes each: byte 1024 falls inside a character
    request = examples_request(
        classification_pb2.ClassificationRequest, "half_plus_two", [1.0], signature=name
    )
    code, details = rpc_error(stub.Classify, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    prefix = "No signature was found with the name: "
    whole_chars = (1024 - len(prefix)) // 2
    assert details == prefix + "é" * whole_chars + "...TRUNCATED"


# ---- tensor_content outputs and the Unix socket ---------------------------------------------


def test_unix_socket_predict(
    socket_stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    x = tf.make_tensor_proto(np.array([0.0, 10.0], np.float32))
    response = socket_stub.Predict(predict_request("half_plus_two", {"x": x}), timeout=TIMEOUT)
    assert response.model_spec.version.value == 2
    np.testing.assert_array_equal(decode(response.outputs["y"]), half_plus_two([0.0, 10.0], 2))


def test_serialization_as_tensor_content(
    socket_stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    arrays = {
        alias: np.array(values, dtype=tf.as_dtype(dtype).as_numpy_dtype)
        for alias, (dtype, _, values) in ALL_TYPES.items()
    }
    inputs = {alias: tf.make_tensor_proto(array) for alias, array in arrays.items()}
    response = socket_stub.Predict(predict_request("all_types", inputs), timeout=TIMEOUT)
    assert sorted(response.outputs) == sorted(ALL_TYPES)
    for alias, (dtype, field, _) in ALL_TYPES.items():
        out = response.outputs[alias]
        assert out.dtype == dtype, alias
        assert out.tensor_content and not getattr(out, field), alias
        np.testing.assert_array_equal(decode(out), arrays[alias], err_msg=alias)


def test_serialization_as_tensor_content_leaves_rest_alone(
    socket_server: tuple[Server, str],
) -> None:
    response = httpx.post(
        f"{socket_server[0].rest}/v1/models/half_plus_two:predict",
        json={"instances": [1.0, 4.0]},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": half_plus_two([1.0, 4.0], 2).tolist()}


# ---- Classify / Regress -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xs", "context", "x_used"),
    [
        ([1.0, 4.0, -2.0], None, [1.0, 4.0, -2.0]),
        ([None, 4.0], 10.0, [10.0, 4.0]),  # context fills the missing feature; examples win
    ],
    ids=["examples", "with-context"],
)
def test_classify(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    xs: list[float | None],
    context: float | None,
    x_used: list[float],
) -> None:
    request = examples_request(
        classification_pb2.ClassificationRequest,
        "half_plus_two",
        xs,
        context=context,
        label="stable",
        signature="classify_x_to_y",
    )
    response = stub.Classify(request, timeout=TIMEOUT)
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "classify_x_to_y"
    classifications = response.result.classifications
    assert [len(c.classes) for c in classifications] == [1] * len(xs)
    assert [c.classes[0].label for c in classifications] == [""] * len(xs)
    np.testing.assert_array_equal(
        [c.classes[0].score for c in classifications], half_plus_two(x_used, 1)
    )


@pytest.mark.parametrize(
    ("xs", "context", "x_used"),
    [
        ([1.0, 4.0, -2.0], None, [1.0, 4.0, -2.0]),
        ([None, 4.0], 10.0, [10.0, 4.0]),
    ],
    ids=["examples", "with-context"],
)
def test_regress(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    xs: list[float | None],
    context: float | None,
    x_used: list[float],
) -> None:
    request = examples_request(
        regression_pb2.RegressionRequest,
        "half_plus_two",
        xs,
        context=context,
        signature="regress_x_to_y",
    )
    response = stub.Regress(request, timeout=TIMEOUT)
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == 2
    assert response.model_spec.signature_name == "regress_x_to_y"
    np.testing.assert_array_equal(
        [r.value for r in response.result.regressions], half_plus_two(x_used, 2)
    )


@pytest.mark.parametrize("method", ["Classify", "Regress"])
def test_classify_regress_unknown_signature_is_invalid_argument(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    method: str,
) -> None:
    kind = {
        "Classify": classification_pb2.ClassificationRequest,
        "Regress": regression_pb2.RegressionRequest,
    }[method]
    request = examples_request(kind, "half_plus_two", [1.0], signature="nope")
    assert rpc_error(getattr(stub, method), request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "No signature was found with the name: nope",
    )


@pytest.mark.parametrize("method", ["Classify", "Regress"])
def test_classify_regress_default_signature_is_not_an_examples_signature(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    method: str,
) -> None:
    kind = {
        "Classify": classification_pb2.ClassificationRequest,
        "Regress": regression_pb2.RegressionRequest,
    }[method]
    request = examples_request(kind, "half_plus_two", [1.0])  # serving_default: a predict one
    code, details = rpc_error(getattr(stub, method), request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    noun = {"Classify": "classification", "Regress": "regression"}[method]
    assert details.startswith(f"No {noun} inputs found in SignatureDef: ")


@pytest.mark.parametrize("method", ["Classify", "Regress"])
def test_classify_regress_without_examples(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    method: str,
) -> None:
    kind = {
        "Classify": classification_pb2.ClassificationRequest,
        "Regress": regression_pb2.RegressionRequest,
    }[method]
    signature = {"Classify": "classify_x_to_y", "Regress": "regress_x_to_y"}[method]
    request = examples_request(kind, "half_plus_two", [], signature=signature)
    assert rpc_error(getattr(stub, method), request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Input is empty.",
    )


# ---- MultiInference -----------------------------------------------------------------------


def multi_request(
    tasks: Sequence[tuple[str, str, str]], xs: Sequence[float], *, version: int | None = None
) -> inference_pb2.MultiInferenceRequest:
    request = inference_pb2.MultiInferenceRequest()
    for model, signature, method in tasks:
        task = request.tasks.add(method_name=method)
        set_spec(task.model_spec, model, version, signature=signature)
    fill_input(request.input, xs, None)
    return request


def test_multi_inference_classify_and_regress(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    xs = [1.0, 4.0]
    request = multi_request(
        [
            ("half_plus_two", "classify_x_to_y", CLASSIFY),
            ("half_plus_two", "regress_x_to_y", REGRESS),
        ],
        xs,
        version=1,
    )
    response = stub.MultiInference(request, timeout=TIMEOUT)
    assert len(response.results) == 2
    classified, regressed = response.results
    assert classified.WhichOneof("result") == "classification_result"
    assert regressed.WhichOneof("result") == "regression_result"
    for result, signature in ((classified, "classify_x_to_y"), (regressed, "regress_x_to_y")):
        assert result.model_spec.name == "half_plus_two"
        assert result.model_spec.version.value == 1
        assert result.model_spec.signature_name == signature
    expected = half_plus_two(xs, 1)
    np.testing.assert_array_equal(
        [c.classes[0].score for c in classified.classification_result.classifications], expected
    )
    np.testing.assert_array_equal(
        [r.value for r in regressed.regression_result.regressions], expected
    )


def test_multi_inference_tasks_must_name_one_model(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    request = multi_request(
        [("half_plus_two", "classify_x_to_y", CLASSIFY), ("mlp", "regress_x_to_y", REGRESS)], [1.0]
    )
    code, details = rpc_error(stub.MultiInference, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "All ModelSpecs in a MultiInferenceRequest must access the same model name" in details


def test_multi_inference_duplicate_signature(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    request = multi_request(
        [
            ("half_plus_two", "regress_x_to_y", REGRESS),
            ("half_plus_two", "regress_x_to_y", REGRESS),
        ],
        [1.0],
    )
    assert rpc_error(stub.MultiInference, request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Duplicate evaluation of signature: regress_x_to_y",
    )


# ---- GetModelMetadata ---------------------------------------------------------------------


def metadata_request(
    name: str, fields: Sequence[str] = ("signature_def",), version: int | None = None
) -> get_model_metadata_pb2.GetModelMetadataRequest:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=list(fields))
    set_spec(request.model_spec, name, version)
    return request


@pytest.mark.parametrize("version", [None, 1])
def test_get_model_metadata_packs_signature_def_map(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    version: int | None,
) -> None:
    response = stub.GetModelMetadata(
        metadata_request("half_plus_two", version=version), timeout=TIMEOUT
    )
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == (version or 2)
    assert list(response.metadata) == ["signature_def"]
    packed = response.metadata["signature_def"]
    assert packed.type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert packed.Unpack(signatures)
    sig = signatures.signature_def
    assert {"serving_default", "classify_x_to_y", "regress_x_to_y"} <= set(sig)
    default = sig["serving_default"]
    assert default.method_name == "tensorflow/serving/predict"
    assert list(default.inputs) == ["x"] and list(default.outputs) == ["y"]
    assert default.inputs["x"].dtype == types_pb2.DT_FLOAT
    assert [d.size for d in default.inputs["x"].tensor_shape.dim] == [-1]
    assert sig["classify_x_to_y"].method_name == CLASSIFY
    assert sig["regress_x_to_y"].method_name == REGRESS
    assert sig["regress_x_to_y"].inputs["inputs"].dtype == types_pb2.DT_STRING


@pytest.mark.parametrize(
    "fields",
    [(), ("foo",), ("signature_def", "foo")],
    ids=["empty", "other", "signature_def-and-other"],
)
def test_get_model_metadata_fields_must_be_signature_def(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    fields: tuple[str, ...],
) -> None:
    code, details = rpc_error(stub.GetModelMetadata, metadata_request("half_plus_two", fields))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    expected = (
        "GetModelMetadataRequest must specify at least one metadata_field"
        if not fields
        else "Metadata field foo is not supported"
    )
    assert details == expected


def test_get_model_metadata_unknown_model(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    assert rpc_error(stub.GetModelMetadata, metadata_request("nope")) == (
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(nope)",
    )


# ---- GetModelStatus -----------------------------------------------------------------------


def status_request(
    name: str, version: int | None = None
) -> get_model_status_pb2.GetModelStatusRequest:
    request = get_model_status_pb2.GetModelStatusRequest()
    set_spec(request.model_spec, name, version)
    return request


def test_get_model_status_all_versions(models: model_service_pb2_grpc.ModelServiceStub) -> None:
    response = models.GetModelStatus(status_request("half_plus_two"), timeout=TIMEOUT)
    statuses = [
        (s.version, s.state, s.status.error_code, s.status.error_message)
        for s in response.model_version_status
    ]
    assert statuses == [(2, AVAILABLE, 0, ""), (1, AVAILABLE, 0, "")]  # highest first


def test_get_model_status_one_version(models: model_service_pb2_grpc.ModelServiceStub) -> None:
    response = models.GetModelStatus(status_request("half_plus_two", 1), timeout=TIMEOUT)
    assert [(s.version, s.state) for s in response.model_version_status] == [(1, AVAILABLE)]


@pytest.mark.parametrize(
    ("name", "version", "message"),
    [
        ("nope", None, "Could not find any versions of model nope"),
        ("half_plus_two", 7, "Could not find version 7 of model half_plus_two"),
        ("nope", 1, "Could not find version 1 of model nope"),
    ],
)
def test_get_model_status_not_found(
    models: model_service_pb2_grpc.ModelServiceStub,
    name: str,
    version: int | None,
    message: str,
) -> None:
    assert rpc_error(models.GetModelStatus, status_request(name, version)) == (
        grpc.StatusCode.NOT_FOUND,
        message,
    )


# ---- empty model name on every PredictionService method ----------------------------------


@pytest.mark.parametrize("method", ["Classify", "Regress", "MultiInference", "GetModelMetadata"])
def test_empty_model_name(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    method: str,
) -> None:
    request: Message = {
        "Classify": lambda: examples_request(
            classification_pb2.ClassificationRequest, "", [1.0], signature="classify_x_to_y"
        ),
        "Regress": lambda: examples_request(
            regression_pb2.RegressionRequest, "", [1.0], signature="regress_x_to_y"
        ),
        "MultiInference": lambda: multi_request([("", "regress_x_to_y", REGRESS)], [1.0]),
        "GetModelMetadata": lambda: metadata_request(""),
    }[method]()
    code, details = rpc_error(getattr(stub, method), request)
    assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified.")


# ---- health -------------------------------------------------------------------------------


@pytest.mark.parametrize("service", ["", "tensorflow.serving.PredictionService"])
def test_health_serving_on_main_server(channel: grpc.Channel, service: str) -> None:
    deadline = time.monotonic() + 10  # set once the initial models are in
    while health_status(channel, service) != SERVING and time.monotonic() < deadline:
        time.sleep(0.1)
    assert health_status(channel, service) == SERVING


def test_health_not_serving_when_only_model_is_broken(broken_server: Server) -> None:
    with grpc.insecure_channel(broken_server.grpc_target) as chan:
        models = model_service_pb2_grpc.ModelServiceStub(chan)
        response = models.GetModelStatus(status_request("broken"), timeout=TIMEOUT)
        [status] = response.model_version_status
        assert (status.version, status.state) == (1, END)
        assert status.status.error_code != 0 and status.status.error_message
        for service in ("", "tensorflow.serving.PredictionService"):
            assert health_status(chan, service) == NOT_SERVING
        stub = prediction_service_pb2_grpc.PredictionServiceStub(chan)
        request = predict_request("broken", {"x": floats([1.0])})
        assert rpc_error(stub.Predict, request) == (
            grpc.StatusCode.NOT_FOUND,
            "Servable not found for request: Latest(broken)",
        )
