"""Requests checked against the signature before TensorFlow runs (REST rows, columns, gRPC).

Wrong rank, wrong fixed dimension, wrong dtype, unknown and missing input names: each a
400 / INVALID_ARGUMENT naming the input and what the signature takes, never TensorFlow's
graph error (no node names). A TF1 graph is still fed tensors as sent (TF Serving's
behaviour); what TensorFlow then rejects comes back with a first line naming the model,
version and signature. Classify/Regress on a predict signature names its method and the
signatures that fit, without a SignatureDef dump.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc, regression_pb2

from tests.harness import ROOT, Server, model_config, start_server

TIMEOUT = 20.0
MLP = "/v1/models/mlp:predict"
NODE_DUMPS = ("{{node", "{{function_node", "[[", "tensor_shape {", "dim {")


def rest_error(http: httpx.Client, path: str, body: Any) -> str:
    response = http.post(path, json=body)
    assert response.status_code == 400, response.text
    message: str = response.json()["error"]
    assert not any(dump in message for dump in NODE_DUMPS), message
    return message


def grpc_error(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    model: str,
    inputs: dict[str, np.ndarray],
) -> str:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request, timeout=TIMEOUT)
    error = info.value
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    details = error.details() or ""
    assert not any(dump in details for dump in NODE_DUMPS), details
    return details


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def tf1_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with ``tf1_matmul`` (x float [-1, 3], a TF1 graph)."""
    out = tmp_path_factory.mktemp("sigmodels")
    subprocess.run(
        [sys.executable, "-m", "tests.signature_models", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    config = out / "models.config"
    config.write_text(model_config([("tf1", str(out / "tf1_matmul"), "")]))
    server = start_server([f"--model_config_file={config}"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tf1_http(tf1_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tf1_server.rest, timeout=30) as client:
        yield client


# -- TF2 signature (mlp: input_example DT_FLOAT [-1, 784]) ----------------------------------

WRONG_SHAPES = {
    "rank": ([0.1, 0.2], "[2]"),  # one row of two values, sent without the batch level
    "fixed_dim": ([[0.1, 0.2]], "[1, 2]"),
}


@pytest.mark.parametrize("case", list(WRONG_SHAPES))
@pytest.mark.parametrize("layout", ["instances", "inputs"])
def test_rest_wrong_shape_names_input_and_expected_shape(
    http: httpx.Client, case: str, layout: str
) -> None:
    value, sent = WRONG_SHAPES[case]
    message = rest_error(http, MLP, {layout: value})
    assert message == (
        f"Input 'input_example' of signature 'serving_default' has shape {sent} but the "
        "signature expects DT_FLOAT [-1, 784] (-1 = any size)."
    )


@pytest.mark.parametrize("case", list(WRONG_SHAPES))
def test_grpc_wrong_shape_names_input_and_expected_shape(
    stub: prediction_service_pb2_grpc.PredictionServiceStub, case: str
) -> None:
    value, sent = WRONG_SHAPES[case]
    details = grpc_error(stub, "mlp", {"input_example": np.array(value, np.float32)})
    assert details == (
        f"Input 'input_example' of signature 'serving_default' has shape {sent} but the "
        "signature expects DT_FLOAT [-1, 784] (-1 = any size)."
    )


def test_grpc_wrong_dtype_keeps_tf_wording_then_explains(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    details = grpc_error(stub, "mlp", {"input_example": np.zeros((1, 784), np.int32)})
    assert details == (
        "Expects arg 'input_example' to be float but int32 is provided. Input "
        "'input_example' of signature 'serving_default' is DT_FLOAT [-1, 784]; the request "
        "sent DT_INT32 [1, 784]."
    )


@pytest.mark.parametrize("layout", ["instances", "inputs"])
def test_rest_wrong_dtype_names_input_and_dtype(http: httpx.Client, layout: str) -> None:
    message = rest_error(http, MLP, {layout: [["a"] * 784]})
    assert "input_example" in message
    assert "float" in message


def test_grpc_unknown_and_missing_names_list_what_the_signature_takes(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    details = grpc_error(
        stub, "multi", {"a": np.ones((1, 2), np.float32), "c": np.ones((1,), np.int64)}
    )
    assert details == (
        "input size does not match signature: 2!=2 len({a,c}) != len({a,b}). Sent extra: {c}. "
        "Missing but required: {b}. Signature 'serving_default' takes a: DT_FLOAT [-1, 2], "
        "b: DT_INT64 [-1]; the request sent a: DT_FLOAT [1, 2], c: DT_INT64 [1]."
    )


def test_grpc_missing_name(stub: prediction_service_pb2_grpc.PredictionServiceStub) -> None:
    details = grpc_error(stub, "multi", {"a": np.ones((1, 2), np.float32)})
    assert details.startswith(
        "input size does not match signature: 1!=2 len({a}) != len({a,b}). Sent extra: {}. "
        "Missing but required: {b}. Signature 'serving_default' takes a: DT_FLOAT [-1, 2], "
        "b: DT_INT64 [-1]"
    )


@pytest.mark.parametrize(
    ("body", "name"),
    [
        ({"instances": [{"a": [1.0, 2.0], "c": 1}]}, "c"),  # unknown name, row format
        ({"instances": [{"a": [1.0, 2.0]}]}, "b"),  # missing name, row format
        ({"inputs": {"a": [[1.0, 2.0]], "c": [1]}}, "b"),  # columnar: b missing
    ],
    ids=["row-unknown", "row-missing", "columnar-missing"],
)
def test_rest_names_name_the_input(http: httpx.Client, body: Any, name: str) -> None:
    message = rest_error(http, "/v1/models/multi:predict", body)
    assert f"{name} " in message or f"{name}'" in message, message
    assert message.endswith(
        "Signature 'serving_default' takes a: DT_FLOAT [-1, 2], b: DT_INT64 [-1]."
    ), message


def test_rest_second_input_wrong_fixed_dim(http: httpx.Client) -> None:
    message = rest_error(
        http, "/v1/models/multi:predict", {"inputs": {"a": [[1.0, 2.0, 3.0]], "b": [1]}}
    )
    assert message == (
        "Input 'a' of signature 'serving_default' has shape [1, 3] but the signature expects "
        "DT_FLOAT [-1, 2] (-1 = any size)."
    )


# -- TF1 graphs: fed as sent, unless the tensor cannot fill the declared shape ------------------


def test_tf1_graph_is_fed_as_sent(http: httpx.Client) -> None:
    """half_plus_two declares x [-1]; TF Serving feeds [2, 1] anyway (elementwise math)."""
    response = http.post(
        "/v1/models/half_plus_two/versions/1:predict", json={"instances": [[1.0], [2.0]]}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [[2.5], [3.0]]}


@pytest.mark.parametrize("layout", ["instances", "inputs"])
def test_tf1_tensor_that_cannot_fill_the_shape(tf1_http: httpx.Client, layout: str) -> None:
    message = rest_error(tf1_http, "/v1/models/tf1:predict", {layout: [[1.0, 2.0]]})
    assert message == (
        "Input 'x' of signature 'serving_default' has shape [1, 2] but the signature expects "
        "DT_FLOAT [-1, 3] (-1 = any size): 2 values cannot fill that shape."
    )


def test_tf1_runtime_error_names_model_version_signature(tf1_http: httpx.Client) -> None:
    body = {"instances": [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]}  # 6 values: fed, MatMul fails
    message = rest_error(tf1_http, "/v1/models/tf1:predict", body)
    first, second = message.split("\n")
    assert first == (
        "Model 'tf1' version 1 could not run signature 'serving_default': the input shapes "
        "do not fit the model's computation: input 'x' has shape [1, 6] but the signature "
        "declares DT_FLOAT [-1, 3]."
    )
    assert second == "TensorFlow: Matrix size-incompatible: In[0]: [1,6], In[1]: [3,2]"


def test_tf1_runtime_error_over_grpc(tf1_server: Server) -> None:
    with grpc.insecure_channel(tf1_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        details = grpc_error(stub, "tf1", {"x": np.ones((2, 6), np.float32)})
    assert details.startswith("Model 'tf1' version 1 could not run signature 'serving_default'")
    assert "TensorFlow: Matrix size-incompatible" in details


# -- Classify / Regress on a predict signature ------------------------------------------------


def test_rest_regress_on_predict_signature_lists_fitting_ones(http: httpx.Client) -> None:
    response = http.post(
        "/v1/models/half_plus_two/versions/1:regress", json={"examples": [{"x": 1.0}]}
    )
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    assert message == (
        "No regression inputs found in SignatureDef: signature 'serving_default' "
        "(tensorflow/serving/predict) takes {x: DT_FLOAT [-1]} and returns "
        "{y: DT_FLOAT [-1]}. Regress needs a signature with one DT_STRING input 'inputs' "
        "(serialized tf.Example) and one DT_FLOAT output 'outputs', method_name "
        "tensorflow/serving/regress. Signatures of this model that fit Regress: "
        "regress_x_to_y (name one in signature_name)."
    )


def test_rest_classify_on_predict_signature_lists_fitting_ones(http: httpx.Client) -> None:
    response = http.post(
        "/v1/models/half_plus_two/versions/1:classify", json={"examples": [{"x": 1.0}]}
    )
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    assert message.startswith("No classification inputs found in SignatureDef: ")
    assert "(tensorflow/serving/predict)" in message
    assert "Signatures of this model that fit Classify: classify_x_to_y" in message
    assert "tensor_shape" not in message


def test_grpc_regress_on_predict_signature(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half_plus_two"
    example = request.input.example_list.examples.add()
    example.features.feature["x"].float_list.value.append(1.0)
    with pytest.raises(grpc.RpcError) as info:
        stub.Regress(request, timeout=TIMEOUT)
    error = info.value
    assert isinstance(error, grpc.Call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = error.details() or ""
    assert details.startswith("No regression inputs found in SignatureDef: signature ")
    assert "fit Regress: regress_x_to_y" in details
    assert "dim {" not in details
