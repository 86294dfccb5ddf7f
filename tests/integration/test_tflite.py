"""TF Lite models with ``--prefer_tflite_model``: a Keras model converted by
``tf.lite.TFLiteConverter`` answers like the SavedModel it came from, over TF Serving's REST
and gRPC APIs and the Open Inference Protocol, with metadata, a pool of interpreters under
concurrent calls, and server-side batching."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.harness import Server, model_config, start_server

ROWS = np.random.default_rng(7).random((4, 784), dtype=np.float32)


@pytest.fixture(scope="module")
def tflite(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("tflite") / "models.config"
    names = ("mlp", "mlp_tflite", "mlp_both")
    config.write_text(model_config([(n, str(models_dir / n), "") for n in names]))
    server = start_server(
        [
            f"--model_config_file={config}",
            "--prefer_tflite_model=true",
            "--num_tflite_pools=2",
            "--enable_batching=true",
        ]
    )
    yield server
    server.stop()


def _rest(server: Server, model: str) -> np.ndarray:
    body = {"instances": ROWS.tolist()}
    response = httpx.post(f"{server.rest}/v1/models/{model}:predict", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return np.array(response.json()["predictions"], dtype=np.float32)


def test_converted_model_answers_like_its_saved_model(tflite: Server) -> None:
    expected = _rest(tflite, "mlp")
    assert expected.shape == (4, 10)
    np.testing.assert_allclose(_rest(tflite, "mlp_tflite"), expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(_rest(tflite, "mlp_both"), expected, rtol=1e-4, atol=1e-6)


def test_the_tflite_file_is_preferred_over_the_saved_model(tflite: Server) -> None:
    logs = tflite.logs()
    assert "Loading TF Lite model (--prefer_tflite_model) model=mlp_both version=1" in logs
    assert "Loading TF Lite model (--prefer_tflite_model) model=mlp version=1" not in logs


def test_metadata_keeps_the_converted_signature_names(tflite: Server) -> None:
    response = httpx.get(f"{tflite.rest}/v1/models/mlp_tflite/metadata", timeout=10).json()
    sig = response["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    (name,) = sig["inputs"]
    assert name == "input_example"
    assert sig["inputs"][name]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in sig["inputs"][name]["tensor_shape"]["dim"]] == ["-1", "784"]
    assert list(sig["outputs"]) == ["probabilities"]


def test_grpc_predict(tflite: Server) -> None:
    import tensorflow as tf

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "mlp_tflite"
    request.inputs["input_example"].CopyFrom(tf.make_tensor_proto(ROWS))
    with grpc.insecure_channel(tflite.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=30)
    got = tf.make_ndarray(response.outputs["probabilities"])
    np.testing.assert_allclose(got, _rest(tflite, "mlp"), rtol=1e-4, atol=1e-6)
    assert response.model_spec.signature_name == "serving_default"


def test_open_inference_protocol(tflite: Server) -> None:
    body = {
        "inputs": [
            {
                "name": "input_example",
                "shape": [4, 784],
                "datatype": "FP32",
                "data": ROWS.ravel().tolist(),
            }
        ]
    }
    response = httpx.post(f"{tflite.rest}/v2/models/mlp_tflite/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    assert output["name"] == "probabilities" and output["shape"] == [4, 10]


def test_concurrent_calls_of_every_batch_size(tflite: Server) -> None:
    expected = _rest(tflite, "mlp")

    def call(rows: int) -> np.ndarray:
        body = {"instances": ROWS[:rows].tolist()}
        response = httpx.post(f"{tflite.rest}/v1/models/mlp_tflite:predict", json=body, timeout=30)
        assert response.status_code == 200, response.text
        return np.array(response.json()["predictions"], dtype=np.float32)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        sizes = [1 + i % 4 for i in range(64)]
        for rows, got in zip(sizes, pool.map(call, sizes), strict=True):
            np.testing.assert_allclose(got, expected[:rows], rtol=1e-4, atol=1e-6)


def test_a_wrong_input_is_a_clear_400(tflite: Server) -> None:
    body = {"instances": [[1.0, 2.0]]}
    response = httpx.post(f"{tflite.rest}/v1/models/mlp_tflite:predict", json=body, timeout=30)
    assert response.status_code == 400, response.text
    assert "784" in response.json()["error"]
