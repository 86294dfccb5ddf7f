"""A new user's first hour: ``make serve``'s demo, every line it prints, a quiet start.

The demo server runs as the Makefile runs it (``tensorserve.demo export`` then the
server with the demo's ``models.config`` and ``monitoring.config``), with the user's
environment: no ``TF_CPP_MIN_LOG_LEVEL`` (the other tests set it). Each line
``print-usage`` shows is run in a shell as a user would paste it; stderr of the whole
run must hold no error-level line (TensorFlow's ``E0000 ...`` C++ lines, Python
``ERROR``) and none of TensorFlow's CPU-only start-up notices.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.harness import ROOT, free_port

ERROR_LINE = re.compile(r"^[EF]\d{4} |\bERROR\b|\bCRITICAL\b|^Traceback", re.MULTILINE)
NOTICES = ("absl::InitializeLog", "cuInit", "cuda drivers", "cpu_feature_guard", "oneDNN")


@dataclass
class Demo:
    rest_port: int
    grpc_port: int
    process: subprocess.Popen[bytes]
    stderr: Path

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def stderr_text(self) -> str:
        return self.stderr.read_text(errors="replace")


def user_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    folder = tmp_path_factory.mktemp("demo")
    subprocess.run(
        [sys.executable, "-m", "tensorserve.demo", "export", "--dir", str(folder)],
        cwd=ROOT,
        env=user_env(),
        check=True,
        capture_output=True,
    )
    assert (folder / "monitoring.config").is_file()
    rest_port, grpc_port = free_port(), free_port()
    stderr = folder / "stderr.log"
    with open(stderr, "wb") as err, open(folder / "stdout.log", "wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tensorserve",
                f"--port={grpc_port}",
                f"--rest_api_port={rest_port}",
                f"--model_config_file={folder / 'models.config'}",
                f"--monitoring_config_file={folder / 'monitoring.config'}",
                "--bind_address=127.0.0.1",
            ],
            cwd=ROOT,
            env=user_env(),
            stdout=out,
            stderr=err,
        )
    server = Demo(rest_port, grpc_port, process, stderr)
    try:
        _wait_ready(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(server: Demo, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"demo server exited:\n{server.stderr_text()}")
        try:
            if httpx.get(f"{server.rest}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"demo server not ready:\n{server.stderr_text()}")


def printed_commands(demo: Demo) -> dict[str, str]:
    """``print-usage``'s (title -> shell line) pairs, for this server's ports."""
    usage = subprocess.run(
        [
            sys.executable,
            "-m",
            "tensorserve.demo",
            "print-usage",
            f"--rest_api_port={demo.rest_port}",
            f"--port={demo.grpc_port}",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lines = [line.strip() for line in usage.splitlines() if line.startswith("  ")]
    titles, commands = lines[0::2], lines[1::2]
    assert all(t.startswith("# ") for t in titles), usage
    return {t[2:]: c for t, c in zip(titles, commands, strict=True)}


def run(line: str) -> str:
    done = subprocess.run(
        line, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
    return done.stdout


EXPECTED_TITLES = {
    "REST predict",
    "REST classify",
    "REST regress",
    "model metadata (signatures)",
    "model status",
    "all models",
    "Prometheus metrics",
    "gRPC predict (official tensorflow-serving-api stubs)",
    "a wrong shape gets a 400 naming the input",
}


def test_every_printed_line_works(demo: Demo) -> None:
    commands = printed_commands(demo)
    assert set(commands) == EXPECTED_TITLES
    assert json.loads(run(commands["REST predict"])) == {"predictions": [2.5, 3.0, 4.5]}
    classes = json.loads(run(commands["REST classify"]))["results"]
    assert classes[0][0][1] == pytest.approx(3.0)
    assert json.loads(run(commands["REST regress"])) == {"results": [3.0, 4.0]}
    metadata = json.loads(run(commands["model metadata (signatures)"]))
    assert "serving_default" in metadata["metadata"]["signature_def"]["signature_def"]
    status = json.loads(run(commands["model status"]))
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert {"mlp", "half_plus_two"} <= set(run(commands["all models"]).replace('"', " ").split())
    grpc_out = run(commands["gRPC predict (official tensorflow-serving-api stubs)"])
    assert "y: [2.5, 3.0, 4.5]" in grpc_out
    wrong = json.loads(run(commands["a wrong shape gets a 400 naming the input"]))["error"]
    assert "'input_example'" in wrong and "[-1, 784]" in wrong
    # after the requests above, the metrics line finds their counts
    assert ":tensorflow:serving:request_count" in run(commands["Prometheus metrics"])


def test_metrics_at_tf_serving_path(demo: Demo) -> None:
    response = httpx.get(f"{demo.rest}/monitoring/prometheus/metrics", timeout=10)
    assert response.status_code == 200
    assert "# TYPE" in response.text


def test_readme_grpc_client_example_works(demo: Demo) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A gRPC client", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace("localhost:8500", f"127.0.0.1:{demo.grpc_port}")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[2.5, 3.0, 4.5]"


def test_start_logs_nothing_at_error_level(demo: Demo) -> None:
    """Runs last in the module: stderr of the start-up and of every request above."""
    text = demo.stderr_text()
    assert ERROR_LINE.search(text) is None, text
    assert [n for n in NOTICES if n in text] == [], text
