"""``make soak``: tensorserve under mixed traffic while its models and processes are disturbed.

For ``--minutes`` (30) a ``--num_workers=2`` server gets REST and gRPC traffic (predict,
classify, regress, metadata, status; 5% bad requests, each of which must get its own 4xx or
gRPC code), paced at ``--rate`` requests/s from a few client threads, while:

- every minute a new version folder of ``hpt`` appears and the oldest goes (``latest 2``);
- every 2 minutes ``ReloadConfig`` adds or drops a third model;
- once (at a quarter of the run) a broken version is dropped in, and taken out a minute later;
- every 5 minutes one protocol worker is killed (SIGKILL); the supervisor replaces it.

Every answer is checked (values, not just status). Allowed failures: the bad requests' own
errors, and requests in flight on (or sent to a connection of) a killed worker within a few
seconds of the kill. Reported: requests sent, failures by kind, p50/p99 per 5-minute window,
RSS/PSS, open file descriptors and threads of the server's processes at the start (after a
minute of warm-up) and at the end. ``--scale 0.1`` shrinks every period for a quick trial.

usage: .venv/bin/python benchmarks/soak.py [--minutes 30] [--rate 150] [--scale 1]
       [--out bench-results/soak.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import servers  # noqa: E402
from tensorflow.core.example import example_pb2, feature_pb2  # noqa: E402
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402

KILL_WINDOW_S = 5.0  # failures this soon after a worker kill are the kill's
WINDOW_S = 300.0  # latency windows of the report


# ---- the server and its models ----------------------------------------------------------------


def build_models(out: Path) -> None:
    """half_plus_two version 1 (the template every new version copies) and the MLP."""
    code = (
        "import sys; from tensorserve.runtime import demo_models as d; "
        "d.export_half_plus_two(sys.argv[1] + '/template', 1, 0.5, 2.0); "
        "d.export_mlp(sys.argv[1] + '/mlp')"
    )
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, cwd=ROOT)


def config_proto(root: Path, extra: bool) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    models = [("hpt", root / "hpt"), ("mlp", root / "mlp")]
    if extra:
        models.append(("extra", root / "mlp"))
    for name, path in models:
        entry = config.model_config_list.config.add()
        entry.name, entry.base_path, entry.model_platform = name, str(path), "tensorflow"
        if name == "hpt":
            entry.model_version_policy.latest.num_versions = 2
    return config


@dataclass
class Versions:
    """hpt's version folders: copies of the template, added and removed in order."""

    base: Path
    template: Path
    numbers: list[int] = field(default_factory=list)

    def add(self) -> int:
        number = (max(self.numbers) if self.numbers else 0) + 1
        staging = self.base / f".staging-{number}"
        shutil.copytree(self.template, staging)
        os.rename(staging, self.base / str(number))  # appears whole
        self.numbers.append(number)
        return number

    def drop_oldest(self) -> None:
        if len(self.numbers) > 3:
            shutil.rmtree(self.base / str(self.numbers.pop(0)))

    def add_broken(self) -> Path:
        number = max(self.numbers) + 1
        folder = self.base / str(number)
        staging = self.base / f".staging-{number}"
        staging.mkdir()
        (staging / "saved_model.pb").write_bytes(b"this is not a SavedModel")
        os.rename(staging, folder)
        self.numbers.append(number)
        return folder

    def remove(self, folder: Path) -> None:
        self.numbers.remove(int(folder.name))
        shutil.rmtree(folder)


# ---- clients ----------------------------------------------------------------------------------


def _tensor(values: list[float]) -> tensor_pb2.TensorProto:
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=len(values))]
    )
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape, float_val=values)


def _examples(xs: list[float]) -> classification_pb2.ClassificationRequest:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "hpt"
    request.model_spec.signature_name = "classify_x_to_y"
    for x in xs:
        feature = feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[x]))
        request.input.example_list.examples.append(
            example_pb2.Example(features=feature_pb2.Features(feature={"x": feature}))
        )
    return request


