"""Metrics: TF Serving's exact exposition, tensorserve's own metrics, thread safety."""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable, Iterator

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tensorserve.errors import Code
from tensorserve.metrics import endpoint
from tensorserve.metrics.registry import (
    MODEL_STATES,
    Metrics,
    exponential_buckets,
    prometheus_name,
)

TF_TYPES = {
    ":tensorflow:cc:saved_model:load_attempt_count": "counter",
    ":tensorflow:cc:saved_model:load_latency": "counter",
    ":tensorflow:cc:saved_model:load_latency_by_stage": "histogram",
    ":tensorflow:serving:batching_session:input_batch_size": "histogram",
    ":tensorflow:serving:batching_session:padding_size": "histogram",
    ":tensorflow:serving:batching_session:processed_batch_size": "histogram",
    ":tensorflow:serving:batching_session:queuing_latency": "histogram",
    ":tensorflow:serving:batching_session:wrapped_run_count": "counter",
    ":tensorflow:serving:model_warmup_latency": "histogram",
    ":tensorflow:serving:request_count": "counter",
    ":tensorflow:serving:request_example_count_total": "counter",
    ":tensorflow:serving:request_example_counts": "histogram",
    ":tensorflow:serving:request_latency": "histogram",
    ":tensorflow:serving:request_log_count": "counter",
    ":tensorflow:serving:runtime_latency": "histogram",
}
LATENCY = ":tensorflow:serving:request_latency"


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(process_metrics=False)


def page(m: Metrics) -> list[str]:
    return m.render().decode().splitlines()


def tf_lines(m: Metrics) -> list[str]:
    return [line for line in page(m) if line.startswith(":") or line.startswith("# TYPE :")]


def bucket_lines(m: Metrics, name: str, labels: str) -> list[tuple[str, int]]:
    """(le, cumulative) for one TF histogram point, in page order."""
    pattern = re.compile(rf'^{re.escape(name)}_bucket\{{{re.escape(labels)}le="([^"]+)"\}} (\d+)$')
    found = [pattern.match(line) for line in page(m)]
    return [(mt.group(1), int(mt.group(2))) for mt in found if mt]


def samples(m: Metrics, family: str) -> list[Sample]:
    text = m.render().decode()
    for fam in text_string_to_metric_families(text):
        if fam.name == family:
            return list(fam.samples)
    raise AssertionError(f"no family {family!r}")


# -- TF Serving block ---------------------------------------------------------------------------


def test_type_lines_are_tf_servings_in_sorted_order_without_help(metrics: Metrics) -> None:
    types = [line for line in page(metrics) if line.startswith("# TYPE :")]
    assert types == [f"# TYPE {name} {kind}" for name, kind in sorted(TF_TYPES.items())]
    assert not any(line.startswith("# HELP :") for line in page(metrics))


def test_tf_names_have_no_total_or_created_series(metrics: Metrics) -> None:
    metrics.record_request("m", "Predict", "GRPC", Code.OK, 100.0)
    metrics.record_examples("m", 2)
    metrics.record_load("/models/m/1", True, 10.0)
    metrics.batching.on_batch("m", "serving_default", [1], 1, 0)
    suffixes = ("", "_bucket", "_sum", "_count")
    allowed = {name + s for name in TF_TYPES for s in suffixes}
    names = {line.split("{", 1)[0] for line in tf_lines(metrics) if not line.startswith("#")}
    assert names <= allowed
    assert ":tensorflow:serving:request_count_total" not in names
    assert not any(name.endswith("_created") for name in names)


def test_request_count_exact_lines_by_status_code_name(metrics: Metrics) -> None:
    for _ in range(3):
        metrics.record_request("m", "Predict", "GRPC", Code.OK, 50.0)
    metrics.record_request("m", "predict", "REST", Code.NOT_FOUND, 50.0)
    lines = tf_lines(metrics)
    assert ':tensorflow:serving:request_count{model_name="m",status="OK"} 3' in lines
    assert ':tensorflow:serving:request_count{model_name="m",status="NOT_FOUND"} 1' in lines


def test_request_latency_recorded_only_on_success(metrics: Metrics) -> None:
    metrics.record_request("bad", "Predict", "GRPC", Code.INVALID_ARGUMENT, 50.0)
    assert not any(line.startswith(LATENCY + "_") for line in page(metrics))
    metrics.record_request("good", "Predict", "GRPC", Code.OK, 50.0)
    assert f'{LATENCY}_count{{model_name="good",API="Predict",entrypoint="GRPC"}} 1' in page(
        metrics
    )
    assert not any('model_name="bad"' in line for line in page(metrics) if LATENCY in line)


