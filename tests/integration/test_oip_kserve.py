"""KServe's own Python V2 clients (``kserve.InferenceRESTClient`` / ``InferenceGRPCClient``)
against tensorserve's Open Inference Protocol. The SDK pins protobuf 6 and TensorFlow needs
7, so it gets a virtualenv of its own under ``build/kserve-client`` (built once, from PyPI),
and ``kserve_client.py`` runs there; the test skips only where that cannot be installed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT, Server

KSERVE = "kserve==0.21.0"
VENV = ROOT / "build" / "kserve-client"
SCRIPT = Path(__file__).with_name("kserve_client.py")


@pytest.fixture(scope="session")
def kserve_python() -> Path:
    python = VENV / "bin" / "python"
    stamp = VENV / f".{KSERVE}"
    if not stamp.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", KSERVE],
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        if install.returncode != 0:
            pytest.skip(f"cannot install {KSERVE} here: {install.stderr.strip()[-400:]}")
        stamp.touch()
    return python


def test_kserve_v2_clients_over_rest_and_grpc(kserve_python: Path, server: Server) -> None:
    run = subprocess.run(
        [str(kserve_python), str(SCRIPT), server.rest, server.grpc_target],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["rest_live"] and seen["rest_ready"] and seen["rest_model_ready"]
    # the main server's half_plus_two serves versions 1 and 2; the latest is 0.5 x + 3
    assert seen["rest_infer_binary_False"] == [3.5, 4.0, 5.5]
    assert seen["rest_infer_binary_True"] == [3.5, 4.0, 5.5]
    assert "404" in seen["rest_unknown_model"]
    assert seen["grpc_live"] and seen["grpc_ready"]
    assert seen["grpc_infer"] == [3.5, 4.0, 5.5]