class Client:
    """One thread's connections; each op returns (kind, ok) and raises on transport errors."""

    def __init__(self, rest_port: int, grpc_port: int) -> None:
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{rest_port}", timeout=30)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)
        self.rng = random.Random()

    def close(self) -> None:
        self.http.close()
        self.channel.close()

    # good requests: the answer's values are checked
    def rest_predict(self) -> bool:
        x = self.rng.uniform(-10, 10)
        r = self.http.post("/v1/models/hpt:predict", json={"instances": [x, 1.0]})
        return r.status_code == 200 and _close(r.json()["predictions"], [x / 2 + 2, 2.5])

    def rest_predict_mlp(self) -> bool:
        r = self.http.post("/v1/models/mlp:predict", json={"instances": [[0.1] * 784]})
        return r.status_code == 200 and abs(sum(r.json()["predictions"][0]) - 1.0) < 1e-3

    def grpc_predict(self) -> bool:
        x = self.rng.uniform(-10, 10)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "hpt"
        request.inputs["x"].CopyFrom(_tensor([x, 1.0]))
        response = self.predict.Predict(request, timeout=30)
        return _close(list(response.outputs["y"].float_val), [x / 2 + 2, 2.5])

    def rest_classify(self) -> bool:
        body = {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
        r = self.http.post("/v1/models/hpt:classify", json=body)
        return r.status_code == 200 and len(r.json()["results"]) == 1

    def rest_regress(self) -> bool:
        body = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}
        r = self.http.post("/v1/models/hpt:regress", json=body)
        return r.status_code == 200 and _close(r.json()["results"], [3.0])

    def grpc_classify(self) -> bool:
        response = self.predict.Classify(_examples([1.0, 2.0]), timeout=30)
        return len(response.result.classifications) == 2

    def rest_metadata(self) -> bool:
        r = self.http.get("/v1/models/mlp/metadata")
        return r.status_code == 200 and "signature_def" in r.json()["metadata"]

    def grpc_metadata(self) -> bool:
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = "hpt"
        return bool(self.predict.GetModelMetadata(request, timeout=30).metadata)

    def rest_status(self) -> bool:
        r = self.http.get("/v1/models/hpt")
        states = [v["state"] for v in r.json()["model_version_status"]]
        return r.status_code == 200 and "AVAILABLE" in states

    def grpc_status(self) -> bool:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "mlp"
        response = self.models.GetModelStatus(request, timeout=30)
        return any(v.state == v.AVAILABLE for v in response.model_version_status)

    # bad requests: each must get exactly its error
    def bad(self) -> bool:
        case = self.rng.randrange(5)
        if case == 0:
            r = self.http.post("/v1/models/hpt:predict", content=b'{"instances": [1.0,')
            return r.status_code == 400 and "error" in r.json()
        if case == 1:
            r = self.http.post("/v1/models/nope:predict", json={"instances": [1.0]})
            return r.status_code == 404 and "error" in r.json()
        if case == 2:
            r = self.http.post("/v1/models/hpt:predict", json={"instances": ["text"]})
            return r.status_code == 400 and "error" in r.json()
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "hpt" if case == 3 else "nope"
        request.inputs["not_x" if case == 3 else "x"].CopyFrom(_tensor([1.0]))
        expected = grpc.StatusCode.INVALID_ARGUMENT if case == 3 else grpc.StatusCode.NOT_FOUND
        try:
            self.predict.Predict(request, timeout=30)
        except grpc.RpcError as err:
            return err.code() == expected and bool(err.details())
        return False


