"""Conformance: TensorFlow Serving's own config files in ``../shared/testdata/tfserving``.

Ports of ``tensorflow_model_server_test.py``'s ``testGoodModelConfig``,
``testBadModelConfig``, ``testPrometheusEndpoint``, ``testGoodGrpcChannelArgs``,
``testPredictBatching``, ``testPredictOnTfLite`` and ``testPredictWithSigDefOnTfLite``.
Expected values come from the models' math: half_plus_two y = 0.5x + 2,
half_plus_three y = 0.5x + 3, matrix_half_plus_two y = 0.5x + 2 element-wise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2

from tests.conformance.conftest import RPC_TIMEOUT, Endpoint, endpoint, predict_request
from tests.harness import run_server_expecting_exit, start_server

pytestmark = pytest.mark.conformance

START_TIMEOUT = 120.0


def grpc_predict(ep: Endpoint, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
    return ep.prediction.Predict(request, timeout=RPC_TIMEOUT)


def check_y(result: predict_pb2.PredictResponse, model: str, y: float, version: int) -> None:
    """TF Serving's ``VerifyPredictRequest`` checks."""
    assert "y" in result.outputs
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert list(result.outputs["y"].float_val) == [y]
    assert result.model_spec.name == model
    assert result.model_spec.signature_name == "serving_default"
    assert result.model_spec.version.value == version


# ---- good_model_config.txt -----------------------------------------------------------------


@pytest.mark.parametrize("specify_output", [True, False])
def test_good_config_half_plus_two_grpc(tfs_good_config: Endpoint, specify_output: bool) -> None:
    request = predict_request("half_plus_two", output_filter=specify_output)
    check_y(grpc_predict(tfs_good_config, request), "half_plus_two", 3.0, 123)


@pytest.mark.parametrize("specify_output", [True, False])
def test_good_config_half_plus_two_batch_input(
    tfs_good_config: Endpoint, specify_output: bool
) -> None:
    request = predict_request("half_plus_two", shape=(1, 1), output_filter=specify_output)
    check_y(grpc_predict(tfs_good_config, request), "half_plus_two", 3.0, 123)


@pytest.mark.parametrize("specify_output", [True, False])
def test_good_config_half_plus_three_grpc(tfs_good_config: Endpoint, specify_output: bool) -> None:
    request = predict_request("half_plus_three", output_filter=specify_output)
    check_y(grpc_predict(tfs_good_config, request), "half_plus_three", 4.0, 123)


