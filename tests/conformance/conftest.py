"""Servers over TensorFlow Serving's own test models (``../shared/testdata/tfserving``).

Every fixture depends on ``tfs_testdata``, so the whole tier skips cleanly when
the folder is absent. The files are read in place, never copied; only the
config templates are rendered into temporary files. Four servers, each started
once per session:

* ``tfs_default`` - ``--model_name=default --model_base_path=saved_model_half_plus_two_cpu``
  (the set-up of TF Serving's ``tensorflow_model_server_test.py``), plus a Unix socket.
* ``tfs_zoo`` - one model_config_list holding every other SavedModel of the folder
  (version policies, labels, TF2, counter, the CPU/GPU/MKL/MLMD variants, the
  TFLite-only folder, the unbatched matrix model), ``--max_num_load_retries=0`` so
  the GPU models fail fast.
* ``tfs_good_config`` - ``good_model_config.txt`` with its placeholders substituted,
  ``monitoring_config.txt`` and the gRPC channel arguments of TF Serving's test.
* ``tfs_batching`` - ``matrix_half_plus_two`` with ``--enable_batching
  --batching_parameters_file=batching_config.txt`` (and Prometheus, to see the batches).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.harness import SHARED_TESTDATA, Server, model_config, start_server

RPC_TIMEOUT = 20.0
_NOT_RUN: list[pytest.Item] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without the testdata, deselect the tier: one summary line instead of a skip per test."""
    if SHARED_TESTDATA.is_dir():
        return
    here = Path(__file__).parent
    tier = [item for item in items if here in item.path.parents]
    if tier:
        _NOT_RUN.extend(tier)
        items[:] = [item for item in items if here not in item.path.parents]
        config.hook.pytest_deselected(items=tier)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _NOT_RUN:
        terminalreporter.write_line(
            f"conformance tier: {len(_NOT_RUN)} tests not run: {SHARED_TESTDATA} is absent "
            "(TF Serving's own test models; see README, 'Conformance tier')"
        )


# TF Serving's test passes --rest_api_timeout_in_ms=5000; a 2-core CI box needs more room.
REST_TIMEOUT_FLAG = "--rest_api_timeout_in_ms=20000"

# Served name -> (folder in the testdata, extra ModelConfig fields).
ZOO: dict[str, tuple[str, str]] = {
    # The set-up of TF Serving's http_rest_api_handler_test.cc: version 123 only, labelled.
    "saved_model_half_plus_two_2_versions": (
        "saved_model_half_plus_two_2_versions",
        "model_version_policy { specific { versions: 123 } } "
        'version_labels { key: "Version_Label" value: 123 }',
    ),
    "two_versions_latest": ("saved_model_half_plus_two_2_versions", ""),
    "two_versions_all": (
        "saved_model_half_plus_two_2_versions",
        "model_version_policy { all { } } "
        'version_labels { key: "stable" value: 123 } version_labels { key: "canary" value: 124 }',
    ),
    "tf2": ("saved_model_half_plus_two_tf2_cpu", ""),
    "half_plus_three": ("saved_model_half_plus_three", ""),
    "counter": ("saved_model_counter", ""),
    "mlmd": ("saved_model_half_plus_two_mlmd", ""),
    "mkl": ("saved_model_half_plus_two_mkl", ""),
    "with_config": ("saved_model_half_plus_two_cpu_with_saved_model_config", ""),
    "with_empty_config": ("saved_model_half_plus_two_cpu_with_empty_saved_model_config", ""),
    "gpu": ("saved_model_half_plus_two_gpu", ""),
    "gpu_trt": ("saved_model_half_plus_two_gpu_trt", ""),
    "tflite": ("saved_model_half_plus_two_tflite", ""),
    "matrix": ("matrix_half_plus_two", ""),
}


@dataclass
class Endpoint:
    """A running server with a REST client and a gRPC channel on it."""

    server: Server
    http: httpx.Client
    channel: grpc.Channel

    @property
    def prediction(self) -> prediction_service_pb2_grpc.PredictionServiceStub:
        return prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    @property
    def models(self) -> model_service_pb2_grpc.ModelServiceStub:
        return model_service_pb2_grpc.ModelServiceStub(self.channel)


