"""Prometheus metrics end to end (compat doc §4.3, §1.2 monitoring path).

The main ``server`` exports metrics at ``/monitoring/prometheus/metrics``. Each test scrapes
before and after its own REST and gRPC traffic and checks the exact change, both through
``prometheus_client``'s parser and on the raw exposition lines. Tests run one at a time, so
no other traffic moves the counters in between. The last test starts servers with bad
monitoring configs, which must refuse to start.
"""

from __future__ import annotations

import subprocess
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
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.harness import ROOT, exiting_server_command

TIMEOUT = 30.0
METRICS = "/monitoring/prometheus/metrics"
SERVING = ":tensorflow:serving:"
HP2 = "half_plus_two"


# ---- helpers ------------------------------------------------------------------------------


@dataclass
class Page:
    text: str

    def value(self, name: str, **labels: str) -> float:
        """The sample ``name`` with exactly ``labels`` (0 when absent). The parser names
        counter samples ``<name>_total``; TF Serving's lines have no such suffix."""
        for family in text_string_to_metric_families(self.text):
            for sample in family.samples:
                if sample.name in (name, name + "_total") and sample.labels == labels:
                    return float(sample.value)
        return 0.0

    def labels(self, name: str) -> list[dict[str, str]]:
        return [
            s.labels
            for f in text_string_to_metric_families(self.text)
            for s in f.samples
            if s.name in (name, name + "_total")
        ]

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


def scrape(http: httpx.Client) -> Page:
    response = http.get(METRICS)
    assert response.status_code == 200
    return Page(response.text)


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def grpc_predict(
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
    model: str,
    inputs: dict[str, np.ndarray],
) -> grpc.StatusCode:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    try:
        stub.Predict(request, timeout=TIMEOUT)
    except grpc.RpcError as error:
        assert isinstance(error, grpc.Call)
        return error.code()
    return grpc.StatusCode.OK


def grpc_classify(stub: prediction_service_pb2_grpc.PredictionServiceStub, xs: list[float]) -> None:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = HP2
    request.model_spec.signature_name = "classify_x_to_y"
    for x in xs:
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    stub.Classify(request, timeout=TIMEOUT)


def grpc_regress(stub: prediction_service_pb2_grpc.PredictionServiceStub, xs: list[float]) -> None:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = HP2
    request.model_spec.signature_name = "regress_x_to_y"
    for x in xs:
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    stub.Regress(request, timeout=TIMEOUT)


def rest_classify(http: httpx.Client, xs: list[float]) -> None:
    response = http.post(
        f"/v1/models/{HP2}:classify",
        json={"signature_name": "classify_x_to_y", "examples": [{"x": x} for x in xs]},
    )
    assert response.status_code == 200, response.text


def x(*values: float) -> dict[str, np.ndarray]:
    return {"x": np.asarray(values, np.float32)}


# ---- exposition ---------------------------------------------------------------------------


def test_scrape_is_prometheus_text_with_tf_serving_names(http: httpx.Client) -> None:
    response = http.get(METRICS)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f.type for f in text_string_to_metric_families(response.text)}
    assert families[SERVING + "request_count"] == "counter"
    assert families[SERVING + "request_latency"] == "histogram"
    assert families[SERVING + "runtime_latency"] == "histogram"
    assert families[":tensorflow:cc:saved_model:load_attempt_count"] == "counter"
    lines = response.text.splitlines()
    assert f"# TYPE {SERVING}request_count counter" in lines
    assert f"# TYPE {SERVING}request_latency histogram" in lines
    # TF Serving's block: no HELP lines, no _total suffix, no _created series.
    assert not [line for line in lines if line.startswith("# HELP :tensorflow")]
    assert not [
        line
        for line in lines
        if line.startswith(":")
        and (
            "_total{" in line.split(" ")[0].replace("example_count_total", "") or "_created" in line
        )
    ]


