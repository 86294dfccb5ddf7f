"""Session-scoped fixtures: fixture models built once, one shared main server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from tests.harness import ROOT, SHARED_TESTDATA, Server, model_config, start_server


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every fixture model of ``tests/fixture_models.py``, built once in a subprocess."""
    out = tmp_path_factory.mktemp("models")
    subprocess.run(
        [sys.executable, "-m", "tests.fixture_models", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="session")
def main_config(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    hp2 = (
        "model_version_policy { specific { versions: 1 versions: 2 } } "
        'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 }'
    )
    text = model_config(
        [
            ("half_plus_two", str(models_dir / "half_plus_two"), hp2),
            ("mlp", str(models_dir / "mlp"), ""),
            ("strings", str(models_dir / "strings"), ""),
            ("multi", str(models_dir / "multi"), ""),
            ("all_types", str(models_dir / "all_types"), ""),
        ]
    )
    path = tmp_path_factory.mktemp("config") / "models.config"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def server(main_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The main server: REST + gRPC, Prometheus on, the fixture models."""
    monitoring = tmp_path_factory.mktemp("mon") / "monitoring.config"
    monitoring.write_text(
        'prometheus_config { enable: true path: "/monitoring/prometheus/metrics" }'
    )
    srv = start_server(
        [
            f"--model_config_file={main_config}",
            f"--monitoring_config_file={monitoring}",
            "--enable_grpc_healthcheck_service=true",
            "--rest_api_timeout_in_ms=20000",
        ]
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.rest, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def channel(server: Server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_target) as chan:
        yield chan


@pytest.fixture(scope="session")
def tfs_testdata() -> Path:
    """TF Serving's own test models (``../shared/testdata/tfserving``); skip when absent."""
    if not SHARED_TESTDATA.is_dir():
        pytest.skip("../shared/testdata/tfserving is not present")
    return SHARED_TESTDATA
