"""SavedModel warm-up end to end (compat doc §5 "Warmup", §3 ``--enable_model_warmup``,
``--num_request_iterations_for_warmup``).

One extra server (batching on, ``--num_request_iterations_for_warmup=3``, no load retries,
version polling every second). At start it serves:

* ``hp2_warm`` (half_plus_two v1) and ``mlp_warm`` (mlp v1) whose version folders hold
  ``assets.extra/tf_serving_warmup_requests`` (written with ``tf.io.TFRecordWriter``):
  predict, classify, regress and multi_inference records;
* one ``f_<kind>`` model per failure kind, each a plain half_plus_two v1 (no file).

The failure tests then drop a version 2 with a broken warm-up file into each ``f_<kind>``
folder: version 2 must end in END with TF Serving's code and message while version 1 keeps
serving. Warm-up runs go through the batching layer, so the batching metrics count them.
``--enable_synthetic_warmup`` is covered by test_batching_server.py and
``--enable_model_warmup=false`` by test_logs_server.py (whose server turns it off).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_status_pb2,
    inference_pb2,
    input_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.apis.prediction_log_pb2 import PredictionLog as Record

from tests.harness import Server, model_config, start_server

TIMEOUT = 30.0
ITERATIONS = 3
METRICS = "/monitoring/prometheus/metrics"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END
HINT = ". Please verify your warmup data is in TFRecord format."


# ---- warm-up records ----------------------------------------------------------------------


def examples(*xs: float) -> input_pb2.Input:
    request_input = input_pb2.Input()
    for x in xs:
        example = request_input.example_list.examples.add()
        example.features.feature["x"].float_list.value.append(x)
    return request_input


def predict_record(inputs: dict[str, np.ndarray]) -> Record:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "recorded"
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return Record(predict_log=prediction_log_pb2.PredictLog(request=request))


def hp2_records() -> list[Record]:
    """One record of each kind; 5 signature runs per replay (3 + 2 rows + 3 + 2 + 2)."""
    classify = classification_pb2.ClassificationRequest(input=examples(1.0, 4.0))
    classify.model_spec.signature_name = "classify_x_to_y"
    regress = regression_pb2.RegressionRequest(input=examples(2.0, 3.0, 5.0))
    regress.model_spec.signature_name = "regress_x_to_y"
    multi = inference_pb2.MultiInferenceRequest(input=examples(6.0, 7.0))
    for signature, method in (
        ("classify_x_to_y", "tensorflow/serving/classify"),
        ("regress_x_to_y", "tensorflow/serving/regress"),
    ):
        task = multi.tasks.add()
        task.model_spec.name = "recorded"
        task.model_spec.signature_name = signature
        task.method_name = method
    return [
        predict_record({"x": np.asarray([1.0, 2.0, 3.0], np.float32)}),
        Record(classify_log=prediction_log_pb2.ClassifyLog(request=classify)),
        Record(regress_log=prediction_log_pb2.RegressLog(request=regress)),
        Record(multi_inference_log=prediction_log_pb2.MultiInferenceLog(request=multi)),
    ]


def mlp_records() -> list[Record]:
    """Two predict records: 1 row and 3 rows."""
    return [predict_record({"input_example": np.full((n, 784), 0.25, np.float32)}) for n in (1, 3)]


RUNS_PER_REPLAY = 5 + 2  # hp2_warm's 5 signature runs + mlp_warm's 2
ROWS_PER_REPLAY = (3 + 2 + 3 + 2 + 2) + (1 + 3)


def write_records(version_dir: Path, records: Sequence[bytes]) -> Path:
    path = version_dir / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return path


def serialized(records: Sequence[Record]) -> list[bytes]:
    return [r.SerializeToString() for r in records]


def too_many(version_dir: Path) -> Path:
    # Zero-row predicts: valid records, cheap to replay, and never batched.
    record = predict_record({"x": np.zeros(0, np.float32)}).SerializeToString()
    return write_records(version_dir, [record] * 1001)


def unparsable(version_dir: Path) -> Path:
    return write_records(version_dir, [b"not a prediction log"])


def truncated(version_dir: Path) -> Path:
    path = write_records(version_dir, serialized(hp2_records()[:1]))
    path.write_bytes(path.read_bytes()[:-6])
    return path


def corrupted(version_dir: Path) -> Path:
    path = write_records(version_dir, serialized(hp2_records()[:1]))
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF  # inside the payload: its CRC no longer matches
    path.write_bytes(bytes(data))
    return path


def unknown_input(version_dir: Path) -> Path:
    return write_records(
        version_dir, serialized([predict_record({"nope": np.ones(2, np.float32)})])
    )


def good(version_dir: Path) -> Path:
    return write_records(version_dir, serialized(hp2_records()))


# kind -> (writer, code, message check on (message, warm-up file path))
FAILURES: dict[str, tuple[Callable[[Path], Path], grpc.StatusCode, Callable[[str, Path], bool]]] = {
    "too_many": (
        too_many,
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda m, p: m == (f"Number of warmup records exceeds the maximum (1000) at {p}"),
    ),
    "unparsable": (
        unparsable,
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda m, p: m == (f"Failed to parse warmup record: not a prediction log from {p}"),
    ),
    "truncated": (
        truncated,
        grpc.StatusCode.DATA_LOSS,
        lambda m, p: m.endswith(HINT) and "truncated record at 0" in m,
    ),
    # TF's reader names the payload offset (after the 12-byte length header).
    "corrupted": (
        corrupted,
        grpc.StatusCode.DATA_LOSS,
        lambda m, p: m == f"corrupted record at 12{HINT}",
    ),
    "unknown_input": (
        unknown_input,
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda m, p: m.startswith(
            "input size does not match signature: 1!=1 len({nope}) != len({x}). "
            "Sent extra: {nope}. Missing but required: {x}. "
            "Signature 'serving_default' takes x: DT_FLOAT [-1]"
        ),
    ),
}


# ---- the server ---------------------------------------------------------------------------


@dataclass
class WarmServer:
    server: Server
    root: Path
    metrics_at_start: str  # scraped before any test traffic or new version


@pytest.fixture(scope="module")
def warm(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarmServer]:
    root = tmp_path_factory.mktemp("warmup")
    shutil.copytree(models_dir / "half_plus_two" / "1", root / "hp2_warm" / "1")
    write_records(root / "hp2_warm" / "1", serialized(hp2_records()))
    shutil.copytree(models_dir / "mlp" / "1", root / "mlp_warm" / "1")
    write_records(root / "mlp_warm" / "1", serialized(mlp_records()))
    names = ["hp2_warm", "mlp_warm"]
    for kind in FAILURES:
        shutil.copytree(models_dir / "half_plus_two" / "1", root / f"f_{kind}" / "1")
        names.append(f"f_{kind}")
    config = root / "models.config"
    config.write_text(model_config([(n, str(root / n), "") for n in names]))
    monitoring = root / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true path: "{METRICS}" }}')
    srv = start_server(
        [
            f"--model_config_file={config}",
            f"--monitoring_config_file={monitoring}",
            "--enable_batching",
            f"--num_request_iterations_for_warmup={ITERATIONS}",
            "--max_num_load_retries=0",
            "--file_system_poll_wait_seconds=1",
        ]
    )
    try:
        yield WarmServer(srv, root, httpx.get(srv.rest + METRICS, timeout=TIMEOUT).text)
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def channel(warm: WarmServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(warm.server.grpc_target) as chan:
        yield chan


@pytest.fixture(scope="module")
def models(channel: grpc.Channel) -> model_service_pb2_grpc.ModelServiceStub:
    return model_service_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


Status = dict[int, tuple[int, grpc.StatusCode, str]]


def status(models: model_service_pb2_grpc.ModelServiceStub, name: str) -> Status:
    """version -> (state, code, message)."""
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    response = models.GetModelStatus(request, timeout=TIMEOUT)
    codes = {c.value[0]: c for c in grpc.StatusCode}
    return {
        s.version: (s.state, codes[s.status.error_code], s.status.error_message)
        for s in response.model_version_status
    }


def wait_for(
    models: model_service_pb2_grpc.ModelServiceStub,
    name: str,
    done: Callable[[Status], bool],
    timeout: float = 60,
) -> Status:
    deadline = time.monotonic() + timeout
    current = status(models, name)
    while not done(current) and time.monotonic() < deadline:
        time.sleep(0.2)
        current = status(models, name)
    assert done(current), (name, current)
    return current


def hp2_predict(
    stub: prediction_service_pb2_grpc.PredictionServiceStub, name: str, xs: Sequence[float]
) -> tuple[int, list[float]]:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray(xs, np.float32)))
    response = stub.Predict(request, timeout=TIMEOUT)
    return response.model_spec.version.value, tf.make_ndarray(response.outputs["y"]).tolist()


def metric(page: str, name: str, **labels: str) -> float:
    """The value of sample ``name`` with exactly ``labels`` (0 when absent); the parser names
    counter samples ``<name>_total``."""
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name in (name, name + "_total") and sample.labels == labels:
                return float(sample.value)
    return 0.0


def labels_of(page: str, name: str) -> list[dict[str, str]]:
    return [
        s.labels for f in text_string_to_metric_families(page) for s in f.samples if s.name == name
    ]


@pytest.fixture(scope="module")
def failed(
    warm: WarmServer, models_dir: Path, models: model_service_pb2_grpc.ModelServiceStub
) -> dict[str, tuple[Path, Status]]:
    """Drop a version 2 with a broken warm-up file into every f_<kind>; wait for them."""
    for kind, (write, _, _) in FAILURES.items():
        staging = warm.root / "staging" / kind
        shutil.copytree(models_dir / "half_plus_two" / "2", staging)
        write(staging)
        staging.rename(warm.root / f"f_{kind}" / "2")  # appears complete, in one step
    return {
        kind: (
            warm.root / f"f_{kind}" / "2" / WARMUP_FILE,
            wait_for(models, f"f_{kind}", lambda s: 2 in s and s[2][0] == END),
        )
        for kind in FAILURES
    }


# ---- tests --------------------------------------------------------------------------------


def test_versions_with_warmup_files_are_available_and_serve(
    models: model_service_pb2_grpc.ModelServiceStub,
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    assert status(models, "hp2_warm") == {1: (AVAILABLE, grpc.StatusCode.OK, "")}
    assert status(models, "mlp_warm") == {1: (AVAILABLE, grpc.StatusCode.OK, "")}
    assert hp2_predict(stub, "hp2_warm", [4.0, -2.0]) == (1, [4.0, 1.0])


def test_every_record_was_replayed_num_request_iterations_times(warm: WarmServer) -> None:
    # Warm-up runs go through the batching layer, one batch per signature run, before any
    # traffic: 7 runs per replay of both files, 3 replays each.
    page = warm.metrics_at_start
    batching = ":tensorflow:serving:batching_session:"
    assert metric(page, batching + "input_batch_size_count") == ITERATIONS * RUNS_PER_REPLAY
    assert metric(page, batching + "input_batch_size_sum") == ITERATIONS * ROWS_PER_REPLAY
    assert metric(page, batching + "wrapped_run_count") == ITERATIONS * RUNS_PER_REPLAY


def test_warmup_shows_in_metrics(warm: WarmServer) -> None:
    page = warm.metrics_at_start
    name = ":tensorflow:serving:model_warmup_latency"
    for model in ("hp2_warm", "mlp_warm"):
        path = str(warm.root / model / "1")
        assert metric(page, name + "_count", model_path=path, status="OK") == 1
        assert metric(page, name + "_sum", model_path=path, status="OK") > 0
    records = "tensorserve_model_warmup_records_read"
    assert metric(page, records, model_path=str(warm.root / "hp2_warm" / "1"), status="OK") == 4
    assert metric(page, records, model_path=str(warm.root / "mlp_warm" / "1"), status="OK") == 2
    # Versions without a warm-up file record nothing.
    assert {labels["model_path"] for labels in labels_of(page, name + "_count")} == {
        str(warm.root / "hp2_warm" / "1"),
        str(warm.root / "mlp_warm" / "1"),
    }
    lines = page.splitlines()
    assert f"# TYPE {name} histogram" in lines
    assert f'{name}_count{{model_path="{warm.root / "hp2_warm" / "1"}",status="OK"}} 1' in lines


def test_warmup_shows_in_logs(warm: WarmServer) -> None:
    logs = warm.server.logs()
    for model, count in (("hp2_warm", 4), ("mlp_warm", 2)):
        file = warm.root / model / "1" / WARMUP_FILE
        assert (
            f"Finished reading warmup data for model at {file}. Number of warmup records "
            f"read: {count}. Elapsed time (microseconds): "
        ) in logs


@pytest.mark.parametrize("kind", list(FAILURES))
def test_failed_warmup_fails_the_new_version_and_the_old_one_keeps_serving(
    kind: str,
    failed: dict[str, tuple[Path, Status]],
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    _, code, check = FAILURES[kind]
    file, versions = failed[kind]
    state, got_code, message = versions[2]
    assert (state, got_code) == (END, code), message
    assert check(message, file), message
    assert versions[1] == (AVAILABLE, grpc.StatusCode.OK, "")
    # Still version 1 (y = 0.5 x + 2), not the failed version 2 (y = 0.5 x + 3).
    assert hp2_predict(stub, f"f_{kind}", [2.0]) == (1, [3.0])


def test_failed_warmup_shows_over_rest(
    warm: WarmServer, failed: dict[str, tuple[Path, Status]]
) -> None:
    response = httpx.get(f"{warm.server.rest}/v1/models/f_truncated", timeout=TIMEOUT)
    assert response.status_code == 200
    [v2, v1] = response.json()["model_version_status"]
    assert (v2["version"], v2["state"], v2["status"]["error_code"]) == ("2", "END", "DATA_LOSS")
    assert v2["status"]["error_message"] == failed["truncated"][1][2][2]
    assert (v1["version"], v1["state"], v1["status"]["error_code"]) == ("1", "AVAILABLE", "OK")


def test_failed_warmup_shows_in_metrics_and_logs(
    warm: WarmServer, failed: dict[str, tuple[Path, Status]]
) -> None:
    page = httpx.get(warm.server.rest + METRICS, timeout=TIMEOUT).text
    name = ":tensorflow:serving:model_warmup_latency_count"
    for kind in ("truncated", "corrupted"):  # read errors: TF records them with their status
        path = str(warm.root / f"f_{kind}" / "2")
        statuses = [lbl["status"] for lbl in labels_of(page, name) if lbl["model_path"] == path]
        assert len(statuses) == 1 and statuses[0].startswith("DATA_LOSS: "), statuses
    logs = warm.server.logs()
    for kind in FAILURES:
        message = failed[kind][1][2][2]
        assert any(f"f_{kind}" in line and message in line for line in logs.splitlines()), kind


def test_a_good_new_version_replaces_the_old_one_after_failures(
    warm: WarmServer,
    models_dir: Path,
    failed: dict[str, tuple[Path, Status]],
    models: model_service_pb2_grpc.ModelServiceStub,
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    staging = warm.root / "staging" / "good"
    shutil.copytree(models_dir / "half_plus_two" / "2", staging)
    good(staging)
    staging.rename(warm.root / "f_unknown_input" / "3")
    versions = wait_for(
        models, "f_unknown_input", lambda s: s.get(3, (0,))[0] == AVAILABLE and s[1][0] == END
    )
    assert versions[3] == (AVAILABLE, grpc.StatusCode.OK, "")
    assert versions[2][:2] == (END, grpc.StatusCode.INVALID_ARGUMENT)
    assert hp2_predict(stub, "f_unknown_input", [2.0]) == (3, [4.0])
    page = httpx.get(warm.server.rest + METRICS, timeout=TIMEOUT).text
    path = str(warm.root / "f_unknown_input" / "3")
    assert (
        metric(page, ":tensorflow:serving:model_warmup_latency_count", model_path=path, status="OK")
        == 1
    )
