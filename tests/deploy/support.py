"""Helpers of the deploy tier: podman containers, readiness waits, REST and gRPC clients."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
KSERVE = REPO.parent / "shared" / "testdata" / "kserve"
BUILD = REPO / "build" / "deploy"
MEASUREMENTS = BUILD / "measurements.json"
CONTAINERS_CONF = REPO / "tests" / "deploy" / "containers.conf"


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    return env


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=podman_env(),
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def renumber_locks() -> None:
    """Re-derive podman's lock allocation from its database when nothing is running.

    The shared-memory lock table (``/dev/shm/libpod_lock``) can be lost while the database
    under /var/lib/containers survives (a sandbox restored from a snapshot, /dev/shm
    cleared): new objects are then handed lock numbers that existing volumes still hold,
    and ``podman kube play`` deadlocks on itself. ``podman system renumber`` repairs that.
    """
    running = podman("ps", "--quiet", check=False, timeout=60)
    if running.returncode == 0 and not running.stdout.strip():
        podman("system", "renumber", check=False, timeout=120)


def remove_leftovers(prefix: str) -> None:
    """Remove containers, including storage-only ones an interrupted run left, named ``prefix*``."""
    listed = podman("ps", "--all", "--external", "--format", "json", check=False, timeout=60)
    for c in json.loads(listed.stdout or "[]") if listed.returncode == 0 else []:
        names = c.get("Names") or []
        if any(n.startswith(prefix) for n in names):
            podman("rm", "--force", c["Id"], check=False, timeout=60)
            podman("rm", "--storage", c["Id"], check=False, timeout=60)


def record(key: str, value: object) -> None:
    """Adds a measurement (image size, start-to-ready) to build/deploy/measurements.json."""
    BUILD.mkdir(parents=True, exist_ok=True)
    data = json.loads(MEASUREMENTS.read_text()) if MEASUREMENTS.exists() else {}
    data[key] = value
    MEASUREMENTS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def world_readable_dir(prefix: str) -> Path:
    """A fresh folder under build/deploy that uid 1000 inside a container can read."""
    BUILD.mkdir(parents=True, exist_ok=True)
    base = BUILD / "run"
    base.mkdir(exist_ok=True)
    path = base / f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"
    path.mkdir()
    for p in (REPO / "build", BUILD, base, path):
        p.chmod(0o755)
    return path


def make_readable(path: Path) -> None:
    for root, dirs, files in os.walk(path):
        os.chmod(root, 0o755)
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)


def copy_version(src: Path, dest_model_dir: Path, version: int) -> None:
    """Drops a version folder in as a copy tool would: copied aside, then renamed in place."""
    tmp = dest_model_dir / f".{version}.partial"
    shutil.copytree(src, tmp)
    make_readable(tmp)
    tmp.rename(dest_model_dir / str(version))


@dataclass
class Container:
    cid: str
    ports: dict[int, int] = field(default_factory=dict)

    def host_port(self, container_port: int) -> int:
        if container_port not in self.ports:
            out = podman("port", self.cid, f"{container_port}/tcp").stdout.strip()
            self.ports[container_port] = int(out.splitlines()[0].rsplit(":", 1)[1])
        return self.ports[container_port]

    def url(self, container_port: int, path: str = "") -> str:
        return f"http://127.0.0.1:{self.host_port(container_port)}{path}"

    def logs(self) -> str:
        proc = podman("logs", self.cid, check=False)
        return proc.stdout + proc.stderr

    def state(self) -> dict[str, object]:
        state: dict[str, object] = json.loads(podman("inspect", self.cid).stdout)[0]["State"]
        return state

    def remove(self) -> None:
        podman("rm", "--force", "--time", "2", self.cid, check=False)


def run_container(
    image: str,
    args: Sequence[str] = (),
    *,
    publish: Sequence[int] = (8500, 8501),
    options: Sequence[str] = (),
) -> Container:
    """``podman run -d`` with each port published on a free 127.0.0.1 port."""
    cmd = ["run", "--detach"]
    for port in publish:
        cmd += ["--publish", f"127.0.0.1::{port}"]
    cmd += [*options, image, *args]
    cid = podman(*cmd).stdout.strip().splitlines()[-1]
    return Container(cid)


def wait_ready(container: Container, rest_port: int, timeout: float = 180) -> float:
    """Seconds until ``/v2/health/ready`` answered 200 (the container must keep running)."""
    return wait_ready_url(container.url(rest_port, "/v2/health/ready"), container, timeout)


def wait_ready_url(url: str, container: Container, timeout: float = 180) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        if container.state().get("Status") != "running":
            raise AssertionError(f"container exited before ready:\n{container.logs()}")
        time.sleep(0.25)
    raise AssertionError(f"not ready within {timeout}s:\n{container.logs()}")


def wait_for(predicate, timeout: float, what: str, container: Container | None = None):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(0.25)
    logs = container.logs() if container else ""
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})\n{logs}")


def rest_predict(base: str, model: str, instances: list[float]) -> list[float]:
    resp = httpx.post(
        f"{base}/v1/models/{model}:predict", json={"instances": instances}, timeout=10
    )
    assert resp.status_code == 200, resp.text
    predictions: list[float] = resp.json()["predictions"]
    return predictions


def grpc_predict(port: int, model: str, values: list[float]) -> list[float]:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(values, dtype=tf.float32))
        response = stub.Predict(request, timeout=10)
    return [float(v) for v in tf.make_ndarray(response.outputs["y"]).ravel()]


def grpc_health(port: int, service: str = "") -> str:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))
