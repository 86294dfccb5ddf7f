"""Structured logs end to end: ``--log_format=json`` and ``--access_log=true`` (tensorserve's
flags; TF Serving has neither, compat doc §7 pain point 14).

One extra server with both flags, ``--enable_model_warmup=false`` (checked here too: its
``hp2`` version folder holds a corrupt warm-up file that must be skipped), a ``broken`` model
(a load failure) and version polling every second. Its combined stdout/stderr is read back:
every line the ``tensorserve`` loggers write must be one JSON object; TensorFlow's own
native/absl lines are not ours and are only required not to look like ours.

The tests run in file order on purpose: the last one stops the server with SIGTERM.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.harness import Server, model_config, start_server

TIMEOUT = 30.0
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [A-Z]+ tensorserve")
Line = dict[str, Any]


@dataclass
class LogServer:
    server: Server
    root: Path


@pytest.fixture(scope="module")
def srv(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogServer]:
    root = tmp_path_factory.mktemp("logs")
    version = root / "hp2" / "1"
    shutil.copytree(models_dir / "half_plus_two" / "1", version)
    warmup = version / "assets.extra" / "tf_serving_warmup_requests"
    warmup.parent.mkdir()
    warmup.write_bytes(b"\x00" * 7 + b"definitely not a TFRecord file")
    config = root / "models.config"
    config.write_text(
        model_config([("hp2", str(root / "hp2"), ""), ("broken", str(models_dir / "broken"), "")])
    )
    server = start_server(
        [
            f"--model_config_file={config}",
            "--log_format=json",
            "--access_log=true",
            "--enable_model_warmup=false",
            "--max_num_load_retries=0",
            "--file_system_poll_wait_seconds=1",
        ]
    )
    try:
        yield LogServer(server, root)
    finally:
        server.stop()


def json_lines(server: Server) -> list[Line]:
    """Our lines, parsed; asserts every line is either one JSON object or not ours."""
    parsed: list[Line] = []
    for raw in server.logs().splitlines():
        if raw.startswith("{"):
            line = json.loads(raw)
            assert isinstance(line, dict), raw
            parsed.append(line)
        else:
            assert not TEXT_LINE.match(raw), raw
            assert '"logger": "tensorserve' not in raw and '"logger":"tensorserve' not in raw
    for line in parsed:
        assert TS.match(line["ts"]), line
        assert line["level"] in LEVELS, line
        assert line["logger"].startswith("tensorserve"), line
        assert isinstance(line["msg"], str), line
    return parsed


def wait_lines(
    server: Server, done: Callable[[list[Line]], bool], timeout: float = 30
) -> list[Line]:
    deadline = time.monotonic() + timeout
    lines = json_lines(server)
    while not done(lines) and time.monotonic() < deadline:
        time.sleep(0.1)
        lines = json_lines(server)
    assert done(lines), lines[-20:]
    return lines


def states(lines: list[Line], model: str, version: int) -> list[str]:
    return [
        line["state"]
        for line in lines
        if line["msg"] == "servable state changed"
        and (line["model"], line["version"]) == (model, version)
    ]


def hp2_status(srv: LogServer) -> dict[str, str]:
    response = httpx.get(f"{srv.server.rest}/v1/models/hp2", timeout=TIMEOUT)
    assert response.status_code == 200
    return {s["version"]: s["state"] for s in response.json()["model_version_status"]}


# ---- tests --------------------------------------------------------------------------------


def test_warmup_disabled_skips_a_broken_warmup_file(srv: LogServer) -> None:
    assert hp2_status(srv) == {"1": "AVAILABLE"}
    response = httpx.post(
        f"{srv.server.rest}/v1/models/hp2:predict", json={"instances": [2.0, 6.0]}, timeout=TIMEOUT
    )
    assert response.json() == {"predictions": [3.0, 5.0]}
    assert "warmup" not in srv.server.logs().lower()


def test_start_up_lines_are_json_with_lifecycle_fields(srv: LogServer) -> None:
    lines = json_lines(srv.server)
    assert states(lines, "hp2", 1) == ["START", "LOADING", "AVAILABLE"]
    assert states(lines, "broken", 1)[-1] == "END"
    [failed] = [
        line
        for line in lines
        if line["msg"] == "servable state changed"
        and line["model"] == "broken"
        and line["state"] == "END"
    ]
    assert failed["level"] == "ERROR"
    assert isinstance(failed["version"], int)
    assert failed["error"]  # the load error's message
    changes = [line for line in lines if line["msg"] == "servable state changed"]
    assert all(line["logger"] == "tensorserve.server" for line in changes)
    assert any(line["msg"].startswith("tensorserve ready: ") for line in lines)


def test_every_lifecycle_line_has_model_and_version_fields(srv: LogServer) -> None:
    lines = json_lines(srv.server)
    lifecycle = [
        line
        for line in lines
        if re.search(r"servable|[Ll]oading|[Uu]nload|failed for good", line["msg"])
    ]
    assert len(lifecycle) >= 6
    for line in lifecycle:
        assert "model" in line and "version" in line, line


def access(lines: list[Line]) -> list[Line]:
    return [line for line in lines if line["logger"] == "tensorserve.access"]


def test_access_log_has_one_line_per_rest_request(srv: LogServer) -> None:
    rest = srv.server.rest
    earlier = len(access(json_lines(srv.server)))  # readiness probes, earlier tests
    with httpx.Client(base_url=rest, timeout=TIMEOUT) as http:
        expected = [
            (
                "POST",
                "/v1/models/hp2:predict",
                200,
                "hp2",
                http.post("/v1/models/hp2:predict", json={"instances": [1.0]}).status_code,
            ),
            (
                "POST",
                "/v1/models/hp2/versions/1:predict",
                200,
                "hp2",
                http.post(
                    "/v1/models/hp2/versions/1:predict", json={"instances": [1.0]}
                ).status_code,
            ),
            (
                "POST",
                "/v1/models/access_nope:predict",
                404,
                "access_nope",
                http.post("/v1/models/access_nope:predict", json={"instances": [1.0]}).status_code,
            ),
            (
                "POST",
                "/v1/models/hp2:regress",
                400,
                "hp2",
                http.post("/v1/models/hp2:regress", content=b"{not json").status_code,
            ),
            ("GET", "/v1/models/hp2", 200, "hp2", http.get("/v1/models/hp2").status_code),
            (
                "GET",
                "/v1/models/hp2/metadata",
                200,
                "hp2",
                http.get("/v1/models/hp2/metadata").status_code,
            ),
        ]
    for method, path, status, _, got in expected:
        assert got == status, (method, path)
    want = earlier + len(expected)
    lines = access(wait_lines(srv.server, lambda ls: len(access(ls)) >= want))[earlier:]
    assert len(lines) == len(expected)  # nothing else was logged as an access
    seen = sorted((ln["method"], ln["path"], ln["status"], ln["model"]) for ln in lines)
    assert seen == sorted((m, p, s, model) for m, p, s, model, _ in expected)
    for line in lines:
        assert line["msg"] == "request" and line["level"] == "INFO"
        assert isinstance(line["latency_ms"], float | int) and line["latency_ms"] >= 0
        assert line["entrypoint"] == "REST"
    [versioned] = [ln for ln in lines if ln["path"] == "/v1/models/hp2/versions/1:predict"]
    assert versioned["version"] == 1


def test_access_log_has_one_line_per_grpc_call(srv: LogServer) -> None:
    with grpc.insecure_channel(srv.server.grpc_target) as chan:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(chan)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "hp2"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray([1.0], np.float32)))
        stub.Predict(request, timeout=TIMEOUT)
    lines = wait_lines(
        srv.server,
        lambda ls: any(
            ln["logger"] == "tensorserve.access" and ln.get("entrypoint") == "GRPC" for ln in ls
        ),
        timeout=2,
    )
    [line] = [
        ln
        for ln in lines
        if ln["logger"] == "tensorserve.access" and ln.get("entrypoint") == "GRPC"
    ]
    assert line["model"] == "hp2"


def test_a_new_version_load_and_old_version_unload_log_json(
    srv: LogServer,
    models_dir: Path,
) -> None:
    staging = srv.root / "staging"
    shutil.copytree(models_dir / "half_plus_two" / "2", staging)
    staging.rename(srv.root / "hp2" / "2")
    lines = wait_lines(
        srv.server,
        lambda ls: (
            states(ls, "hp2", 1)[-1:] == ["END"] and states(ls, "hp2", 2)[-1:] == ["AVAILABLE"]
        ),
        timeout=60,
    )
    assert states(lines, "hp2", 2) == ["START", "LOADING", "AVAILABLE"]
    assert states(lines, "hp2", 1) == ["START", "LOADING", "AVAILABLE", "UNLOADING", "END"]
    assert hp2_status(srv) == {"2": "AVAILABLE", "1": "END"}


def test_sigterm_unload_logs_json_and_exits_zero(srv: LogServer) -> None:
    assert srv.server.stop() == 0
    lines = json_lines(srv.server)
    messages = [line["msg"] for line in lines]
    assert "Shutting down: finishing in-flight requests" in messages
    assert messages[-1] == "Shutdown complete"
    shutdown = messages.index("Shutting down: finishing in-flight requests")
    after = lines[shutdown:]
    assert states(after, "hp2", 2) == ["UNLOADING", "END"]