def _close(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all(abs(a - b) < 1e-4 for a, b in zip(got, want, strict=True))


OPS: list[tuple[str, float]] = [
    ("rest_predict", 0.25),
    ("grpc_predict", 0.22),
    ("rest_predict_mlp", 0.08),
    ("rest_classify", 0.06),
    ("rest_regress", 0.05),
    ("grpc_classify", 0.06),
    ("rest_metadata", 0.07),
    ("grpc_metadata", 0.06),
    ("rest_status", 0.05),
    ("grpc_status", 0.05),
    ("bad", 0.05),
]


# ---- the run ----------------------------------------------------------------------------------


@dataclass
class Record:
    t: float
    op: str
    latency_s: float
    outcome: str  # "ok", "bad_ok" (a bad request got its error), "fail", "error"
    detail: str = ""


@dataclass
class Soak:
    args: argparse.Namespace
    work: Path
    records: list[Record] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)
    samples: list[dict[str, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    t0: float = 0.0
    sample_at_start: dict[str, float] | None = None
    reload_failures: int = 0

    def event(self, text: str) -> None:
        stamp = time.monotonic() - self.t0
        self.events.append((stamp, text))
        print(f"[{stamp / 60:5.1f} min] {text}", flush=True)

    def traffic(self, rest_port: int, grpc_port: int, rate: float) -> None:
        client = Client(rest_port, grpc_port)
        names, weights = zip(*OPS, strict=True)
        interval = 1.0 / rate
        next_at = time.monotonic()
        while not self.stop.is_set():
            op = client.rng.choices(names, weights)[0]
            start = time.monotonic()
            try:
                ok = getattr(client, op)()
                outcome = ("bad_ok" if op == "bad" else "ok") if ok else "fail"
                detail = ""
            except (httpx.HTTPError, grpc.RpcError, OSError, KeyError, ValueError) as exc:
                outcome, detail = "error", f"{type(exc).__name__}: {str(exc)[:200]}"
                if isinstance(exc, httpx.HTTPError):  # a dead keep-alive connection: reconnect
                    client.http.close()
                    client.http = httpx.Client(base_url=f"http://127.0.0.1:{rest_port}", timeout=30)
            end = time.monotonic()
            with self.lock:
                self.records.append(Record(start - self.t0, op, end - start, outcome, detail))
            next_at = max(next_at + interval, end - 1.0)  # paced; no catch-up bursts
            time.sleep(max(0.0, next_at - time.monotonic()))
        client.close()

    def sample(self, pid: int) -> None:
        procs = servers.process_tree(pid)
        mem = servers.tree_memory(pid)
        fds = threads = 0
        for p in procs:
            try:
                fds += len(os.listdir(f"/proc/{p}/fd"))
                status = Path(f"/proc/{p}/status").read_text()
                threads += int(status.split("Threads:")[1].split()[0])
            except OSError:
                continue
        self.samples.append(
            {
                "t": time.monotonic() - self.t0,
                "processes": len(procs),
                "rss_mb": sum(m.rss for m in mem) / 2**20,
                "pss_mb": sum(m.pss for m in mem) / 2**20,
                "fds": fds,
                "threads": threads,
            }
        )

    def kill_worker(self, pid: int) -> None:
        workers = [p for p in servers.process_tree(pid) if servers._role(p) == "worker"]
        if not workers:
            self.event("no worker to kill")
            return
        victim = random.choice(workers)
        os.kill(victim, signal.SIGKILL)
        self.kills.append(time.monotonic() - self.t0)
        self.event(f"killed worker {victim}")

    def reload(self, grpc_port: int, extra: bool) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = model_service_pb2_grpc.ModelServiceStub(channel)
            request = model_management_pb2.ReloadConfigRequest(
                config=config_proto(self.work / "models", extra)
            )
            try:
                response = stub.HandleReloadConfigRequest(request, timeout=120)
                outcome = f"code {response.status.error_code} {response.status.error_message}"
            except grpc.RpcError as err:
                outcome = f"FAILED {err.code()}: {err.details()}"
                self.reload_failures += 1
        self.event(f"ReloadConfig ({'with' if extra else 'without'} 'extra'): {outcome}")

    def run(self) -> dict[str, object]:
        models = self.work / "models"
        if not (models / "template").is_dir():
            build_models(models)
        hpt = models / "hpt"
        shutil.rmtree(hpt, ignore_errors=True)
        hpt.mkdir()
        versions = Versions(hpt, models / "template" / "1")
        versions.add()
        config_path = self.work / "models.config"
        from google.protobuf import text_format

        config_path.write_text(text_format.MessageToString(config_proto(models, False)))
        rest_port, grpc_port = servers.free_port(), servers.free_port()
        log = open(self.work / "server.log", "wb")  # noqa: SIM115
        server = subprocess.Popen(
            [
                sys.executable, "-m", "tensorserve", f"--port={grpc_port}",
                f"--rest_api_port={rest_port}", "--bind_address=127.0.0.1", "--num_workers=2",
                f"--model_config_file={config_path}", "--max_num_load_retries=1",
                "--load_retry_interval_micros=5000000",
            ],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _wait_ready(rest_port)
            return self._drive(server.pid, rest_port, grpc_port, versions)
        finally:
            self.stop.set()  # the traffic threads end with the run, however it ends
            server.send_signal(signal.SIGTERM)
            server.wait(60)
            log.close()

    def _drive(
        self, pid: int, rest_port: int, grpc_port: int, versions: Versions
    ) -> dict[str, object]:
        args = self.args
        self.t0 = time.monotonic()
        duration = args.minutes * 60
        threads = [
            threading.Thread(
                target=self.traffic, args=(rest_port, grpc_port, args.rate / 4), daemon=True
            )
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        every = {name: period * args.scale for name, period in PERIODS.items()}
        broken_at, broken = duration / 4, None
        due = {name: period for name, period in every.items()}
        extra = False
        warm = min(60.0, duration / 10)
        while (now := time.monotonic() - self.t0) < duration:
            if self.sample_at_start is None and now >= warm:
                self.sample(pid)
                self.sample_at_start = self.samples[-1]
            if now >= due["version"]:
                self.event(f"added version {versions.add()} of hpt")
                versions.drop_oldest()
                due["version"] += every["version"]
            if now >= due["reload"]:
                extra = not extra
                self.reload(grpc_port, extra)
                due["reload"] += every["reload"]
            if now >= due["kill"]:
                self.kill_worker(pid)
                due["kill"] += every["kill"]
            if now >= due["sample"]:
                self.sample(pid)
                due["sample"] += every["sample"]
            if broken is None and now >= broken_at:
                broken = versions.add_broken()
                self.event(f"dropped in broken version {broken.name}")
            elif broken is not None and broken.exists() and now >= broken_at + every["version"]:
                versions.remove(broken)
                self.event(f"removed broken version {broken.name}")
            time.sleep(0.2)
        self.sample(pid)
        self.stop.set()
        for thread in threads:
            thread.join()
        return self.report()

    def report(self) -> dict[str, object]:
        kinds: dict[str, int] = {}
        unexpected: list[str] = []
        for r in self.records:
            if r.outcome in ("ok", "bad_ok"):
                continue
            done = r.t + r.latency_s
            near_kill = any(done >= k and r.t - k <= KILL_WINDOW_S for k in self.kills)
            kind = "killed_worker" if near_kill else "unexpected"
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind == "unexpected" and len(unexpected) < 20:
                unexpected.append(f"{r.t:.1f}s {r.op} {r.outcome} {r.detail}")
        windows = []
        span = WINDOW_S * self.args.scale
        end = self.args.minutes * 60  # requests started after the end are left out
        start = 0.0
        while start < end:
            inside = [r for r in self.records if start <= r.t < start + span]
            lat = sorted(r.latency_s for r in inside if r.outcome == "ok")
            if lat:
                windows.append(
                    {
                        "from_min": start / 60,
                        "requests": len(inside),
                        "p50_ms": lat[len(lat) // 2] * 1e3,
                        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
                    }
                )
            start += span
        first, last = self.sample_at_start or self.samples[0], self.samples[-1]
        return {
            "minutes": self.args.minutes,
            "rate": self.args.rate,
            "scale": self.args.scale,
            "sent": len(self.records),
            "bad_sent": sum(1 for r in self.records if r.op == "bad"),
            "bad_answered_right": sum(1 for r in self.records if r.outcome == "bad_ok"),
            "failures": kinds,
            "unexpected_examples": unexpected,
            "kills": len(self.kills),
            "reload_failures": self.reload_failures,
            "windows": windows,
            "start": first,
            "end": last,
            "samples": self.samples,
            "events": self.events,
        }


PERIODS = {"version": 60.0, "reload": 120.0, "kill": 300.0, "sample": 30.0}


def _wait_ready(rest_port: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{rest_port}/v2/health/ready", timeout=2).is_success:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server not ready")


def markdown(result: dict[str, object]) -> str:
    start, end = result["start"], result["end"]
    assert isinstance(start, dict) and isinstance(end, dict)
    failures = result["failures"]
    assert isinstance(failures, dict)
    lines = [
        f"{result['minutes']} min at {result['rate']} req/s: {result['sent']:,} requests "
        f"({result['bad_sent']:,} bad, {result['bad_answered_right']:,} of them answered with "
        f"their exact error); {result['kills']} worker kills; failures: "
        f"{failures.get('killed_worker', 0)} in flight on a killed worker, "
        f"{failures.get('unexpected', 0)} unexpected; {result['reload_failures']} failed "
        "config reloads.",
        "",
        "| Window (min) | Requests | p50 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    windows = result["windows"]
    assert isinstance(windows, list)
    window_min = WINDOW_S / 60 * float(str(result["scale"]))
    digits = 0 if window_min >= 1 else 1
    for w in windows:
        lines.append(
            f"| {w['from_min']:.{digits}f}-{w['from_min'] + window_min:.{digits}f} | "
            f"{w['requests']:,} | {w['p50_ms']:.1f} | {w['p99_ms']:.1f} |"
        )
    lines += [
        "",
        "| | Start | End | Change |",
        "|---|---|---|---|",
    ]
    for key, label in (
        ("rss_mb", "RSS, all processes (MB)"),
        ("pss_mb", "PSS, all processes (MB)"),
        ("fds", "Open file descriptors"),
        ("threads", "Threads"),
        ("processes", "Processes"),
    ):
        a, b = float(start[key]), float(end[key])
        change = f"{(b - a) / a * 100:+.1f}%" if a else "n/a"
        lines.append(f"| {label} | {a:,.0f} | {b:,.0f} | {change} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=150)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every period")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "soak.json"))
    args = parser.parse_args()
    out = Path(args.out)
    work = out.parent / "soak"
    work.mkdir(parents=True, exist_ok=True)
    result = Soak(args, work).run()
    out.write_text(json.dumps(result, indent=1))
    text = markdown(result)
    out.with_suffix(".md").write_text(text + "\n")
    print(text)
    failures = result["failures"]
    assert isinstance(failures, dict)
    return 1 if failures.get("unexpected") or result["reload_failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
