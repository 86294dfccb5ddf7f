"""Server-side batching end to end (compat doc §3 ``--enable_batching``, §4.2, §6 "Batching").

One extra server with ``--enable_batching``, a global ``--batching_parameters_file`` (one
batch thread, the shared pool) and ``--enable_per_model_batching_parameters``: every model
is a copy of a fixture model whose version folder holds its own ``batching_params.pbtxt``:

* ``mlp``: max_batch_size 8, a 10 ms batch timeout (so concurrent requests merge);
* ``hp2`` (half_plus_two v1, y = 0.5 x + 2): allowed_batch_sizes [2, 4, 8] with large batch
  splitting (max_batch_size 32, max_execution_batch_size 8);
* ``tiny`` (mlp): max_batch_size 16, max_enqueued_batches 1 (the queue-full scenario);
* ``widths``: a model built here whose input is ``[None, None]``, to mix non-batch shapes.

``--enable_synthetic_warmup`` is on as well (tensorserve's flag): the models have no warm-up
file, so each is warmed with zero inputs, once per allowed batch size, before it serves.

Expected answers come from the unbatched main ``server`` (mlp) or from the model's math.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.harness import Server, model_config, start_server

TIMEOUT = 30.0
METRICS = "/monitoring/prometheus/metrics"
QUEUE_FULL = "The batch scheduling queue to which this task was submitted is full"
POOL = "tests_batch_threads"
BATCHING = ":tensorflow:serving:batching_session:"
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE

GLOBAL_PARAMS = f"""
max_batch_size {{ value: 128 }}
batch_timeout_micros {{ value: 0 }}
max_enqueued_batches {{ value: 100 }}
num_batch_threads {{ value: 1 }}
thread_pool_name {{ value: "{POOL}" }}
"""
PER_MODEL_PARAMS = {
    "mlp": """
        max_batch_size { value: 8 }
        batch_timeout_micros { value: 10000 }
        max_enqueued_batches { value: 1000 }
    """,
    "hp2": """
        max_batch_size { value: 32 }
        batch_timeout_micros { value: 0 }
        max_enqueued_batches { value: 1000 }
        enable_large_batch_splitting { value: true }
        max_execution_batch_size { value: 8 }
        allowed_batch_sizes: 2 allowed_batch_sizes: 4 allowed_batch_sizes: 8
    """,
    "tiny": """
        max_batch_size { value: 16 }
        batch_timeout_micros { value: 0 }
        max_enqueued_batches { value: 1 }
    """,
    "widths": """
        max_batch_size { value: 16 }
        batch_timeout_micros { value: 20000 }
        max_enqueued_batches { value: 1000 }
    """,
}


# ---- the server ---------------------------------------------------------------------------


def export_widths_model(path: Path) -> None:
    """x float [None, None] -> total = sum(x, axis=1) [None], doubled = 2 x [None, None]."""

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="x")])
    def serve(x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"total": tf.reduce_sum(x, axis=1), "doubled": x * 2.0}

    module = tf.Module()
    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})


@dataclass
class BatchServer:
    server: Server
    metrics_at_start: str  # scraped before any test traffic


@pytest.fixture(scope="module")
def batch(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchServer]:
    root = tmp_path_factory.mktemp("batching")
    shutil.copytree(models_dir / "mlp" / "1", root / "mlp" / "1")
    shutil.copytree(models_dir / "half_plus_two" / "1", root / "hp2" / "1")
    shutil.copytree(models_dir / "mlp" / "1", root / "tiny" / "1")
    export_widths_model(root / "widths" / "1")
    for name, text in PER_MODEL_PARAMS.items():
        (root / name / "1" / "batching_params.pbtxt").write_text(text)
    config = root / "models.config"
    config.write_text(model_config([(n, str(root / n), "") for n in PER_MODEL_PARAMS]))
    params = root / "batching.config"
    params.write_text(GLOBAL_PARAMS)
    monitoring = root / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true path: "{METRICS}" }}')
    srv = start_server(
        [
            f"--model_config_file={config}",
            "--enable_batching",
            f"--batching_parameters_file={params}",
            "--enable_per_model_batching_parameters=true",
            "--enable_synthetic_warmup=true",
            f"--monitoring_config_file={monitoring}",
            "--file_system_poll_wait_seconds=0",
        ]
    )
    try:
        yield BatchServer(srv, httpx.get(srv.rest + METRICS, timeout=TIMEOUT).text)
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def rest(batch: BatchServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=batch.server.rest, timeout=TIMEOUT) as client:
        yield client


@pytest.fixture(scope="module")
def stub(batch: BatchServer) -> Iterator[prediction_service_pb2_grpc.PredictionServiceStub]:
    with grpc.insecure_channel(batch.server.grpc_target) as chan:
        yield prediction_service_pb2_grpc.PredictionServiceStub(chan)


@pytest.fixture(scope="module")
def reference(channel: grpc.Channel) -> Callable[[np.ndarray], np.ndarray]:
    """mlp probabilities from the main server, which does not batch."""
    main = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def mlp(rows: np.ndarray) -> np.ndarray:
        return grpc_predict(main, "mlp", {"input_example": rows})["probabilities"]

    return mlp


# ---- helpers ------------------------------------------------------------------------------


def grpc_predict(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    model: str,
    inputs: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    response = stub.Predict(request, timeout=TIMEOUT)
    return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}


def rest_predict(client: httpx.Client, model: str, value: np.ndarray) -> httpx.Response:
    """Columnar predict of a model with one input."""
    return client.post(f"/v1/models/{model}:predict", json={"inputs": value.tolist()})


def grpc_regress(
    stub: prediction_service_pb2_grpc.PredictionServiceStub, model: str, xs: list[float]
) -> list[float]:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "regress_x_to_y"
    for x in xs:
        example = request.input.example_list.examples.add()
        example.features.feature["x"].float_list.value.append(x)
    response = stub.Regress(request, timeout=TIMEOUT)
    return [r.value for r in response.result.regressions]


def rows(rng: random.Random, count: int) -> np.ndarray:
    return np.asarray([[rng.random() for _ in range(784)] for _ in range(count)], np.float32)


def metric(page: str, name: str, **labels: str) -> float:
    """The value of the sample ``name`` with exactly ``labels`` (0 when absent); the parser
    names counter samples ``<name>_total``."""
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name in (name, name + "_total") and sample.labels == labels:
                return float(sample.value)
    return 0.0


def scrape(client: httpx.Client) -> str:
    response = client.get(METRICS)
    assert response.status_code == 200
    return response.text


def close(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ---- tests --------------------------------------------------------------------------------


def test_every_model_loaded_with_synthetic_warmup_at_each_allowed_size(
    batch: BatchServer,
) -> None:
    with grpc.insecure_channel(batch.server.grpc_target) as chan:
        models = model_service_pb2_grpc.ModelServiceStub(chan)
        for name in PER_MODEL_PARAMS:
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = name
            status = models.GetModelStatus(request, timeout=TIMEOUT).model_version_status
            assert [(s.version, s.state) for s in status] == [(1, AVAILABLE)], name
    # Before any traffic, the batch thread already ran hp2's three signatures (predict,
    # classify, regress) once at each allowed size 2, 4 and 8, with no padding rows.
    page = batch.metrics_at_start
    for size in ("2", "4", "8"):
        assert metric(page, BATCHING + "padding_size_count", execution_batch_size=size) == 3
        assert metric(page, BATCHING + "padding_size_sum", execution_batch_size=size) == 0
    assert metric(page, BATCHING + "wrapped_run_count") >= 9 + 3  # hp2 + the other models


def test_concurrent_mixed_requests_equal_unbatched_answers(
    rest: httpx.Client,
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    reference: Callable[[np.ndarray], np.ndarray],
) -> None:
    rng = random.Random(7)
    jobs: list[tuple[str, Any]] = []
    for i in range(48):
        kind = ("rest-mlp", "grpc-mlp", "rest-regress", "grpc-regress")[i % 4]
        size = rng.randint(1, 8)
        if kind.endswith("mlp"):
            jobs.append((kind, rows(rng, size)))
        else:
            jobs.append((kind, [round(rng.uniform(-100, 100), 2) for _ in range(size)]))
    expected_mlp = {i: reference(x) for i, (k, x) in enumerate(jobs) if k.endswith("mlp")}
    before = scrape(rest)

    def run(job: tuple[str, Any]) -> Any:
        kind, x = job
        if kind == "rest-mlp":
            response = rest_predict(rest, "mlp", x)
            assert response.status_code == 200, response.text
            return np.asarray(response.json()["outputs"], np.float32)
        if kind == "grpc-mlp":
            return grpc_predict(stub, "mlp", {"input_example": x})["probabilities"]
        if kind == "rest-regress":
            body = {"signature_name": "regress_x_to_y", "examples": [{"x": v} for v in x]}
            response = rest.post("/v1/models/hp2:regress", json=body)
            assert response.status_code == 200, response.text
            return response.json()["results"]
        return grpc_regress(stub, "hp2", x)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(run, jobs))
    for i, ((kind, x), got) in enumerate(zip(jobs, answers, strict=True)):
        if kind.endswith("mlp"):
            assert got.shape == (len(x), 10)
            close(got, expected_mlp[i])
        else:
            close(np.asarray(got, np.float32), 0.5 * np.asarray(x, np.float32) + 2.0)
    after = scrape(rest)
    tasks = metric(after, BATCHING + "input_batch_size_count") - metric(
        before, BATCHING + "input_batch_size_count"
    )
    batches = metric(after, BATCHING + "wrapped_run_count") - metric(
        before, BATCHING + "wrapped_run_count"
    )
    assert tasks == len(jobs)
    assert 0 < batches < tasks  # some requests really shared a batch
    queued = metric(after, BATCHING + "queuing_latency_count", thread_pool_name=POOL)
    # One queuing latency per task of a batch (a request split across batches counts twice).
    assert queued - metric(
        before, BATCHING + "queuing_latency_count", thread_pool_name=POOL
    ) >= len(jobs)


def test_requests_with_different_non_batch_shapes_are_not_merged(
    rest: httpx.Client,
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    rng = random.Random(11)
    jobs = []
    for i in range(40):
        width, size = rng.randint(1, 5), rng.randint(1, 4)
        x = np.asarray(
            [[rng.uniform(-9, 9) for _ in range(width)] for _ in range(size)], np.float32
        )
        jobs.append(("rest" if i % 2 else "grpc", x))

    def run(job: tuple[str, np.ndarray]) -> dict[str, np.ndarray]:
        kind, x = job
        if kind == "grpc":
            return grpc_predict(stub, "widths", {"x": x})
        response = rest_predict(rest, "widths", x)
        assert response.status_code == 200, response.text
        return {k: np.asarray(v, np.float32) for k, v in response.json()["outputs"].items()}

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(run, jobs))
    for (_, x), got in zip(jobs, answers, strict=True):
        assert got["doubled"].shape == x.shape
        close(got["doubled"], 2 * x)
        close(got["total"], x.sum(axis=1))


def test_full_queue_is_unavailable_with_tf_serving_message(
    rest: httpx.Client,
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    reference: Callable[[np.ndarray], np.ndarray],
) -> None:
    rng = random.Random(3)
    x = rows(rng, 16)  # one full batch per request: at most 1 waits while 1 runs
    want = reference(x)

    def run(i: int) -> tuple[str, Any]:
        if i % 2:
            response = rest_predict(rest, "tiny", x)
            if response.status_code == 200:
                return "ok", np.asarray(response.json()["outputs"], np.float32)
            return f"http {response.status_code}", response.json()["error"]
        try:
            return "ok", grpc_predict(stub, "tiny", {"input_example": x})["probabilities"]
        except grpc.RpcError as error:
            assert isinstance(error, grpc.Call)
            return f"grpc {error.code().name}", error.details()

    rejected: list[tuple[str, Any]] = []
    for _burst in range(8):
        with ThreadPoolExecutor(24) as pool:
            results = list(pool.map(run, range(24)))
        for status, payload in results:
            if status == "ok":
                close(payload, want)
            else:
                assert status in ("http 503", "grpc UNAVAILABLE"), (status, payload)
                assert payload.startswith(QUEUE_FULL), payload
                rejected.append((status, payload))
        if rejected:
            break
    assert rejected, "no request was rejected in 8 bursts of 24"


def test_request_larger_than_max_batch_size_is_invalid(
    rest: httpx.Client,
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    x = rows(random.Random(5), 9)  # mlp's own file says 8 (the global file says 128)
    response = rest_predict(rest, "mlp", x)
    assert response.status_code == 400
    assert response.json() == {"error": "Task size 9 is larger than maximum input batch size 8"}
    with pytest.raises(grpc.RpcError) as info:
        grpc_predict(stub, "mlp", {"input_example": x})
    assert isinstance(info.value, grpc.Call)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "Task size 9 is larger than maximum input batch size 8"


def test_padding_to_allowed_sizes_keeps_answers(
    rest: httpx.Client,
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    before = scrape(rest)
    stats_before = _batch_stats(rest, "hp2")
    xs = np.asarray([1.0, -2.0, 7.5], np.float32)  # 3 rows -> padded to 4
    got = grpc_predict(stub, "hp2", {"x": xs})["y"]
    close(got, 0.5 * xs + 2.0)
    response = rest.post(
        "/v1/models/hp2:predict", json={"instances": [10.0, 20.0, 30.0, 40.0, 50.0]}
    )
    assert response.status_code == 200
    assert response.json() == {"predictions": [7.0, 12.0, 17.0, 22.0, 27.0]}  # 5 -> 8
    after = scrape(rest)

    def delta(name: str, size: str) -> float:
        labels = {"execution_batch_size": size}
        return metric(after, BATCHING + name, **labels) - metric(before, BATCHING + name, **labels)

    assert (delta("padding_size_count", "4"), delta("padding_size_sum", "4")) == (1, 1)
    assert (delta("padding_size_count", "8"), delta("padding_size_sum", "8")) == (1, 3)
    # The Open Inference Protocol's batch statistics count the same executed batches.
    stats_after = _batch_stats(rest, "hp2")
    for size in (4, 8):
        count, ns = stats_after.get(size, (0, 0))
        assert count - stats_before.get(size, (0, 0))[0] == 1 and ns > 0


def _batch_stats(rest: httpx.Client, model: str) -> dict[int, tuple[int, int]]:
    stats = rest.get(f"/v2/models/{model}/stats").json()["model_stats"]
    return {
        b["batch_size"]: (b["compute_infer"]["count"], b["compute_infer"]["ns"])
        for entry in stats
        for b in entry["batch_stats"]
    }


@pytest.mark.parametrize("size", [9, 20, 32])
def test_large_batch_splitting_answers_requests_above_the_execution_size(
    rest: httpx.Client,
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    size: int,
) -> None:
    xs = np.arange(size, dtype=np.float32) * 1.5 - 4.0
    before = scrape(rest)
    close(grpc_predict(stub, "hp2", {"x": xs})["y"], 0.5 * xs + 2.0)
    after = scrape(rest)
    runs = metric(after, BATCHING + "wrapped_run_count") - metric(
        before, BATCHING + "wrapped_run_count"
    )
    assert runs == -(-size // 8)  # split into pieces of at most max_execution_batch_size
    response = rest.post(
        "/v1/models/hp2:regress",
        json={"signature_name": "regress_x_to_y", "examples": [{"x": float(v)} for v in xs]},
    )
    assert response.status_code == 200, response.text
    close(np.asarray(response.json()["results"], np.float32), 0.5 * xs + 2.0)


def test_request_above_the_split_limit_is_invalid(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        grpc_predict(stub, "hp2", {"x": np.zeros(33, np.float32)})
    assert isinstance(info.value, grpc.Call)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == "Task size 33 is larger than maximum input batch size 32"
