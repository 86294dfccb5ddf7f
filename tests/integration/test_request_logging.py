"""Request logging end to end (compat doc §4.1 ``logging_config``; a tensorserve addition:
TF Serving's open-source build refuses any logging_config).

One extra server: ``hp2`` (half_plus_two, latest = v2, y = 0.5 x + 3) logs every request
(``sampling_rate: 1.0``) to ``<tmp>/logs/hp2.*.tfrecord``; ``mlp`` logs nothing. It also runs
``--enable_synthetic_warmup`` without batching (its models have no warm-up file). Concurrent
REST and gRPC predict/classify/regress calls are read back with ``tf.data.TFRecordDataset``
as ``PredictionLog`` and compared with what was sent. The log file then becomes the
warm-up file of a new model added with ReloadConfig (the same loader and warm-up path as a
server start), which must load: the records replay.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.harness import (
    Server,
    model_config,
    run_server_expecting_exit,
    start_server,
)

TIMEOUT = 30.0
METRICS = "/monitoring/prometheus/metrics"
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
KINDS = ("predict", "classify", "regress")
SIGNATURES = {
    "predict": "serving_default",
    "classify": "classify_x_to_y",
    "regress": "regress_x_to_y",
}


def logging_config(prefix: Path, rate: float) -> str:
    return (
        f'logging_config {{ log_collector_config {{ filename_prefix: "{prefix}" }} '
        f"sampling_config {{ sampling_rate: {rate} }} }}"
    )


@dataclass
class LogServer:
    server: Server
    root: Path
    entries: list[tuple[str, str, str]]  # the model config entries it started with

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"


@pytest.fixture(scope="module")
def logged(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogServer]:
    root = tmp_path_factory.mktemp("reqlog")
    entries = [
        ("hp2", str(models_dir / "half_plus_two"), logging_config(root / "logs" / "hp2", 1.0)),
        ("mlp", str(models_dir / "mlp"), ""),
    ]
    config = root / "models.config"
    config.write_text(model_config(entries))
    monitoring = root / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true path: "{METRICS}" }}')
    srv = start_server(
        [
            f"--model_config_file={config}",
            f"--monitoring_config_file={monitoring}",
            "--enable_synthetic_warmup=true",
            "--file_system_poll_wait_seconds=0",
        ]
    )
    try:
        yield LogServer(srv, root, entries)
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def channel(logged: LogServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(logged.server.grpc_target) as chan:
        yield chan


# ---- traffic ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    protocol: str  # "rest" or "grpc"
    kind: str  # predict, classify or regress
    xs: tuple[float, ...]


def send(
    call: Call, http: httpx.Client, stub: prediction_service_pb2_grpc.PredictionServiceStub
) -> list[float]:
    """Make ``call``; returns the model's answers (y per x)."""
    if call.protocol == "rest":
        if call.kind == "predict":
            response = http.post("/v1/models/hp2:predict", json={"instances": list(call.xs)})
            assert response.status_code == 200, response.text
            return [float(v) for v in response.json()["predictions"]]
        body = {"signature_name": SIGNATURES[call.kind], "examples": [{"x": x} for x in call.xs]}
        response = http.post(f"/v1/models/hp2:{call.kind}", json=body)
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        return [r[0][1] for r in results] if call.kind == "classify" else results
    if call.kind == "predict":
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "hp2"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray(call.xs, np.float32)))
        ys = tf.make_ndarray(stub.Predict(request, timeout=TIMEOUT).outputs["y"])
        return [float(y) for y in ys]
    if call.kind == "classify":
        classify = classification_pb2.ClassificationRequest()
        fill(classify, call.xs)
        result = stub.Classify(classify, timeout=TIMEOUT).result
        return [c.classes[0].score for c in result.classifications]
    regress = regression_pb2.RegressionRequest()
    fill(regress, call.xs)
    return [r.value for r in stub.Regress(regress, timeout=TIMEOUT).result.regressions]


def fill(
    request: classification_pb2.ClassificationRequest | regression_pb2.RegressionRequest,
    xs: tuple[float, ...],
) -> None:
    request.model_spec.name = "hp2"
    request.model_spec.signature_name = (
        "classify_x_to_y"
        if isinstance(request, classification_pb2.ClassificationRequest)
        else "regress_x_to_y"
    )
    for x in xs:
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)