def endpoint(server: Server) -> Iterator[Endpoint]:
    try:
        with (
            httpx.Client(base_url=server.rest, timeout=30) as http,
            grpc.insecure_channel(server.grpc_target) as channel,
        ):
            yield Endpoint(server, http, channel)
    finally:
        server.stop()


def sorted_object(obj: Any) -> Any:
    """Objects and lists sorted recursively (TF Serving's ``SortedObject`` comparison)."""
    if isinstance(obj, dict):
        return sorted((k, sorted_object(v)) for k, v in obj.items())
    if isinstance(obj, list | tuple):
        return sorted(sorted_object(x) for x in obj)
    return obj


def predict_request(
    model: str,
    x: float = 2.0,
    shape: tuple[int, ...] = (1,),
    signature: str = "serving_default",
    output_filter: bool = True,
) -> predict_pb2.PredictRequest:
    """The request of TF Serving's ``VerifyPredictRequest``: one float ``x`` of ``shape``."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(x)
    for size in shape:
        request.inputs["x"].tensor_shape.dim.add().size = size
    if output_filter:
        request.output_filter.append("y")
    return request


@pytest.fixture(scope="session")
def tfs_default(tfs_testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    socket_path = tmp_path_factory.mktemp("uds") / "tfs.sock"
    server = start_server(
        [
            "--model_name=default",
            f"--model_base_path={tfs_testdata / 'saved_model_half_plus_two_cpu'}",
            f"--grpc_socket_path={socket_path}",
            REST_TIMEOUT_FLAG,
        ]
    )
    yield from endpoint(server)


@pytest.fixture(scope="session")
def tfs_default_socket(tfs_default: Endpoint) -> str:
    """The ``unix:`` target of ``tfs_default``'s ``--grpc_socket_path``."""
    flag = next(a for a in tfs_default.server.args if a.startswith("--grpc_socket_path="))
    return "unix:" + flag.split("=", 1)[1]


@pytest.fixture(scope="session")
def tfs_zoo(tfs_testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    text = model_config(
        [(name, str(tfs_testdata / folder), extra) for name, (folder, extra) in ZOO.items()]
    )
    path = tmp_path_factory.mktemp("zoo") / "models.config"
    path.write_text(text)
    server = start_server(
        [
            f"--model_config_file={path}",
            "--max_num_load_retries=0",
            REST_TIMEOUT_FLAG,
        ]
    )
    yield from endpoint(server)


@pytest.fixture(scope="session")
def good_model_config(tfs_testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``good_model_config.txt`` with TF Serving's placeholders substituted, as its test does."""
    template = (tfs_testdata / "good_model_config.txt").read_text()
    text = template.replace(
        "${TEST_HALF_PLUS_TWO_DIR}", str(tfs_testdata / "saved_model_half_plus_two_cpu")
    ).replace("${TEST_HALF_PLUS_THREE_DIR}", str(tfs_testdata / "saved_model_half_plus_three"))
    path = tmp_path_factory.mktemp("good") / "good_model_config.conf"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def tfs_good_config(tfs_testdata: Path, good_model_config: Path) -> Iterator[Endpoint]:
    server = start_server(
        [
            f"--model_config_file={good_model_config}",
            f"--monitoring_config_file={tfs_testdata / 'monitoring_config.txt'}",
            "--grpc_channel_arguments=grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb",
            REST_TIMEOUT_FLAG,
        ]
    )
    yield from endpoint(server)


@pytest.fixture(scope="session")
def tfs_batching(tfs_testdata: Path) -> Iterator[Endpoint]:
    server = start_server(
        [
            "--model_name=matrix",
            f"--model_base_path={tfs_testdata / 'matrix_half_plus_two'}",
            "--enable_batching",
            f"--batching_parameters_file={tfs_testdata / 'batching_config.txt'}",
            f"--monitoring_config_file={tfs_testdata / 'monitoring_config.txt'}",
            REST_TIMEOUT_FLAG,
        ]
    )
    yield from endpoint(server)
