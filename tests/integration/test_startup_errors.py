"""Start-up failures print TF Serving's exact lines (scripts grep them), then tensorserve's
explanation, and exit non-zero: config files that do not parse or are missing, ports in
use, conflicting flags."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import free_port, run_server_expecting_exit

FAILED = "Failed to start server. Error: "


def _lines(args: list[str]) -> list[str]:
    done = run_server_expecting_exit(args)
    assert done.returncode != 0, done.stderr
    return done.stderr.splitlines()


def _after(lines: list[str], line: str) -> str:
    """The line after ``line`` (which must be there)."""
    assert line in lines, "\n".join(lines)
    return lines[lines.index(line) + 1]


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "m").mkdir()  # no versions: start-up goes on to the ports at once
    return tmp_path / "m"


@pytest.mark.parametrize(
    ("flag", "text", "type_name", "position", "reason"),
    [
        (
            "--model_config_file",
            'model_config_list {\n  config { name: "a" base_path: "/x" bogus: 1 }\n}\n',
            "tensorflow.serving.ModelServerConfig",
            "2:38",
            'Message type "tensorflow.serving.ModelConfig" has no field named "bogus".',
        ),
        (
            "--batching_parameters_file",
            "max_batch_size: 5\n",
            "tensorflow.serving.BatchingParameters",
            "1:17",
            'Expected "{".',
        ),
        (
            "--monitoring_config_file",
            "prometheus_config { enable: true\n",
            "tensorflow.serving.MonitoringConfig",
            "1:29",  # Python's protobuf points at the line's end, C++'s at the next token
            'Expected "}".',
        ),
        (
            "--ssl_config_file",
            "server_key: 42\n",
            "tensorflow.serving.SSLConfig",
            "1:13",
            "Expected string but found: '42'",
        ),
    ],
)
def test_a_config_file_that_does_not_parse(
    tmp_path: Path,
    model_dir: Path,
    flag: str,
    text: str,
    type_name: str,
    position: str,
    reason: str,
) -> None:
    path = tmp_path / "bad.config"
    path.write_text(text)
    args = [f"{flag}={path}", "--enable_batching=true"]
    if flag != "--model_config_file":
        args.append(f"--model_base_path={model_dir}")
    lines = _lines(args)
    protobuf = f"Error parsing text-format {type_name}: {position}: {reason}"
    assert _after(lines, protobuf) == f"{FAILED}INVALID_ARGUMENT: Invalid protobuf file: '{path}'"
    explanation = _after(lines, f"{FAILED}INVALID_ARGUMENT: Invalid protobuf file: '{path}'")
    assert explanation.startswith("tensorserve: ") and f"is not a valid {type_name}" in explanation


def test_a_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.config"
    lines = _lines([f"--model_config_file={path}"])
    explanation = _after(lines, f"{FAILED}NOT_FOUND: {path}; No such file or directory")
    assert explanation.startswith("tensorserve: Cannot read model config file")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port someone else listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize("workers", ["1", "2"])
def test_grpc_port_in_use(model_dir: Path, taken_port: int, workers: str) -> None:
    args = [f"--model_base_path={model_dir}", f"--port={taken_port}", f"--num_workers={workers}"]
    lines = _lines([*args, "--bind_address=127.0.0.1"])
    explanation = _after(lines, f"{FAILED}INVALID_ARGUMENT: Failed to BuildAndStart gRPC server")
    assert explanation.startswith(
        f"tensorserve: gRPC server could not start on 127.0.0.1:{taken_port}"
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_rest_port_in_use(model_dir: Path, taken_port: int, workers: str) -> None:
    args = [f"--model_base_path={model_dir}", f"--rest_api_port={taken_port}"]
    lines = _lines(
        [*args, f"--port={free_port()}", f"--num_workers={workers}", "--bind_address=127.0.0.1"]
    )
    status = f"{FAILED}UNAVAILABLE: Failed to start HTTP Server at 127.0.0.1:{taken_port}"
    assert _after(lines, f"Couldn't bind to port {taken_port}") == status
    assert _after(lines, status).startswith("tensorserve: REST server could not start on ")


@pytest.mark.parametrize(
    ("args", "tf_serving"),
    [
        (
            [],
            "Both server_options.model_base_path and server_options.model_config_file are empty!",
        ),
        (
            ["--model_base_path=/m", "--port=0", "--rest_api_port=0"],
            "At least one of server_options.grpc_port or server_options.grpc_socket_path must be "
            "set.",
        ),
        (
            ["--model_base_path=/m", "--port=8600", "--rest_api_port=8600"],
            "server_options.http_port cannot be same as grpc_port. Please use a different port for "
            "HTTP/REST API. Skipped exporting HTTP/REST API.",
        ),
        (
            ["--model_base_path=/m", "--batching_parameters_file=/b"],
            "server_options.batching_parameters_file is set without setting "
            "server_options.enable_batching to true.",
        ),
        (
            ["--model_base_path=/m", "--tensorflow_session_parallelism=1",
             "--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=1"],
            "Either configure server_options.tensorflow_session_parallelism or "
            "(server_options.tensorflow_intra_op_parallelism, "
            "server_options.tensorflow_inter_op_parallelism) separately. You cannot configure all.",
        ),
    ],
)  # fmt: skip
def test_conflicting_flags(args: list[str], tf_serving: str) -> None:
    done = run_server_expecting_exit(args)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert _after(lines, f"{FAILED}INVALID_ARGUMENT: {tf_serving}").startswith(
        "tensorserve: error: "
    )


@pytest.mark.parametrize(
    "flag", ["--rest_api_header_timeout_seconds=0", "--rest_api_max_buffered_body_bytes=0"]
)
def test_a_request_limit_below_one_is_refused(flag: str) -> None:
    done = run_server_expecting_exit(["--model_base_path=/m", flag])
    assert done.returncode == 2
    name, value = flag.split("=")
    assert f"tensorserve: error: {name} must be at least 1, got {value}" in done.stderr