def calls() -> list[Call]:
    """Every request carries unique x values, so each log names its request."""
    out: list[Call] = []
    for i in range(42):
        size = 1 + i % 3
        xs = tuple(float(i * 10 + j) + 0.5 for j in range(size))
        out.append(Call(("rest", "grpc")[i % 2], KINDS[(i // 2) % 3], xs))
    return out


def example_xs(request_input: object) -> tuple[float, ...]:
    examples = request_input.example_list.examples  # type: ignore[attr-defined]
    return tuple(e.features.feature["x"].float_list.value[0] for e in examples)


def parse(log: prediction_log_pb2.PredictionLog) -> tuple[Call | None, str, list[float]]:
    """(the call it records without its protocol, signature, the logged answers)."""
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        xs = tuple(tf.make_ndarray(log.predict_log.request.inputs["x"]).tolist())
        ys = tf.make_ndarray(log.predict_log.response.outputs["y"]).tolist()
        return Call("", "predict", xs), log.predict_log.request.model_spec.signature_name, ys
    if kind == "classify_log":
        entry = log.classify_log
        ys = [c.classes[0].score for c in entry.response.result.classifications]
        return (
            Call("", "classify", example_xs(entry.request.input)),
            entry.request.model_spec.signature_name,
            ys,
        )
    if kind == "regress_log":
        reg = log.regress_log
        ys = [r.value for r in reg.response.result.regressions]
        return (
            Call("", "regress", example_xs(reg.request.input)),
            reg.request.model_spec.signature_name,
            ys,
        )
    return None, "", []


def read_logs(log_dir: Path, expected: int) -> tuple[list[Path], list[bytes]]:
    """The log files and their records, once ``expected`` records are there (or a deadline)."""
    deadline = time.monotonic() + 30
    files: list[Path] = []
    records: list[bytes] = []
    while time.monotonic() < deadline:
        files = sorted(log_dir.glob("hp2.*.tfrecord"))
        try:
            records = [r.numpy() for r in tf.data.TFRecordDataset([str(f) for f in files])]
        except tf.errors.OpError:  # a record being written right now
            records = []
        if len(records) >= expected:
            break
        time.sleep(0.1)
    return files, records


def metric(page: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name in (name, name + "_total") and sample.labels == labels:
                return float(sample.value)
    return 0.0


@dataclass
class Traffic:
    sent: list[Call]
    started: float
    files: list[Path]
    records: list[bytes]


@pytest.fixture(scope="module")
def traffic(logged: LogServer, channel: grpc.Channel) -> Traffic:
    """Concurrent logged calls, plus calls that must not be logged; then the logs."""
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    sent = calls()
    started = time.time()
    with httpx.Client(base_url=logged.server.rest, timeout=TIMEOUT) as http:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda c: send(c, http, stub), sent))
        for call, ys in zip(sent, answers, strict=True):
            np.testing.assert_allclose(ys, [0.5 * x + 3 for x in call.xs], rtol=1e-6)
        # Not logged: failed calls, and a model without logging_config.
        assert http.post("/v1/models/hp2:predict", json={"instances": ["a"]}).status_code == 400
        assert (
            http.post("/v1/models/hp2/versions/7:predict", json={"instances": [1.0]}).status_code
            == 404
        )
        mlp = http.post("/v1/models/mlp:predict", json={"instances": [[0.0] * 784]})
        assert mlp.status_code == 200
    files, records = read_logs(logged.log_dir, len(sent))
    return Traffic(sent, started, files, records)


# ---- tests --------------------------------------------------------------------------------


def test_synthetic_warmup_without_batching_loads_and_is_not_logged(
    logged: LogServer,
    channel: grpc.Channel,
) -> None:
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    for name, version in (("hp2", 2), ("mlp", 1)):
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        [status] = models.GetModelStatus(request, timeout=TIMEOUT).model_version_status
        assert (status.version, status.state, status.status.error_code) == (version, AVAILABLE, 0)
    assert "Synthetic warm-up" not in logged.server.logs()  # no signature was skipped
    # Warm-up runs are not requests: nothing was logged before any traffic.
    assert not list(logged.log_dir.glob("hp2*"))


def test_every_successful_call_is_logged_once(traffic: Traffic, logged: LogServer) -> None:
    assert len(traffic.records) == len(traffic.sent)
    assert [f.parent for f in traffic.files] == [logged.log_dir]
    assert all(f.name.startswith("hp2.") for f in traffic.files)
    logged_calls: Counter[Call] = Counter()
    for data in traffic.records:
        log = prediction_log_pb2.PredictionLog.FromString(data)
        call, _, _ = parse(log)
        assert call is not None, log.WhichOneof("log_type")
        logged_calls[call] += 1
    assert logged_calls == Counter(Call("", c.kind, c.xs) for c in traffic.sent)


def test_logs_hold_requests_responses_and_metadata(traffic: Traffic) -> None:
    now = time.time()
    for data in traffic.records:
        log = prediction_log_pb2.PredictionLog.FromString(data)
        call, signature, ys = parse(log)
        assert call is not None
        assert signature == SIGNATURES[call.kind]
        np.testing.assert_allclose(ys, [0.5 * x + 3 for x in call.xs], rtol=1e-6)
        meta = log.log_metadata
        assert (meta.model_spec.name, meta.model_spec.version.value) == ("hp2", 2)
        assert meta.model_spec.signature_name == SIGNATURES[call.kind]
        assert meta.sampling_config.sampling_rate == 1.0
        assert int(traffic.started) <= meta.timestamp_secs <= now
        if call.kind == "predict":
            request = log.predict_log.request
            assert request.inputs["x"].dtype == tf.float32.as_datatype_enum
            assert log.predict_log.response.model_spec.version.value == 2


def test_log_count_metric(traffic: Traffic, logged: LogServer) -> None:
    page = httpx.get(logged.server.rest + METRICS, timeout=TIMEOUT).text
    name = ":tensorflow:serving:request_log_count"
    assert metric(page, name, model_name="hp2", status_code="OK") == len(traffic.sent)
    assert metric(page, name, model_name="mlp", status_code="OK") == 0


def test_log_file_replays_as_a_warmup_file(
    traffic: Traffic,
    logged: LogServer,
    models_dir: Path,
    channel: grpc.Channel,
) -> None:
    assert len(traffic.files) == 1
    version = logged.root / "replay" / "1"
    shutil.copytree(models_dir / "half_plus_two" / "2", version)
    warmup = version / "assets.extra" / "tf_serving_warmup_requests"
    warmup.parent.mkdir()
    shutil.copyfile(traffic.files[0], warmup)  # the log file itself, byte for byte
    request = model_management_pb2.ReloadConfigRequest()
    entries = [*logged.entries, ("replay", str(logged.root / "replay"), "")]
    text_format.Parse(model_config(entries), request.config)
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    response = models.HandleReloadConfigRequest(request, timeout=60)
    assert response.status.error_code == 0, response.status.error_message
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "replay"
    [version_status] = models.GetModelStatus(status, timeout=TIMEOUT).model_version_status
    assert (version_status.version, version_status.state) == (1, AVAILABLE)
    page = httpx.get(logged.server.rest + METRICS, timeout=TIMEOUT).text
    assert (
        metric(
            page,
            ":tensorflow:serving:model_warmup_latency_count",
            model_path=str(version),
            status="OK",
        )
        == 1
    )
    assert metric(
        page, "tensorserve_model_warmup_records_read", model_path=str(version), status="OK"
    ) == len(traffic.records)


def test_invalid_logging_config_is_refused_on_reload(
    logged: LogServer,
    channel: grpc.Channel,
) -> None:
    bad = [("hp2", logged.entries[0][1], logging_config(logged.log_dir / "hp2", 2.0))]
    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(model_config(bad), request.config)
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    with pytest.raises(grpc.RpcError) as info:
        models.HandleReloadConfigRequest(request, timeout=60)
    assert isinstance(info.value, grpc.Call)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sampling_rate must be in [0, 1], got 2.0" in (info.value.details() or "")
    response = httpx.post(
        f"{logged.server.rest}/v1/models/hp2:predict", json={"instances": [1.0]}, timeout=TIMEOUT
    )
    assert response.json() == {"predictions": [3.5]}  # the old config still serves


def test_invalid_logging_config_stops_start_up(models_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "models.config"
    config.write_text(
        model_config(
            [("hp2", str(models_dir / "half_plus_two"), logging_config(tmp_path / "hp2", 2.0))]
        )
    )
    result = run_server_expecting_exit([f"--model_config_file={config}"])
    assert result.returncode != 0
    [line] = [ln for ln in result.stderr.splitlines() if "Failed to start server" in ln]
    assert line.startswith("Failed to start server. Error: ")
    assert "hp2" in line
    assert "logging_config.sampling_config.sampling_rate must be in [0, 1], got 2.0" in line
    assert not list(tmp_path.glob("hp2*"))
