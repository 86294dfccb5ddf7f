"""TensorFlow's profiler client captures a trace of a live server through the gRPC port,
while predict requests run (``--enable_profiler``, TF Serving's default: on)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import Server, model_config, start_server


@pytest.fixture(scope="module")
def profiled(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("profiler") / "models.config"
    config.write_text(model_config([("mlp", str(models_dir / "mlp"), "")]))
    server = start_server([f"--model_config_file={config}", "--num_workers=2"])
    yield server
    server.stop()


def _traffic(server: Server, stop: threading.Event, answers: list[int]) -> None:
    with httpx.Client(base_url=server.rest, timeout=30) as client:
        while not stop.is_set():
            body = {"instances": [[0.5] * 784] * 8}
            answers.append(client.post("/v1/models/mlp:predict", json=body).status_code)


def test_trace_of_a_live_server_through_the_grpc_port(profiled: Server, tmp_path: Path) -> None:
    from tensorflow.python.profiler import profiler_client

    stop, answers = threading.Event(), list[int]()
    thread = threading.Thread(target=_traffic, args=(profiled, stop, answers))
    thread.start()
    try:
        profiler_client.trace(f"grpc://{profiled.grpc_target}", str(tmp_path), 2000)
    finally:
        stop.set()
        thread.join()
    traces = list(tmp_path.rglob("*.xplane.pb"))
    assert traces, list(tmp_path.rglob("*"))
    assert all(t.stat().st_size > 0 for t in traces)
    assert answers and set(answers) == {200}  # serving went on during the capture
    assert "Profiler service is enabled" in profiled.logs()


def test_profiler_can_be_switched_off(models_dir: Path, tmp_path: Path) -> None:
    from tensorflow.python.profiler import profiler_client

    config = tmp_path / "models.config"
    config.write_text(model_config([("mlp", str(models_dir / "mlp"), "")]))
    server = start_server([f"--model_config_file={config}", "--enable_profiler=false"])
    try:
        with pytest.raises(RuntimeError, match="No trace event was collected"):
            profiler_client.trace(f"grpc://{server.grpc_target}", str(tmp_path / "logs"), 500)
        assert not list(tmp_path.rglob("*.xplane.pb"))
        assert "Profiler service is enabled" not in server.logs()
    finally:
        server.stop()