def test_request_latency_buckets_are_10_times_1_8_pow_k(metrics: Metrics) -> None:
    metrics.record_request("m", "predict", "REST", Code.OK, 1234.0)
    buckets = bucket_lines(metrics, LATENCY, 'model_name="m",API="predict",entrypoint="REST",')
    les = [le for le, _ in buckets]
    assert len(les) == 34 and les[-1] == "+Inf"
    assert les[:5] == ["10", "18", "32.4", "58.32", "104.976"]
    assert les[32] == f"{10 * 1.8**32:.6g}"
    assert all((count == 1) == (le == "+Inf" or float(le) > 1234) for le, count in buckets)
    assert f'{LATENCY}_sum{{model_name="m",API="predict",entrypoint="REST"}} 1234' in page(metrics)


def test_bucket_bound_counts_in_next_bucket_like_tf(metrics: Metrics) -> None:
    metrics.record_request("m", "Predict", "GRPC", Code.OK, 18.0)
    buckets = dict(
        bucket_lines(metrics, LATENCY, 'model_name="m",API="Predict",entrypoint="GRPC",')
    )
    assert buckets["18"] == 0
    assert buckets["32.4"] == 1


def test_runtime_latency_labels(metrics: Metrics) -> None:
    metrics.record_runtime("m", "Predict", 42.0)
    labels = 'model_name="m",API="Predict",runtime="TF1"'
    assert f":tensorflow:serving:runtime_latency_count{{{labels}}} 1" in page(metrics)


def test_example_counts_buckets_powers_of_two_to_2_pow_14(metrics: Metrics) -> None:
    metrics.record_examples("m", 3)
    metrics.record_examples("m", 5)
    name = ":tensorflow:serving:request_example_counts"
    buckets = bucket_lines(metrics, name, 'model="m",')
    assert [le for le, _ in buckets] == [str(2**k) for k in range(15)] + ["+Inf"]
    assert dict(buckets)["2"] == 0 and dict(buckets)["4"] == 1 and dict(buckets)["8"] == 2
    assert ':tensorflow:serving:request_example_count_total{model="m"} 8' in page(metrics)


def test_request_log_count_labels(metrics: Metrics) -> None:
    metrics.record_request_log("m", Code.OK)
    metrics.record_request_log("m", Code.UNAVAILABLE)
    lines = page(metrics)
    assert ':tensorflow:serving:request_log_count{model_name="m",status_code="OK"} 1' in lines
    name = ":tensorflow:serving:request_log_count"
    assert f'{name}{{model_name="m",status_code="UNAVAILABLE"}} 1' in lines


def test_warmup_latency_status_is_tf_status_string(metrics: Metrics) -> None:
    metrics.record_warmup("/m/1", True, 500.0, records=7)
    metrics.record_warmup("/m/2", False, 10.0, records=1, error="INVALID_ARGUMENT: bad record")
    metrics.record_warmup("/m/3", False, 10.0, records=0)
    lines = page(metrics)
    name = ":tensorflow:serving:model_warmup_latency"
    assert f'{name}_count{{model_path="/m/1",status="OK"}} 1' in lines
    assert f'{name}_count{{model_path="/m/2",status="INVALID_ARGUMENT: bad record"}} 1' in lines
    assert f'{name}_count{{model_path="/m/3",status="UNKNOWN"}} 1' in lines
    records = 'tensorserve_model_warmup_records_read_total{model_path="/m/1",status="OK"} 7.0'
    assert records in lines


def test_load_metrics_success_fail_and_latency_counter(metrics: Metrics) -> None:
    metrics.record_load("/m/1", True, 1500.7)
    metrics.record_load("/m/1", False, 100.0)
    metrics.record_load_stage("/m/1", "restore_graph", 900.0)
    lines = page(metrics)
    attempts = ":tensorflow:cc:saved_model:load_attempt_count"
    assert f'{attempts}{{model_path="/m/1",status="success"}} 1' in lines
    assert f'{attempts}{{model_path="/m/1",status="fail"}} 1' in lines
    assert ':tensorflow:cc:saved_model:load_latency{model_path="/m/1"} 1600' in lines
    stage = ":tensorflow:cc:saved_model:load_latency_by_stage"
    assert f'{stage}_count{{model_path="/m/1",stage="restore_graph"}} 1' in lines