@pytest.mark.parametrize(
    "path",
    [
        METRICS + "x",
        METRICS + "/",
        "/monitoring/prometheus",
        "/monitoring/prometheus/METRICS",
        "/metrics",
    ],
)
def test_unknown_monitoring_path_is_404(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 404
    assert SERVING not in response.text


# ---- request metrics ----------------------------------------------------------------------


def test_request_count_moves_for_ok_and_for_errors(
    http: httpx.Client,
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    before = scrape(http)
    assert http.post(f"/v1/models/{HP2}:predict", json={"instances": [1.0]}).status_code == 200
    assert (
        http.post(f"/v1/models/{HP2}/versions/1:predict", json={"instances": [2.0]}).status_code
        == 200
    )
    assert grpc_predict(stub, HP2, x(3.0)) == grpc.StatusCode.OK
    # NOT_FOUND: unknown model (REST and gRPC) and unknown version.
    assert (
        http.post("/v1/models/metrics_nope:predict", json={"instances": [1.0]}).status_code == 404
    )
    assert grpc_predict(stub, "metrics_nope", x(1.0)) == grpc.StatusCode.NOT_FOUND
    assert (
        http.post(f"/v1/models/{HP2}/versions/9:predict", json={"instances": [1.0]}).status_code
        == 404
    )
    # INVALID_ARGUMENT: a string for a float input (REST), an unknown input (gRPC).
    assert http.post(f"/v1/models/{HP2}:predict", json={"instances": ["a"]}).status_code == 400
    assert grpc_predict(stub, HP2, {"nope": np.ones(1, np.float32)}) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    after = scrape(http)

    def delta(model: str, status: str) -> float:
        name = SERVING + "request_count"
        return after.value(name, model_name=model, status=status) - before.value(
            name, model_name=model, status=status
        )

    assert delta(HP2, "OK") == 3
    assert delta(HP2, "NOT_FOUND") == 1
    assert delta(HP2, "INVALID_ARGUMENT") == 2
    assert delta("metrics_nope", "NOT_FOUND") == 2
    assert delta("metrics_nope", "OK") == 0
    count = after.value(SERVING + "request_count", model_name="metrics_nope", status="NOT_FOUND")
    raw = f'{SERVING}request_count{{model_name="metrics_nope",status="NOT_FOUND"}} {int(count)}'
    assert raw in after.lines


def test_request_latency_has_entrypoint_and_api_labels(
    http: httpx.Client,
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    before = scrape(http)
    for _ in range(2):
        assert http.post(f"/v1/models/{HP2}:predict", json={"instances": [1.0]}).status_code == 200
    rest_classify(http, [1.0])
    response = http.post(
        f"/v1/models/{HP2}:regress",
        json={"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}]},
    )
    assert response.status_code == 200
    assert grpc_predict(stub, HP2, x(1.0)) == grpc.StatusCode.OK
    grpc_classify(stub, [1.0])
    grpc_regress(stub, [1.0])
    assert grpc_predict(stub, HP2, {"nope": np.ones(1, np.float32)}) != grpc.StatusCode.OK
    after = scrape(http)
    name = SERVING + "request_latency_count"
    expected = {
        ("predict", "REST"): 2,
        ("classify", "REST"): 1,
        ("regress", "REST"): 1,
        ("Predict", "GRPC"): 1,
        ("Classify", "GRPC"): 1,
        ("Regress", "GRPC"): 1,
    }
    for (api, entrypoint), count in expected.items():
        labels = {"model_name": HP2, "API": api, "entrypoint": entrypoint}
        assert after.value(name, **labels) - before.value(name, **labels) == count, labels
    # Buckets: TF's exponential(10, 1.8, 33) bounds, cumulative, ending at +Inf == count.
    prefix = f'{SERVING}request_latency_bucket{{model_name="{HP2}",API="Predict",entrypoint="GRPC",'
    buckets = [line for line in after.lines if line.startswith(prefix)]
    assert len(buckets) == 34
    assert buckets[0].startswith(prefix + 'le="10"}') and buckets[1].startswith(prefix + 'le="18"}')
    counts = [int(line.rsplit(" ", 1)[1]) for line in buckets]
    assert counts == sorted(counts)
    assert buckets[-1] == prefix + f'le="+Inf"}} {counts[-1]}'
    assert counts[-1] == after.value(name, model_name=HP2, API="Predict", entrypoint="GRPC")


def test_runtime_latency_counts_each_model_run(
    http: httpx.Client,
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    labels = {"model_name": HP2, "API": "Predict", "runtime": "TF1"}
    name = SERVING + "runtime_latency_count"
    before = scrape(http)
    assert http.post(f"/v1/models/{HP2}:predict", json={"instances": [1.0]}).status_code == 200
    assert grpc_predict(stub, HP2, x(1.0, 2.0)) == grpc.StatusCode.OK
    assert grpc_predict(stub, HP2, {"nope": np.ones(1, np.float32)}) != grpc.StatusCode.OK
    after = scrape(http)
    assert after.value(name, **labels) - before.value(name, **labels) == 2
    assert after.value(SERVING + "runtime_latency_sum", **labels) > before.value(
        SERVING + "runtime_latency_sum", **labels
    )


def test_runtime_latency_api_label_follows_the_call(
    http: httpx.Client,
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    name = SERVING + "runtime_latency_count"
    before = scrape(http)
    grpc_classify(stub, [1.0])
    rest_classify(http, [2.0])
    grpc_regress(stub, [1.0])
    after = scrape(http)
    for api, count in (("Classify", 2), ("Regress", 1), ("Predict", 0)):
        labels = {"model_name": HP2, "API": api, "runtime": "TF1"}
        assert after.value(name, **labels) - before.value(name, **labels) == count, api


def test_example_counts_after_classify_and_regress(
    http: httpx.Client,
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    before = scrape(http)
    rest_classify(http, [1.0, 2.0, 3.0])
    grpc_classify(stub, [1.0])
    grpc_regress(stub, [1.0, 2.0])
    assert http.post(f"/v1/models/{HP2}:predict", json={"instances": [1.0]}).status_code == 200
    after = scrape(http)

    def delta(name: str) -> float:
        return after.value(SERVING + name, model=HP2) - before.value(SERVING + name, model=HP2)

    assert delta("request_example_counts_count") == 3  # one sample per request, not predict
    assert delta("request_example_counts_sum") == 6
    assert delta("request_example_count_total") == 6
    # TF's buckets are [lower, upper): the 2-example request is not in le="2".
    bucket = SERVING + "request_example_counts_bucket"
    for le, count in (("1", 0), ("2", 1), ("4", 3)):
        labels = {"model": HP2, "le": le}
        assert after.value(bucket, **labels) - before.value(bucket, **labels) == count, le
    total = [
        line
        for line in after.lines
        if line.startswith(f'{SERVING}request_example_count_total{{model="{HP2}"}} ')
    ]
    assert total == [
        f'{SERVING}request_example_count_total{{model="{HP2}"}} '
        f"{int(after.value(SERVING + 'request_example_count_total', model=HP2))}"
    ]


# ---- lifecycle metrics ---------------------------------------------------------------------


def test_load_attempts_and_model_states(http: httpx.Client, models_dir: Path) -> None:
    page = scrape(http)
    loaded = [(HP2, 1), (HP2, 2), ("mlp", 1), ("strings", 1), ("multi", 1), ("all_types", 1)]
    name = ":tensorflow:cc:saved_model:load_attempt_count"
    for model, version in loaded:
        path = str(models_dir / model / str(version))
        assert page.value(name, model_path=path, status="success") == 1, path
        assert page.value(name, model_path=path, status="fail") == 0, path
        assert page.value(":tensorflow:cc:saved_model:load_latency", model_path=path) > 0
        assert (f'{name}{{model_path="{path}",status="success"}} 1') in page.lines
        states = [
            lbl["state"]
            for lbl in page.labels("tensorserve_model_state")
            if (lbl["model_name"], lbl["version"]) == (model, str(version))
        ]
        assert states == ["AVAILABLE"], (model, version, states)
        assert (
            page.value(
                "tensorserve_model_state", model_name=model, version=str(version), state="AVAILABLE"
            )
            == 1
        )


def test_in_flight_gauge_is_back_to_zero_after_traffic(
    http: httpx.Client,
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    assert http.post(f"/v1/models/{HP2}:predict", json={"instances": [1.0]}).status_code == 200
    assert grpc_predict(stub, "mlp", {"input_example": np.zeros((1, 784), np.float32)}) == (
        grpc.StatusCode.OK
    )
    page = scrape(http)
    samples = {lbl["model_name"] for lbl in page.labels("tensorserve_requests_in_flight")}
    assert {HP2, "mlp"} <= samples
    assert page.value("tensorserve_requests_in_flight", model_name=HP2) == 0
    assert page.value("tensorserve_requests_in_flight", model_name="mlp") == 0


def test_tensorserve_latency_has_version_and_signature(
    http: httpx.Client,
    stub: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    before = scrape(http)
    assert (
        http.post(f"/v1/models/{HP2}/versions/1:predict", json={"instances": [1.0]}).status_code
        == 200
    )
    grpc_classify(stub, [1.0])
    after = scrape(http)
    name = "tensorserve_request_latency_seconds_count"
    for labels in (
        {
            "model_name": HP2,
            "version": "1",
            "signature": "serving_default",
            "API": "predict",
            "entrypoint": "REST",
        },
        {
            "model_name": HP2,
            "version": "2",
            "signature": "classify_x_to_y",
            "API": "Classify",
            "entrypoint": "GRPC",
        },
    ):
        assert after.value(name, **labels) - before.value(name, **labels) == 1, labels


# ---- bad monitoring configs -----------------------------------------------------------------


def test_bad_monitoring_config_stops_start_up(main_config: Path, tmp_path: Path) -> None:
    bad = {
        "unparsable": "prometheus_config { enable: yes please }",
        "relative_path": 'prometheus_config { enable: true path: "metrics" }',
    }
    processes: dict[str, tuple[Path, subprocess.Popen[str]]] = {}
    for name, text in bad.items():  # in parallel: each start imports TensorFlow
        path = tmp_path / f"{name}.config"
        path.write_text(text)
        args = exiting_server_command(
            [f"--model_config_file={main_config}", f"--monitoring_config_file={path}"]
        )
        processes[name] = (
            path,
            subprocess.Popen(
                args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            ),
        )
    outputs = {}
    for name, (path, process) in processes.items():
        out, _ = process.communicate(timeout=120)
        outputs[name] = (path, process.returncode, out)
    for name, (path, rc, out) in outputs.items():
        assert rc != 0, (name, out)
        [line] = [ln for ln in out.splitlines() if "Failed to start server" in ln]
        assert line.startswith("Failed to start server. Error: ") and str(path) in line, line
        assert "Loading servable" not in out  # refused before any model load
    assert "Expected" in outputs["unparsable"][2]
    assert "prometheus_config.path must start with '/'" in outputs["relative_path"][2]
