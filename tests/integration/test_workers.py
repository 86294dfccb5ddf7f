"""The multi-process server (``--num_workers``): one model process, protocol workers sharing
the ports, and a supervisor; coherent answers from every worker, faults and shutdown.

Connections are spread over the workers by the kernel (``SO_REUSEPORT``), so every check
that must hold "from every worker" opens many fresh connections.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import grpc
import httpx
import pytest
from tensorflow_serving.apis import (
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.harness import (
    ENV,
    ROOT,
    Server,
    copy_version,
    exiting_server_command,
    model_config,
    run_server_expecting_exit,
    start_server,
)

T = TypeVar("T")
X = [1.0, 2.0, 5.0]
SERVING = ":tensorflow:serving:"


# ---- process helpers ----------------------------------------------------------------------
def children(pid: int) -> dict[int, str]:
    """Child pid -> role ("model" / "worker") of the server process ``pid``."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"tensorserve.processes.child" in cmdline:
            found[int(entry)] = cmdline[cmdline.index(b"tensorserve.processes.child") + 1].decode()
    return found


def pids_of(server: Server, role: str) -> list[int]:
    assert server.process is not None
    return sorted(pid for pid, r in children(server.process.pid).items() if r == role)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def wait_for(check: Callable[[], T], what: str, timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def fresh_get(server: Server, path: str) -> httpx.Response:
    """A GET on a new connection (so the kernel picks a worker for it)."""
    with httpx.Client(base_url=server.rest, timeout=30) as client:
        return client.get(path)


def fresh_predict(server: Server, model: str, version: int | None = None) -> httpx.Response:
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    with httpx.Client(base_url=server.rest, timeout=30) as client:
        return client.post(path, json={"instances": X})


def versions_available(server: Server, model: str) -> tuple[int, ...]:
    response = fresh_get(server, f"/v1/models/{model}")
    if response.status_code != 200:
        return ()
    return tuple(
        sorted(
            int(v["version"])
            for v in response.json()["model_version_status"]
            if v["state"] == "AVAILABLE"
        )
    )


# ---- fixtures -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base path holding half_plus_two version 1 only (version 2 is added by a test)."""
    folder = tmp_path_factory.mktemp("workers") / "hp"
    folder.mkdir()
    copy_version(models_dir / "half_plus_two" / "1", folder, 1)
    return folder


@pytest.fixture(scope="module")
def workers(
    base: Path, models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("workers-config") / "models.config"
    config.write_text(model_config([("hp", str(base), "")]))
    monitoring = config.with_name("monitoring.config")
    monitoring.write_text('prometheus_config { enable: true path: "/metrics" }')
    server = start_server(
        [
            "--num_workers=2",
            f"--model_config_file={config}",
            f"--monitoring_config_file={monitoring}",
            "--file_system_poll_wait_seconds=1",
            "--enable_grpc_healthcheck_service=true",
            "--shutdown_grace_seconds=10",
        ]
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def channel(workers: Server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(workers.grpc_target) as chan:
        yield chan


def grpc_predict(channel: grpc.Channel, model: str) -> predict_pb2.PredictResponse:
    import tensorflow as tf

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(X, tf.float32))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return stub.Predict(request, timeout=30)


# ---- shape of the server ------------------------------------------------------------------
def test_one_model_process_and_the_workers(workers: Server) -> None:
    assert len(pids_of(workers, "model")) == 1
    worker_pids = pids_of(workers, "worker")
    assert len(worker_pids) == 2
    model_pid = pids_of(workers, "model")[0]
    assert "libtensorflow" in maps(model_pid)
    for pid in worker_pids:  # workers hold no model and never load TensorFlow
        assert "libtensorflow" not in maps(pid)
        assert "_pywrap_tensorflow" not in maps(pid)


def test_one_start_up_line_per_port(workers: Server) -> None:
    logs = workers.logs()
    assert logs.count("Running gRPC ModelServer at") == 1
    assert logs.count("Exporting HTTP/REST API at") == 1
    assert logs.count("tensorserve ready: ") == 1


def test_every_worker_serves(workers: Server) -> None:
    worker_pids = pids_of(workers, "worker")
    before = {pid: cpu_ticks(pid) for pid in worker_pids}
    for _ in range(120):
        response = fresh_predict(workers, "hp")
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": [2.5, 3.0, 4.5]}
    busy = [pid for pid in worker_pids if cpu_ticks(pid) > before[pid]]
    assert busy == worker_pids, "every worker should have taken some of the connections"


def test_metrics_count_every_request_once(workers: Server, channel: grpc.Channel) -> None:
    def count() -> float:
        text = fresh_get(workers, "/metrics").text
        line = f'{SERVING}request_count{{model_name="hp",status="OK"}} '
        values = [float(x.split()[-1]) for x in text.splitlines() if x.startswith(line)]
        assert len(values) == 1, "one series for the whole server, not one per worker"
        return values[0]

    before = count()
    for _ in range(30):
        assert fresh_predict(workers, "hp").status_code == 200
    for _ in range(10):
        grpc_predict(channel, "hp")
    assert {count() - before for _ in range(10)} == {40}  # the same sum from every worker


# ---- coherence ----------------------------------------------------------------------------
def test_a_new_version_is_seen_by_every_worker_at_once(
    workers: Server, base: Path, models_dir: Path
) -> None:
    assert versions_available(workers, "hp") == (1,)
    seen_v2 = threading.Event()
    stop = threading.Event()
    violations: list[str] = []

    def poll() -> None:
        while not stop.is_set():
            # Only a request *sent* after another answer showed version 2 must show it too:
            # one sent before may have been answered before the swap.
            asked_after_swap = seen_v2.is_set()
            available = versions_available(workers, "hp")
            if 2 in available:
                seen_v2.set()
            elif asked_after_swap:
                violations.append(f"a worker answered {available} after version 2 was served")
            if seen_v2.is_set():
                response = fresh_predict(workers, "hp", 2)
                if response.status_code != 200:
                    violations.append(f"version 2 predict: {response.status_code} {response.text}")

    threads = [threading.Thread(target=poll) for _ in range(4)]
    for thread in threads:
        thread.start()
    copy_version(models_dir / "half_plus_two" / "2", base, 2)
    try:
        assert seen_v2.wait(60), "version 2 never became available"
        time.sleep(1.0)  # keep polling from every connection for a while after the swap
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert violations == []
    assert fresh_predict(workers, "hp").json() == {"predictions": [3.5, 4.0, 5.5]}


def test_reload_config_through_one_connection_is_seen_by_all(
    workers: Server, base: Path, models_dir: Path, channel: grpc.Channel
) -> None:
    request = model_management_pb2.ReloadConfigRequest()
    for name, path in (("hp", base), ("added", models_dir / "half_plus_two")):
        config = request.config.model_config_list.config.add()
        config.name, config.base_path, config.model_platform = name, str(path), "tensorflow"
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    response = stub.HandleReloadConfigRequest(request, timeout=120)
    assert response.status.error_code == 0
    for _ in range(20):
        listed = fresh_get(workers, "/v1/models").json()["models"]
        assert sorted(m["name"] for m in listed) == ["added", "hp"]
        assert fresh_predict(workers, "added").status_code == 200


# ---- faults -------------------------------------------------------------------------------
def load(
    server: Server, stop: threading.Event, results: list[int], conns: int = 4
) -> list[threading.Thread]:
    """Keep-alive REST predict loops (one connection each) until ``stop``."""

    def loop() -> None:
        with httpx.Client(base_url=server.rest, timeout=30) as client:
            while not stop.is_set():
                try:
                    status = client.post("/v1/models/hp:predict", json={"instances": X}).status_code
                except httpx.HTTPError:
                    status = -1
                results.append(status)

    threads = [threading.Thread(target=loop) for _ in range(conns)]
    for thread in threads:
        thread.start()
    return threads


def test_a_killed_worker_is_restarted_and_only_its_requests_fail(workers: Server) -> None:
    originals = pids_of(workers, "worker")
    victim = originals[0]
    stop, results = threading.Event(), list[int]()
    threads = load(workers, stop, results)
    try:
        wait_for(lambda: len(results) > 50, "traffic before the kill")
        os.kill(victim, signal.SIGKILL)
        replaced = wait_for(
            lambda: (
                len(pids_of(workers, "worker")) == 2 and victim not in pids_of(workers, "worker")
            ),
            "a replacement worker",
        )
        assert replaced
        (replacement,) = set(pids_of(workers, "worker")) - set(originals)
        mark = len(results)
        wait_for(lambda: len(results) > mark + 100, "traffic after the restart")
        time.sleep(2)  # a replacement that never opened its ports would have exited by now
        assert alive(replacement)
        assert replacement in pids_of(workers, "worker")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    failed = [s for s in results if s != 200]
    assert len(failed) <= 4, f"only in-flight requests of the killed worker may fail: {failed}"
    assert all(s == 200 for s in results[-50:])
    assert "The worker 0 exited" in workers.logs() or "The worker 1 exited" in workers.logs()
    assert not alive(victim)
    assert "exited (exit code 0)" not in workers.logs()  # replacements listen, and stay


def test_a_killed_model_process_is_restarted_and_workers_say_so_meanwhile(
    workers: Server,
) -> None:
    (victim,) = pids_of(workers, "model")
    os.kill(victim, signal.SIGKILL)
    start = time.monotonic()
    response = fresh_predict(workers, "hp")
    assert time.monotonic() - start < 10, "a request must not hang while the model process is away"
    if response.status_code != 200:  # it may have been answered before the kill landed
        assert response.status_code == 503
        assert "model process" in response.json()["error"]
    wait_for(lambda: fresh_get(workers, "/v2/health/ready").status_code == 503, "not ready")
    wait_for(lambda: fresh_get(workers, "/v2/health/ready").status_code == 200, "ready again")
    assert fresh_predict(workers, "hp").status_code == 200
    new = pids_of(workers, "model")
    assert len(new) == 1 and new[0] != victim
    assert not alive(victim)


# ---- start and stop -----------------------------------------------------------------------
def small_server(models_dir: Path, *extra: str) -> Server:
    return start_server(
        [f"--model_base_path={models_dir / 'half_plus_two'}", "--model_name=hp", *extra]
    )


def test_sigterm_drains_every_process_and_exits_0(models_dir: Path) -> None:
    server = small_server(models_dir, "--num_workers=2")
    assert server.process is not None
    family = list(children(server.process.pid))
    assert len(family) == 3
    assert server.stop() == 0
    assert wait_for(lambda: not any(alive(pid) for pid in family), "no child left", 15)
    logs = server.logs()
    assert logs.index("Shutting down") < logs.index("Unloaded servable version")
    assert logs.rindex("Unloaded servable version") < logs.index("Shutdown complete")


def test_sigterm_during_start_up_stops_every_process_promptly(models_dir: Path) -> None:
    command = exiting_server_command(
        [f"--model_base_path={models_dir / 'half_plus_two'}", "--num_workers=2"]
    )
    process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL)
    try:
        family = wait_for(
            lambda: list(children(process.pid)) if len(children(process.pid)) == 3 else [],
            "children",
        )
        process.send_signal(signal.SIGTERM)  # before the model process has loaded (TF import)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert wait_for(lambda: not any(alive(pid) for pid in family), "no child left", 15)


def test_a_killed_supervisor_leaves_no_orphans(models_dir: Path) -> None:
    server = small_server(models_dir, "--num_workers=2")
    assert server.process is not None
    family = list(children(server.process.pid))
    assert len(family) == 3
    server.process.kill()
    server.process.wait()
    assert wait_for(lambda: not any(alive(pid) for pid in family), "no orphan", 15)
    server.stop()


def test_one_worker_is_one_process(models_dir: Path) -> None:
    server = small_server(models_dir, "--num_workers=1")
    try:
        assert server.process is not None
        assert children(server.process.pid) == {}
        assert fresh_predict(server, "hp").json() == {"predictions": [3.5, 4.0, 5.5]}  # v2
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize("workers_flag", ["--num_workers=1", "--num_workers=2"])
def test_a_port_in_use_stops_the_start_before_any_worker(
    models_dir: Path, workers_flag: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_server_expecting_exit(
            [
                f"--model_base_path={models_dir / 'half_plus_two'}",
                workers_flag,
                f"--rest_api_port={port}",
            ]
        )
    assert done.returncode != 0
    assert "Failed to start server. Error:" in done.stderr
    assert f":{port}" in done.stderr and "in use" in done.stderr


def test_help_lists_num_workers() -> None:
    out = subprocess.run(
        [*exiting_server_command([])[:3], "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--num_workers" in out