def test_batching_session_metrics(metrics: Metrics) -> None:
    observer = metrics.batching
    observer.on_batch("m", "serving_default", [1, 2], 4, 1)
    observer.on_queue_latency("pool", 250.0)
    observer.on_queue_depth("m", "serving_default", 5)
    lines = page(metrics)
    prefix = ":tensorflow:serving:batching_session:"
    assert f"{prefix}input_batch_size_count{{}} 2" in lines
    assert f"{prefix}input_batch_size_sum{{}} 3" in lines
    assert f'{prefix}input_batch_size_bucket{{le="1"}} 0' in lines
    assert f'{prefix}input_batch_size_bucket{{le="8192"}} 2' in lines
    assert f"{prefix}processed_batch_size_sum{{}} 4" in lines
    assert f'{prefix}padding_size_count{{execution_batch_size="4"}} 1' in lines
    assert f"{prefix}wrapped_run_count{{}} 1" in lines
    assert f'{prefix}queuing_latency_count{{thread_pool_name="pool"}} 1' in lines
    queue = bucket_lines(metrics, prefix + "queuing_latency", 'thread_pool_name="pool",')
    les = [le for le, _ in queue]
    assert len(les) == 53 and les[:3] == ["100", "120", "144"]
    depth = 'tensorserve_batch_queue_depth{model_name="m",signature="serving_default"} 5.0'
    assert depth in lines


def test_label_values_are_escaped(metrics: Metrics) -> None:
    model = 'we"ird\\na\nme'
    metrics.record_request(model, "Predict", "GRPC", Code.OK, 1.0)
    expected = r':tensorflow:serving:request_count{model_name="we\"ird\\na\nme",status="OK"} 1'
    assert expected in page(metrics)
    parsed = samples(metrics, ":tensorflow:serving:request_count")
    assert parsed[0].labels["model_name"] == model


def test_whole_page_parses(metrics: Metrics) -> None:
    metrics.record_request("m", "Predict", "GRPC", Code.OK, 10.0, version=1, signature="s")
    metrics.record_examples("m", 1)
    families = {f.name: f.type for f in text_string_to_metric_families(metrics.render().decode())}
    for name, kind in TF_TYPES.items():
        if name.endswith("_total"):
            continue  # the parser strips a counter's _total suffix from the family name
        assert families[name] == kind
    (count,) = samples(metrics, ":tensorflow:serving:request_count")
    assert count.value == 1 and count.labels == {"model_name": "m", "status": "OK"}


# -- tensorserve block --------------------------------------------------------------------------


def test_per_version_signature_latency_seconds(metrics: Metrics) -> None:
    metrics.record_request("m", "Predict", "GRPC", Code.OK, 2500.0, version=3, signature="sig")
    metrics.record_request("m", "predict", "REST", Code.OK, 1000.0)
    metrics.record_request("m", "predict", "REST", Code.INTERNAL, 1000.0, version=3)
    by_labels = {
        tuple(sorted(s.labels.items())): s.value
        for s in samples(metrics, "tensorserve_request_latency_seconds")
        if s.name.endswith("_sum")
    }
    grpc = {"model_name": "m", "version": "3", "signature": "sig", "API": "Predict"}
    grpc["entrypoint"] = "GRPC"
    rest = {"model_name": "m", "version": "", "signature": "", "API": "predict"}
    rest["entrypoint"] = "REST"
    assert by_labels == {
        tuple(sorted(grpc.items())): pytest.approx(0.0025),
        tuple(sorted(rest.items())): pytest.approx(0.001),
    }
    le = 'tensorserve_request_latency_seconds_bucket{API="Predict",entrypoint="GRPC",le="0.0025"'
    assert any(line.startswith(le) and line.endswith(" 1.0") for line in page(metrics))


def test_model_state_keeps_only_current_state(metrics: Metrics) -> None:
    metrics.set_model_state("m", 1, "LOADING")
    metrics.set_model_state("m", 2, "START")
    metrics.set_model_state("m", 1, "AVAILABLE")
    states = {
        (s.labels["version"], s.labels["state"]): s.value
        for s in samples(metrics, "tensorserve_model_state")
    }
    assert states == {("1", "AVAILABLE"): 1.0, ("2", "START"): 1.0}


def test_model_state_rejects_unknown_state(metrics: Metrics) -> None:
    assert "AVAILABLE" in MODEL_STATES
    with pytest.raises(ValueError, match="unknown model state 'READY'"):
        metrics.set_model_state("m", 1, "READY")