def test_good_config_rest(tfs_good_config: Endpoint) -> None:
    """Both models of the file are AVAILABLE and answer x = 2.0 with 3.0 and 4.0."""
    for name in ("half_plus_two", "half_plus_three"):
        status = tfs_good_config.http.get(f"/v1/models/{name}")
        assert status.status_code == 200, status.text
        assert status.json() == {
            "model_version_status": [
                {
                    "version": "123",
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }
    two = tfs_good_config.http.post(
        "/v1/models/half_plus_two:predict", content=json.dumps({"instances": [[2.0]]})
    )
    assert two.status_code == 200, two.text
    assert two.json() == {"predictions": [[3.0]]}
    three = tfs_good_config.http.post(
        "/v1/models/half_plus_three:predict", content=json.dumps({"instances": [2.0]})
    )
    assert three.status_code == 200, three.text
    assert three.json() == {"predictions": [4.0]}


def test_good_config_unknown_model(tfs_good_config: Endpoint) -> None:
    """Only the file's models exist (no ``default`` from --model_name's default value)."""
    response = tfs_good_config.http.get("/v1/models/default")
    assert response.status_code == 404
    assert response.json() == {"error": "Could not find any versions of model default"}


# ---- monitoring_config.txt -----------------------------------------------------------------


def test_prometheus_endpoint(tfs_good_config: Endpoint) -> None:
    """``testPrometheusEndpoint``: the REST port serves metric type information."""
    response = tfs_good_config.http.get("/monitoring/prometheus/metrics")
    assert response.status_code == 200
    assert "# TYPE" in response.text


# ---- bad_model_config.txt ------------------------------------------------------------------


def test_bad_model_config_fails_at_start_up(tfs_testdata: Path) -> None:
    """``testBadModelConfig``: not a text proto -> the process exits non-zero and says why.

    TF Serving's two lines come first, exactly; tensorserve's explanation follows.
    """
    path = tfs_testdata / "bad_model_config.txt"
    done = run_server_expecting_exit([f"--model_config_file={path}"], START_TIMEOUT)
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    protobuf = (
        "Error parsing text-format tensorflow.serving.ModelServerConfig: 1:1: Message type "
        '"tensorflow.serving.ModelServerConfig" has no field named "improperly".'
    )
    failed = f"Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file: '{path}'"
    start = lines.index(protobuf)
    assert lines[start + 1] == failed
    assert lines[start + 2].startswith(f"tensorserve: {path} is not a valid")
    assert str(path) in done.stderr
    assert "ModelServerConfig" in done.stderr
    assert '"improperly"' in done.stderr


# ---- TFLite ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["", "_with_sigdef"])
def tfs_tflite(tfs_testdata: Path, request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    """``testPredictOnTfLite`` / ``testPredictWithSigDefOnTfLite``: the TF Lite half_plus_two
    (signature generated from tensor names, or stored in the model's metadata)."""
    model = tfs_testdata / f"saved_model_half_plus_two_tflite{request.param}"
    server = start_server(
        ["--model_name=default", f"--model_base_path={model}", "--prefer_tflite_model=true"]
    )
    yield from endpoint(server)


@pytest.mark.parametrize("specify_output", [True, False])
def test_tflite_predict_grpc(tfs_tflite: Endpoint, specify_output: bool) -> None:
    request = predict_request("default", output_filter=specify_output)
    check_y(grpc_predict(tfs_tflite, request), "default", 3.0, 123)


def test_tflite_predict_rest(tfs_tflite: Endpoint) -> None:
    response = tfs_tflite.http.post("/v1/models/default:predict", json={"instances": [2.0]})
    assert response.json() == {"predictions": [3.0]}


def test_tflite_metadata(tfs_tflite: Endpoint) -> None:
    metadata = tfs_tflite.http.get("/v1/models/default/metadata").json()["metadata"]
    sig = metadata["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert list(sig["inputs"]) == ["x"] and list(sig["outputs"]) == ["y"]


def test_an_old_tflite_flag_is_refused_at_start_up(tfs_testdata: Path) -> None:
    """``--use_tflite_model`` is not a flag of TF Serving 2.x: a usage error (exit status 2)."""
    model = tfs_testdata / "saved_model_half_plus_two_tflite"
    done = run_server_expecting_exit(
        ["--model_name=default", f"--model_base_path={model}", "--use_tflite_model=true"],
        START_TIMEOUT,
    )
    assert done.returncode == 2
    assert "unrecognized arguments: --use_tflite_model=true" in done.stderr


# ---- matrix_half_plus_two with --enable_batching and batching_config.txt ------------------


def matrix_inputs(count: int) -> list[np.ndarray]:
    """``count`` requests of 1..3 distinct 3x3 float32 matrices each."""
    rng = np.random.default_rng(1234)
    return [rng.uniform(-100, 100, size=(1 + i % 3, 3, 3)).astype(np.float32) for i in range(count)]


def rest_matrix(ep: Endpoint, x: np.ndarray) -> Any:
    response = ep.http.post(
        "/v1/models/matrix:predict", content=json.dumps({"instances": x.tolist()})
    )
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def grpc_matrix(ep: Endpoint, x: np.ndarray) -> np.ndarray:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "matrix"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(x))
    response = grpc_predict(ep, request)
    assert response.model_spec.version.value == 1
    return np.asarray(tf.make_ndarray(response.outputs["y"]))


def test_batching_status(tfs_batching: Endpoint) -> None:
    response = tfs_batching.http.get("/v1/models/matrix")
    assert response.status_code == 200
    assert response.json()["model_version_status"][0]["state"] == "AVAILABLE"


def test_batched_rest_equals_unbatched(tfs_batching: Endpoint, tfs_zoo: Endpoint) -> None:
    """Concurrent REST requests through the batcher answer exactly like the same model
    served without batching (``tfs_zoo``'s ``matrix``) and like 0.5x + 2 in float32."""
    inputs = matrix_inputs(48)
    with ThreadPoolExecutor(max_workers=16) as pool:
        batched = list(pool.map(lambda x: rest_matrix(tfs_batching, x), inputs))
    for x, got in zip(inputs, batched, strict=True):
        assert got == rest_matrix(tfs_zoo, x)
        assert np.array_equal(
            np.asarray(got, dtype=np.float32), np.float32(0.5) * x + np.float32(2)
        )


def test_batched_grpc_equals_unbatched(tfs_batching: Endpoint, tfs_zoo: Endpoint) -> None:
    inputs = matrix_inputs(48)
    with ThreadPoolExecutor(max_workers=16) as pool:
        batched = list(pool.map(lambda x: grpc_matrix(tfs_batching, x), inputs))
    for x, got in zip(inputs, batched, strict=True):
        assert got.dtype == np.float32
        assert got.shape == x.shape
        assert np.array_equal(got, grpc_matrix(tfs_zoo, x))
        assert np.array_equal(got, np.float32(0.5) * x + np.float32(2))


def batching_sums(ep: Endpoint) -> dict[str, float]:
    """``_count``/``_sum`` samples of the batching_session histograms (Prometheus text)."""
    response = ep.http.get("/monitoring/prometheus/metrics")
    assert response.status_code == 200
    wanted = {
        f":tensorflow:serving:batching_session:{name}_{part}"
        for name in ("input_batch_size", "processed_batch_size")
        for part in ("count", "sum")
    }
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name in wanted
    }


def test_batching_layer_runs_the_requests(tfs_batching: Endpoint) -> None:
    """batching_config.txt is applied: every request's rows go through the batcher, in at
    most as many batches as requests (TF's batching_session metrics)."""
    inputs = matrix_inputs(24)
    before = batching_sums(tfs_batching)
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda x: rest_matrix(tfs_batching, x), inputs))
    after = batching_sums(tfs_batching)
    delta = {k: after[k] - before.get(k, 0.0) for k in after}
    rows = sum(len(x) for x in inputs)
    prefix = ":tensorflow:serving:batching_session:"
    assert delta[prefix + "input_batch_size_count"] == len(inputs)
    assert delta[prefix + "input_batch_size_sum"] == rows
    assert 1 <= delta[prefix + "processed_batch_size_count"] <= len(inputs)
    assert delta[prefix + "processed_batch_size_sum"] >= rows