def test_inflight_counts_inside_block_and_after_errors(metrics: Metrics) -> None:
    def current() -> float:
        (sample,) = samples(metrics, "tensorserve_requests_in_flight")
        return sample.value

    with metrics.inflight("m"), metrics.inflight("m"):
        assert current() == 2
    assert current() == 0
    with pytest.raises(RuntimeError), metrics.inflight("m"):
        raise RuntimeError("boom")
    assert current() == 0


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_process_memory_metrics_in_own_registry() -> None:
    text = Metrics().render().decode()
    assert re.search(r"^process_resident_memory_bytes [0-9.e+]+$", text, re.MULTILINE)


def test_instances_are_independent_and_not_global() -> None:
    a, b = Metrics(process_metrics=False), Metrics(process_metrics=False)
    a.record_request("m", "Predict", "GRPC", Code.OK, 1.0)
    assert any("request_count{" in line for line in page(a))
    assert not any("request_count{" in line for line in page(b))
    assert a.registry is not prometheus_client.REGISTRY
    assert b"tensorserve_" not in prometheus_client.generate_latest(prometheus_client.REGISTRY)


# -- concurrency ---------------------------------------------------------------------------------


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads very often, so that an unlocked read-modify-write would lose updates."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


@pytest.mark.usefixtures("fast_switching")
def test_concurrent_updates_are_exact(metrics: Metrics) -> None:
    threads, per_thread = 8, 2000
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for i in range(per_thread):
            metrics.record_request("m", "Predict", "GRPC", Code.OK, float(i % 50))
            with metrics.inflight("m"):
                metrics.batching.on_batch("m", "s", [1], 1, 0)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    total = threads * per_thread
    lines = page(metrics)
    assert f':tensorflow:serving:request_count{{model_name="m",status="OK"}} {total}' in lines
    assert f'{LATENCY}_count{{model_name="m",API="Predict",entrypoint="GRPC"}} {total}' in lines
    assert f":tensorflow:serving:batching_session:wrapped_run_count{{}} {total}" in lines
    assert 'tensorserve_requests_in_flight{model_name="m"} 0.0' in lines


# -- helpers and endpoint ------------------------------------------------------------------------


def test_exponential_buckets_match_tf() -> None:
    bounds = exponential_buckets(10, 1.8, 33)
    assert len(bounds) == 33 and bounds[0] == 10 and bounds[1] == 18
    assert exponential_buckets(1, 2, 15)[-1] == 16384


def test_prometheus_name_mapping() -> None:
    assert (
        prometheus_name("/tensorflow/serving/request_count") == ":tensorflow:serving:request_count"
    )
    assert prometheus_name("9lives.x") == "_9lives:x"


def test_scrape_returns_text_page(metrics: Metrics) -> None:
    metrics.record_request("m", "Predict", "GRPC", Code.OK, 1.0)
    status, headers, body = endpoint.scrape(metrics)
    assert status == 200
    assert headers == {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
    assert b':tensorflow:serving:request_count{model_name="m",status="OK"} 1\n' in body
    assert body.endswith(b"\n")


def test_recording_waits_for_the_lock(metrics: Metrics) -> None:
    """Every write goes through the instance lock (which render's snapshot also takes)."""
    calls = [
        lambda: metrics.record_request("m", "Predict", "GRPC", Code.OK, 1.0),
        lambda: metrics.record_request("m", "Predict", "GRPC", Code.ABORTED, 1.0),
        lambda: metrics.record_runtime("m", "Predict", 1.0),
        lambda: metrics.record_examples("m", 1),
        lambda: metrics.record_request_log("m", Code.OK),
        lambda: metrics.record_load("/p", True, 1.0),
        lambda: metrics.record_load_stage("/p", "init_graph", 1.0),
        lambda: metrics.record_warmup("/p", True, 1.0, 1),
        lambda: metrics.set_model_state("m", 1, "START"),
        lambda: metrics.inflight("m").__enter__(),
        lambda: metrics.batching.on_batch("m", "s", [1], 1, 0),
        lambda: metrics.batching.on_queue_latency("p", 1.0),
        lambda: metrics.batching.on_queue_depth("m", "s", 1),
    ]
    for call in calls:
        done = threading.Event()

        def run(call: Callable[[], object] = call, done: threading.Event = done) -> None:
            call()
            done.set()

        with metrics.lock:
            worker = threading.Thread(target=run)
            worker.start()
            assert not done.wait(0.02)
        worker.join()
        assert done.is_set()
