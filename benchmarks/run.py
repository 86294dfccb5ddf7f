"""``make bench``: tensorserve (``--num_workers=1`` and ``=2``) against the in-process floor, a
plain FastAPI wrapper (one uvicorn worker and ``--workers 2``), KServe (1 and 2 workers), Seldon
MLServer (``parallel_workers`` 0 and 2) and LitServe (2 API servers, with and without batching),
with real load generators (wrk for REST, h2load for gRPC).

usage: .venv/bin/python benchmarks/run.py [--quick] [--only floor,fastapi,kserve,mlserver,
       litserve,tensorserve] [--scenarios mlp,large,swap,soak,memory] [--write BENCHMARKS.md]
       [--render bench-results/results.json] [--no-oip]

Scenarios
  floor   in-process signature calls (batch 1 and 64), and orjson+numpy alone on the large payload
  mlp     the seed MLP at 1, 16 and 64 connections, interleaved rounds, every server up at once
          (a server that burns CPU while idle is paused outside its own measurements); memory
          (USS/PSS of every process) of each server afterwards; tensorserve --num_workers=2 also
          over the Open Inference Protocol (OIP REST JSON, OIP REST binary, OIP gRPC ModelInfer)
  large   8x224x224x3 float32 in, same-size tensor out: REST JSON and gRPC tensor_content; OIP
          REST JSON / binary / gRPC on tensorserve --num_workers=2 and KServe's V2 JSON, beside
          MLServer's V2 JSON
  swap    tensorserve --num_workers=2: a new version appears under load; p99 during the swap vs
          steady, failures
  soak    tensorserve --num_workers=2: 100,000 requests; RSS after 10k vs after 100k
  memory  a model with ~300 MB of weights: sum of PSS with --num_workers=2 vs 1 (and the FastAPI
          wrapper with 1 and 2 uvicorn workers)
Everything it writes goes to bench-results/ (git-ignored): models, logs, peer venvs, results.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import bench_models as bm  # noqa: E402
import loadgen  # noqa: E402
import numpy as np  # noqa: E402
from report import Check, Results, Row, median, render_console, render_markdown  # noqa: E402
from servers import (  # noqa: E402
    OIP_MODEL_INFER,
    CpuMeter,
    Endpoint,
    ProcMem,
    Server,
    free_port,
    model_status,
    stop_running,
)

BENCH = Path(os.environ.get("BENCH_DIR", ROOT / "bench-results"))
MAIN_PY = ROOT / ".venv" / "bin" / "python"
VENVS = BENCH / "venvs"
LOGS = BENCH / "logs"
MODELS = BENCH / "models"
BODIES = BENCH / "bodies"
SUBJECTS = ("floor", "fastapi", "kserve", "mlserver", "litserve", "tensorserve")
SCENARIOS = ("mlp", "large", "swap", "soak", "memory")
PEERS = ("kserve", "mlserver", "litserve")  # each in its own virtualenv
# Row labels (the targets find rows by these).
WRAPPER = "FastAPI wrapper"
WRAPPER2 = "FastAPI wrapper (uvicorn --workers 2)"
KSERVE = "KServe 0.21 ModelServer"
KSERVE2 = "KServe 0.21 ModelServer (--workers 2)"
MLSERVER = "MLServer 1.7.1 (parallel_workers 0)"
MLSERVER2 = "MLServer 1.7.1 (parallel_workers 2)"
LITSERVE = "LitServe 0.2.19 (num_api_servers=2)"
LITSERVE_B = "LitServe 0.2.19 (num_api_servers=2, batching)"
TS1 = "tensorserve (--num_workers=1)"
TS2 = "tensorserve (--num_workers=2)"
TS2_B = "tensorserve (--num_workers=2, batching)"
TWO_WORKER_PEERS = (WRAPPER2, KSERVE2, MLSERVER2, LITSERVE, LITSERVE_B)
# Open Inference Protocol (KServe V2) protocol labels; the existing "REST" / "gRPC" rows are TF
# Serving's (MLServer's "REST" row is its V2 JSON, its only REST protocol).
OIP_JSON = "OIP REST JSON"
OIP_BIN = "OIP REST binary"
OIP_GRPC = "OIP gRPC"
OIP_PROTOCOLS = (OIP_JSON, OIP_BIN, OIP_GRPC)
GRPC_PROTOCOLS = ("gRPC", OIP_GRPC)
OIP = [True]  # --no-oip: no OIP rows (e.g. a --tensorserve-cmd binary without /v2)
PEER_LABELS = {"kserve": KSERVE, "mlserver": MLSERVER, "litserve": LITSERVE}
IDLE_BUSY_PCT = 5.0  # % of one core: a server above this while not measured is paused
CPU = CpuMeter()
FOREIGN: list[float] = []  # foreign CPU % of every measurement, for the summary
TENSORSERVE_CMD = [str(MAIN_PY), "-m", "tensorserve"]  # --tensorserve-cmd replaces it
CUSTOM_CMD = [False]  # another binary replaces tensorserve: no --num_workers=1 rows then
LITSERVE_FAST_QUEUE = [False]  # --litserve-fast-queue: ZeroMQ instead of mp queues


class QuietGate:
    """Before each measurement, wait a little for other processes on the VM to go quiet.

    Each wait is capped, and so is the total, so a busy VM slows the run by a bounded amount.
    """

    def __init__(self, per_wait_s: float, budget_s: float) -> None:
        self.per_wait_s = per_wait_s
        self.budget_s = budget_s

    def wait(self) -> None:
        if self.budget_s <= 0:
            return
        t0 = time.monotonic()
        CPU.wait_quiet(min(self.per_wait_s, self.budget_s))
        self.budget_s -= time.monotonic() - t0


QUIET = QuietGate(per_wait_s=8.0, budget_s=180.0)
BATCHING_CONFIG = """max_batch_size { value: 64 }
batch_timeout_micros { value: 200 }
max_enqueued_batches { value: 1000 }
num_batch_threads { value: 2 }
"""
BATCHING = [BATCHING_CONFIG]  # --batching-config replaces it


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class Config:
    quick: bool
    subjects: set[str]
    scenarios: set[str]
    rounds: int
    seconds: float
    large_seconds: float
    soak_total: int
    soak_first: int
    swap_seconds: float


@dataclass
class Target:
    """One protocol of one running server, for one model."""

    label: str  # row label, e.g. "tensorserve (batching)"
    subject: str  # fastapi / kserve / mlserver / tensorserve
    protocol: str  # REST / gRPC
    server: Server
    ep: Endpoint
    results: dict[int, list[loadgen.LoadResult]] = field(default_factory=dict)
    error: str | None = None

    def measure(self, conns: int, seconds: float, quiet: bool = True) -> loadgen.LoadResult:
        if quiet:
            QUIET.wait()
        before = CPU.snapshot()
        res = self._measure(conns, seconds)
        res.foreign_pct = CPU.foreign_pct(before, CPU.snapshot())
        FOREIGN.append(res.foreign_pct)
        return res

    def _measure(self, conns: int, seconds: float) -> loadgen.LoadResult:
        if self.protocol in GRPC_PROTOCOLS:
            assert self.ep.grpc_body is not None
            return loadgen.h2load(
                self.server.grpc_url(self.ep.grpc_method),
                self.ep.grpc_body,
                conns,
                seconds=seconds,
                grpc=True,
                expect_data_bytes=self.ep.grpc_response_bytes,
            )
        assert self.ep.rest_path and self.ep.rest_body
        return loadgen.wrk(
            self.server.rest_url(self.ep.rest_path),
            self.ep.rest_body,
            conns,
            seconds,
            content_type=self.ep.rest_content_type,
            headers=self.ep.rest_headers,
        )


# ---------------------------------------------------------------------------------------------
# Setup: tools, peer venvs, models, request bodies.


def setup(cfg: Config) -> dict[str, str]:
    """Run setup_peers.sh for what this run needs; return {peer: "did not install: ..."}."""
    wanted = ["tools"]
    if "fastapi" in cfg.subjects:
        wanted.append("fastapi")
    wanted += [p for p in PEERS if p in cfg.subjects]
    say(f"setup: {' '.join(wanted)} (benchmarks/setup_peers.sh)")
    subprocess.run(
        ["bash", str(HERE / "setup_peers.sh"), *wanted],
        env={**os.environ, "BENCH_DIR": str(BENCH)},
        check=False,
    )
    missing = [t for t in ("wrk", "h2load") if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"missing load generators: {missing} (apt-get install wrk nghttp2-client)")
    failed: dict[str, str] = {}
    for peer in PEERS:
        marker = VENVS / f"{peer}.failed"
        if peer in cfg.subjects and marker.exists():
            failed[peer] = "did not install: " + marker.read_text().strip()
        elif peer in cfg.subjects and not (VENVS / peer / "bin" / "python").exists():
            failed[peer] = "did not install: no virtualenv"
    return failed


@dataclass
class Model:
    name: str
    base: Path
    version_path: Path
    x: np.ndarray
    ref: np.ndarray
    sig: bm.Signature
    rest_body: Path
    v2_body: Path  # OIP REST JSON (MLServer's, KServe V2's and tensorserve's /v2)
    grpc_body: Path
    grpc_request: object
    oip_binary_body: Path  # OIP REST JSON header + raw tensor bytes
    oip_header_length: int  # its Inference-Header-Content-Length
    oip_grpc_body: Path  # framed OIP ModelInferRequest (raw_input_contents)
    oip_grpc_request: object


def prepare_model(name: str, x: np.ndarray) -> Model:
    base = MODELS / name
    base.mkdir(parents=True, exist_ok=True)
    for stale in base.iterdir():  # only version 1 belongs here (the swap builds its own)
        if stale.name != "1" and stale.is_dir():
            shutil.rmtree(stale)
    builders = {bm.MLP_NAME: bm.build_mlp, bm.BIG_NAME: bm.build_big, bm.WIDE_NAME: bm.build_wide}
    path = builders[name](base, 1)
    ref = bm.run_signature(path, x)
    sig = bm.signature_keys(path)
    BODIES.mkdir(parents=True, exist_ok=True)
    rest_body = BODIES / f"{name}.v1.json"
    rest_body.write_bytes(bm.tfs_rest_body(x))
    v2_body = BODIES / f"{name}.v2.json"
    v2_body.write_bytes(bm.v2_rest_body(x, sig.input_key))
    req = bm.predict_request(name, sig.input_key, x)
    grpc_body = BODIES / f"{name}.grpc"
    grpc_body.write_bytes(bm.grpc_frame(req.SerializeToString()))
    binary, header_length = bm.oip_binary_body(x, sig.input_key, sig.output_key)
    binary_body = BODIES / f"{name}.oip.bin"
    binary_body.write_bytes(binary)
    oip_req = bm.oip_infer_request(name, sig.input_key, x)
    oip_grpc_body = BODIES / f"{name}.oip.grpc"
    oip_grpc_body.write_bytes(bm.grpc_frame(oip_req.SerializeToString()))
    return Model(
        name,
        base,
        path,
        x,
        ref,
        sig,
        rest_body,
        v2_body,
        grpc_body,
        req,
        binary_body,
        header_length,
        oip_grpc_body,
        oip_req,
    )


def tfs_endpoint(m: Model) -> Endpoint:
    return Endpoint(
        rest_path=f"/v1/models/{m.name}:predict",
        rest_body=m.rest_body,
        rest_protocol="v1",
        grpc_body=m.grpc_body,
        grpc_request=m.grpc_request,
        grpc_output_key=m.sig.output_key,
    )


def v2_json_endpoint(m: Model) -> Endpoint:
    """OIP REST JSON: ``POST /v2/models/{name}/infer`` with one flat ``data`` list."""
    return Endpoint(rest_path=f"/v2/models/{m.name}/infer", rest_body=m.v2_body, rest_protocol="v2")


def oip_endpoints(m: Model) -> list[tuple[str, Endpoint]]:
    """tensorserve's Open Inference Protocol endpoints: REST JSON, REST binary, gRPC (fresh
    objects: check_grpc fills in the response size per server)."""
    path = f"/v2/models/{m.name}/infer"
    binary = Endpoint(
        rest_path=path,
        rest_body=m.oip_binary_body,
        rest_protocol="v2-binary",
        rest_content_type="application/octet-stream",
        rest_headers=(f"{bm.OIP_HEADER_LENGTH}: {m.oip_header_length}",),
    )
    grpc = Endpoint(
        grpc_body=m.oip_grpc_body,
        grpc_request=m.oip_grpc_request,
        grpc_output_key=m.sig.output_key,
        grpc_method=OIP_MODEL_INFER,
    )
    return [(OIP_JSON, v2_json_endpoint(m)), (OIP_BIN, binary), (OIP_GRPC, grpc)]


def add_oip_targets(
    targets: list[Target], s: Server, subject: str, m: Model, protocols: tuple[str, ...]
) -> None:
    """Targets for ``protocols`` (of OIP_PROTOCOLS) of a server already up; one that does not
    answer correctly keeps its error (its rows say why) and is not measured."""
    for proto, ep in oip_endpoints(m):
        if proto not in protocols:
            continue
        t = Target(s.label, subject, proto, s, ep)
        t.error = s.probe(ep, m.ref, proto in GRPC_PROTOCOLS, m.name)
        if t.error:
            say(f"{s.label} {proto} FAILED: {t.error[:300]}")
        else:
            say(f"{s.label} {proto} answers correctly")
        targets.append(t)


# ---------------------------------------------------------------------------------------------
# Server factories.


def make_fastapi(m: Model, tag: str, workers: int = 1) -> tuple[Server, Endpoint]:
    port = free_port()
    if workers == 1:
        cmd = [str(MAIN_PY), str(HERE / "fastapi_wrapper.py"), "--port", str(port)]
        cmd += ["--model_name", m.name, "--model_path", str(m.version_path)]
        env: dict[str, str] = {}
    else:  # what a user runs to use N cores: uvicorn's own --workers, one model copy each
        cmd = [str(MAIN_PY), "-m", "uvicorn", "fastapi_wrapper:create_app", "--factory"]
        cmd += ["--workers", str(workers), "--app-dir", str(HERE), "--host", "127.0.0.1"]
        cmd += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
        env = {"BENCH_MODEL_NAME": m.name, "BENCH_MODEL_PATH": str(m.version_path)}
    label = WRAPPER if workers == 1 else WRAPPER2
    s = Server("fastapi", label, cmd, LOGS / f"fastapi{workers}-{tag}.log", rest_port=port, env=env)
    return s, tfs_endpoint(m)


def make_kserve(m: Model, tag: str, workers: int = 1) -> tuple[Server, Endpoint]:
    port = free_port()
    cmd = [str(VENVS / "kserve" / "bin" / "python"), str(HERE / "kserve_server.py")]
    cmd += ["--http_port", str(port), "--grpc_port", str(free_port()), "--enable_grpc", "false"]
    cmd += ["--configure_logging", "false", "--enable_latency_logging", "false"]
    cmd += ["--model_name", m.name, "--model_path", str(m.version_path)]
    cmd += ["--workers", str(workers)]
    label = KSERVE if workers == 1 else KSERVE2
    s = Server("kserve", label, cmd, LOGS / f"kserve{workers}-{tag}.log", port)
    s.cwd = HERE  # its spawned REST workers re-import kserve_server.py
    return s, tfs_endpoint(m)


def make_mlserver(m: Model, tag: str, workers: int = 0) -> tuple[Server, Endpoint]:
    import json

    port = free_port()
    folder = BENCH / f"mlserver{workers}-{tag}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    settings = {
        "http_port": port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "metrics_endpoint": None,
        "parallel_workers": workers,
        "debug": False,
        "host": "127.0.0.1",
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    model_settings = {
        "name": m.name,
        "implementation": "mlserver_runtime.TFRuntime",
        "parameters": {"uri": str(m.version_path)},
    }
    (folder / "model-settings.json").write_text(json.dumps(model_settings))
    cmd = [str(VENVS / "mlserver" / "bin" / "mlserver"), "start", str(folder)]
    s = Server(
        "mlserver",
        MLSERVER if workers == 0 else MLSERVER2,
        cmd,
        LOGS / f"mlserver{workers}-{tag}.log",
        rest_port=port,
        env={"PYTHONPATH": str(HERE)},
        cwd=folder,
    )
    return s, v2_json_endpoint(m)


def batching_params() -> tuple[int, float]:
    """(max_batch_size, batch_timeout in seconds) of the tensorserve batching config in use."""
    import re

    text = BATCHING[0]
    size = re.search(r"max_batch_size\s*\{\s*value:\s*(\d+)", text)
    micros = re.search(r"batch_timeout_micros\s*\{\s*value:\s*(\d+)", text)
    return (int(size.group(1)) if size else 32, int(micros.group(1)) / 1e6 if micros else 0.0)


def make_litserve(m: Model, tag: str, batching: bool = False) -> tuple[Server, Endpoint]:
    port = free_port()
    cmd = [str(VENVS / "litserve" / "bin" / "python"), str(HERE / "litserve_server.py")]
    cmd += ["--port", str(port), "--model_path", str(m.version_path), "--num_api_servers", "2"]
    if batching:
        size, timeout = batching_params()
        cmd += ["--max_batch_size", str(size), "--batch_timeout", str(timeout)]
    if LITSERVE_FAST_QUEUE[0]:
        cmd.append("--fast_queue")
    label = LITSERVE_B if batching else LITSERVE
    s = Server("litserve", label, cmd, LOGS / f"litserve{'-b' if batching else ''}-{tag}.log", port)
    s.cwd = HERE
    ep = tfs_endpoint(m)
    ep.rest_path = "/predict"
    return s, ep


def make_tensorserve(
    m: Model, tag: str, workers: int = 2, batching: bool = False, base: Path | None = None
) -> tuple[Server, Endpoint]:
    rest, grpc_port = free_port(), free_port()
    cmd = [*TENSORSERVE_CMD, f"--port={grpc_port}", f"--rest_api_port={rest}"]
    cmd += [f"--model_name={m.name}", f"--model_base_path={base or m.base}"]
    if not CUSTOM_CMD[0]:  # another binary (--tensorserve-cmd) lacks the flag
        cmd.append(f"--num_workers={workers}")
    label = TS1 if workers == 1 else TS2
    if batching:
        cfg = BENCH / "batching.config"
        cfg.write_text(BATCHING[0])
        cmd += ["--enable_batching", f"--batching_parameters_file={cfg}"]
        label = TS2_B
    log = LOGS / f"tensorserve{workers}{'-batching' if batching else ''}-{tag}.log"
    s = Server("tensorserve", label, cmd, log, rest, grpc_port)
    s.cwd = ROOT
    return s, tfs_endpoint(m)


Factory = Callable[[Model, str], tuple[Server, Endpoint]]


@dataclass(frozen=True)
class Variant:
    """One configuration of one server, as it appears in the table."""

    subject: str  # fastapi / kserve / mlserver / litserve / tensorserve
    make: Factory
    grpc: bool = False  # also drive its gRPC port
    conns: tuple[int, ...] = (1, 16, 64)  # MLP connection counts it is measured at
    oip: bool = False  # also drive its Open Inference Protocol endpoints (REST JSON/binary, gRPC)


def mlp_variants(cfg: Config, failed: dict[str, str]) -> list[Variant]:
    """Every server configuration of the MLP scenario, single-worker rows first."""
    two = (16, 64)  # 2-worker peers: one connection reaches one worker only
    ts1 = Variant("tensorserve", partial(make_tensorserve, workers=1), grpc=True)
    table = {
        "fastapi": [
            Variant("fastapi", make_fastapi),
            Variant("fastapi", partial(make_fastapi, workers=2), conns=two),
        ],
        "kserve": [
            Variant("kserve", make_kserve),
            Variant("kserve", partial(make_kserve, workers=2), conns=two),
        ],
        "mlserver": [
            Variant("mlserver", make_mlserver),
            Variant("mlserver", partial(make_mlserver, workers=2), conns=two),
        ],
        "litserve": [
            Variant("litserve", make_litserve),
            Variant("litserve", partial(make_litserve, batching=True), conns=two),
        ],
        "tensorserve": [
            *([] if CUSTOM_CMD[0] else [ts1]),
            Variant("tensorserve", partial(make_tensorserve, workers=2), grpc=True, oip=OIP[0]),
            Variant(
                "tensorserve",
                partial(make_tensorserve, workers=2, batching=True),
                grpc=True,
                conns=(64,),
            ),
        ],
    }
    return [
        v
        for subject in SUBJECTS
        if subject in cfg.subjects and subject not in failed
        for v in table.get(subject, [])
    ]


def bring_up(
    specs: list[tuple[Server, Endpoint, str]], m: Model, grpc_too: Callable[[Server], bool]
) -> list[tuple[Server, Endpoint, str]]:
    """Start all servers at once, then wait for a correct predict from each."""
    for s, _, _ in specs:
        say(f"starting {s.label}: {' '.join(s.cmd[:4])} ...")
        s.start()
    up = []
    for s, ep, subject in specs:
        ok = s.wait_ready(ep, m.ref)
        if ok and grpc_too(s):
            ok = s.check_grpc(ep, m.ref, m.name)
        if ok:
            say(f"{s.label} answers correctly (RSS {s.rss() / 2**20:.0f} MiB)")
            up.append((s, ep, subject))
        else:
            say(f"{s.label} FAILED: {s.error}")
            s.stop()
    return up


def stop_all(servers: list[Server]) -> None:
    for s in servers:
        s.stop()


# ---------------------------------------------------------------------------------------------
# Scenarios.


@dataclass
class Floors:
    b1_runs: list[bm.FloorResult] = field(default_factory=list)  # one per MLP round too
    b64: bm.FloorResult | None = None
    big: bm.FloorResult | None = None
    codec: bm.CodecBound | None = None

    @property
    def b1(self) -> bm.FloorResult | None:
        """Median over the batch-1 floor runs (taken between the MLP rounds, same conditions)."""
        if not self.b1_runs:
            return None
        return bm.FloorResult(
            label="b1",
            rows=1,
            p50_ms=median([r.p50_ms for r in self.b1_runs]),
            p99_ms=median([r.p99_ms for r in self.b1_runs]),
            calls_per_s=median([r.calls_per_s for r in self.b1_runs]),
        )


def run_floor(cfg: Config, mlp: Model, big: Model | None, fl: Floors) -> None:
    secs = 2.0 if cfg.quick else 3.0
    say("floor: in-process signature calls")
    fl.b1_runs.append(bm.measure_floor(mlp.version_path, mlp.x, "b1", secs))
    fl.b64 = bm.measure_floor(mlp.version_path, bm.mlp_input(64), "b64", secs)
    if big is not None:
        fl.big = bm.measure_floor(big.version_path, big.x, "big", secs)
        fl.codec = bm.measure_codec_bound(big.x, big.ref, 3 if cfg.quick else 5)


def floor_rows(fl: Floors) -> list[Row]:
    rows: list[Row] = []
    b1 = fl.b1
    if b1 is not None:
        runs = len(fl.b1_runs)
        rows.append(
            Row(
                "MLP floor",
                "in-process signature call",
                "batch 1",
                1,
                b1.calls_per_s,
                b1.p50_ms,
                b1.p99_ms,
                note=f"calls/s, one thread, numpy in/out; median of {runs} run(s) "
                "taken between the MLP rounds",
                rounds=[r.p50_ms for r in fl.b1_runs],
            )
        )
    if fl.b64 is not None:
        rows.append(
            Row(
                "MLP floor",
                "in-process signature call",
                "batch 64",
                1,
                fl.b64.rows_per_s,
                fl.b64.p50_ms,
                fl.b64.p99_ms,
                note=f"rows/s; {fl.b64.p50_ms / 64 * 1e3:.1f} µs/row",
            )
        )
    if fl.big is not None:
        rows.append(
            Row(
                "large floor",
                "in-process signature call",
                "8x224x224x3",
                1,
                fl.big.calls_per_s,
                fl.big.p50_ms,
                fl.big.p99_ms,
                note="model alone",
            )
        )
    if fl.codec is not None:
        c = fl.codec
        rows.append(
            Row(
                "large floor",
                "orjson + numpy alone",
                "JSON codec",
                1,
                1e3 / (c.decode_ms + c.encode_ms),
                c.decode_ms + c.encode_ms,
                note=f"decode {c.decode_ms:.0f} ms + encode {c.encode_ms:.0f} ms of "
                f"{c.total_mb:.1f} MB = {c.mb_per_s:.1f} MB/s (the bound)",
            )
        )
    return rows


def failed_rows(scenario: str, failed: dict[str, str], rows: list[Row]) -> None:
    for peer, why in failed.items():
        rows.append(Row(scenario, PEER_LABELS.get(peer, peer), "REST", note=why))


def idle_cpu(servers: list[Server], seconds: float = 3.0) -> dict[str, float]:
    """% of one core each server's processes used over ``seconds`` while nothing was sent."""
    hz = os.sysconf("SC_CLK_TCK")
    before = {s.label: s.cpu_ticks() for s in servers}
    t0 = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - t0
    return {s.label: 100.0 * (s.cpu_ticks() - before[s.label]) / hz / wall for s in servers}


def memory_note(mem: list[ProcMem]) -> str:
    """Per process: role, USS and PSS (MiB), in process-tree order."""
    parts = [f"{m.role} USS {m.uss / 2**20:.0f} / PSS {m.pss / 2**20:.0f}" for m in mem]
    return f"{len(mem)} process(es), MiB: " + "; ".join(parts)


def memory_row(scenario: str, s: Server, protocol: str = "-") -> Row:
    mem = s.memory()
    row = Row(scenario, s.label, protocol, note=memory_note(mem))
    row.rss_mib = sum(m.rss for m in mem) / 2**20
    row.pss_mib = sum(m.pss for m in mem) / 2**20
    row.extra = {"pss_sum_mib": row.pss_mib}
    for i, m in enumerate(x for x in mem if x.role == "worker"):
        row.extra[f"worker{i + 1}_uss_mib"] = m.uss / 2**20
        row.extra[f"worker{i + 1}_pss_mib"] = m.pss / 2**20
    model = next((x for x in mem if x.role == "model"), None)
    if model is not None:
        row.extra["model_uss_mib"] = model.uss / 2**20
        row.extra["model_pss_mib"] = model.pss / 2**20
    return row


class Pauser:
    """Keeps the servers that burn CPU while idle stopped (SIGSTOP) outside their own turns."""

    def __init__(self, m: Model) -> None:
        self.m = m
        self.busy: list[tuple[Server, Endpoint]] = []

    def add(self, s: Server, ep: Endpoint) -> None:
        self.busy.append((s, ep))
        s.pause()

    def turn(self, current: Server | None) -> None:
        """Before ``current`` is measured: every other busy server stopped, ``current`` running."""
        for s, _ in self.busy:
            if s is not current:
                s.pause()
        for s, ep in self.busy:
            if s is current and s.paused:
                s.resume()
                if not s.wait_ready(ep, self.m.ref, timeout_s=30):  # still answers correctly
                    raise RuntimeError(f"after SIGCONT: {s.error}")

    def release(self) -> None:
        for s, _ in self.busy:
            s.resume()


def run_mlp(
    cfg: Config,
    m: Model,
    failed: dict[str, str],
    rows: list[Row],
    fl: Floors,
    details: list[str],
) -> list[Target]:
    specs: list[tuple[Server, Endpoint, str]] = []
    conns_of: dict[str, tuple[int, ...]] = {}
    grpc_of: dict[str, bool] = {}
    oip_of: dict[str, bool] = {}
    for v in mlp_variants(cfg, failed):
        s, ep = v.make(m, "mlp")
        specs.append((s, ep, v.subject))
        conns_of[s.label], grpc_of[s.label], oip_of[s.label] = v.conns, v.grpc, v.oip
    say("mlp: bringing servers up")
    up = bring_up(specs, m, lambda s: grpc_of[s.label])
    targets: list[Target] = []
    for s, ep, subject in up:
        targets.append(Target(s.label, subject, "REST", s, ep))
        if grpc_of[s.label]:
            targets.append(Target(s.label, subject, "gRPC", s, ep))
        if oip_of[s.label]:
            add_oip_targets(targets, s, subject, m, OIP_PROTOCOLS)
    conns_list = (1, 16, 64)
    rss: dict[str, float] = {}
    pss: dict[str, float] = {}
    pauser = Pauser(m)
    try:
        say("mlp: warm-up")
        for t in targets:
            try:
                t.measure(16, 2, quiet=False)
            except RuntimeError as e:
                t.error = str(e)
        time.sleep(1.0)
        idle = idle_cpu([s for s, _, _ in up])
        for s, ep, _ in up:
            if idle[s.label] > IDLE_BUSY_PCT:
                pauser.add(s, ep)
        say("idle CPU (% of one core): " + ", ".join(f"{k} {v:.1f}" for k, v in idle.items()))
        details.append(
            "Idle check (MLP, 3 s after the warm-up, nothing sent): CPU used by each server's "
            "processes, % of one core: "
            + "; ".join(f"{k} {v:.1f}" for k, v in idle.items())
            + ". "
            + (
                "Above "
                + f"{IDLE_BUSY_PCT:.0f}%, so stopped (SIGSTOP of its process group) while the "
                "others were measured and continued (SIGCONT, then one checked predict) for its "
                "own measurements: " + ", ".join(s.label for s, _ in pauser.busy)
                if pauser.busy
                else f"None above {IDLE_BUSY_PCT:.0f}%: every server stayed up throughout."
            )
        )
        for r in range(cfg.rounds):
            if "floor" in cfg.subjects:
                pauser.turn(None)
                QUIET.wait()
                fl.b1_runs.append(bm.measure_floor(m.version_path, m.x, "b1", 2.0))
                say(f"round {r + 1} floor batch 1: p50 {fl.b1_runs[-1].p50_ms:.3f} ms")
            for conns in conns_list:
                live = [t for t in targets if t.error is None and conns in conns_of[t.label]]
                order = live[r % max(1, len(live)) :] + live[: r % max(1, len(live))]
                for t in order:
                    if not t.server.alive:
                        t.error = f"server died: {t.server.log_tail()}"
                        continue
                    try:
                        pauser.turn(t.server)
                        res = t.measure(conns, cfg.seconds)
                    except RuntimeError as e:
                        t.error = str(e)
                        continue
                    t.results.setdefault(conns, []).append(res)
                    say(
                        f"round {r + 1} c{conns:<2} {t.label:<42} {t.protocol:<15} "
                        f"{res.rps:8.0f} req/s  p50 {res.p50_ms:7.3f} ms  p99 "
                        f"{res.p99_ms:7.2f} ms  failed {res.failed}  other load "
                        f"{res.foreign_pct:.0f}%"
                    )
            for s, _, _ in up:
                rss[s.label] = max(rss.get(s.label, 0.0), s.rss() / 2**20)
                pss[s.label] = max(pss.get(s.label, 0.0), s.pss() / 2**20)
        mem_rows = [memory_row("MLP memory", s) for s, _, _ in up]
    finally:
        pauser.release()
        stop_all([s for s, _, _ in specs])
    wrapper = next((t for t in targets if t.label == WRAPPER), None)
    for conns in conns_list:
        for t in targets:
            if conns not in conns_of[t.label]:
                continue
            runs = t.results.get(conns, [])
            row = Row(f"MLP c{conns}", t.label, t.protocol, conns)
            if not runs:
                row.note = f"no result: {t.error}"
                rows.append(row)
                continue
            row.rounds = [x.rps for x in runs]
            row.rps = median(row.rounds)
            row.p50_ms = median([x.p50_ms for x in runs])
            row.p99_ms = median([x.p99_ms for x in runs])
            row.failed = sum(x.failed for x in runs)
            row.rss_mib = rss.get(t.label)
            row.pss_mib = pss.get(t.label)
            notes = sorted({n for x in runs for n in x.notes})
            foreign = median([x.foreign_pct for x in runs])
            if foreign >= 10:
                notes.append(f"other processes used {foreign:.0f}% of the CPU")
            if t.error:
                notes.append(f"stopped early: {t.error[:200]}")
            row.note = "; ".join(notes)
            wruns = wrapper.results.get(conns, []) if wrapper else []
            if wruns:
                pairs = [a.rps / b.rps for a, b in zip(runs, wruns, strict=False) if b.rps]
                row.ratio = median(pairs) if pairs else None
            rows.append(row)
    rows.extend(mem_rows)
    for s, _, _ in specs:
        if s not in [u[0] for u in up]:
            rows.append(Row("MLP", s.label, "REST", note=f"did not start: {(s.error or '')[:300]}"))
    failed_rows("MLP", failed, rows)
    return targets


def large_targets(s: Server, ep: Endpoint, subject: str, m: Model) -> list[Target]:
    """Every protocol measured on one server in the large-payload scenario."""
    targets = [Target(s.label, subject, "REST", s, ep)]
    if subject == "tensorserve":
        targets.append(Target(s.label, subject, "gRPC", s, ep))
        if OIP[0] and s.label == TS2:  # the OIP rows: on the same server as its gRPC row
            add_oip_targets(targets, s, subject, m, OIP_PROTOCOLS)
    if subject == "kserve" and OIP[0]:  # KServe's own V2 path (the same process, /v2)
        t = Target(s.label, subject, OIP_JSON, s, v2_json_endpoint(m))
        t.error = s.probe(t.ep, m.ref, False, m.name)
        say(f"{s.label} {OIP_JSON}: {t.error[:300] if t.error else 'answers correctly'}")
        targets.append(t)
    return targets


def run_large(cfg: Config, m: Model, failed: dict[str, str], rows: list[Row], fl: Floors) -> None:
    specs: list[tuple[Server, Endpoint, str]] = []
    # Single-worker peers (one request at a time: the payload cost, not the core count) and
    # tensorserve with 1 and 2 workers (the 2-worker row also crosses the process hand-off).
    for v in mlp_variants(cfg, failed):
        if v.subject in ("fastapi", "kserve", "mlserver") and 1 not in v.conns:
            continue
        if v.subject == "litserve" or (v.subject == "tensorserve" and 1 not in v.conns):
            continue
        s, ep = v.make(m, "large")
        specs.append((s, ep, v.subject))
    say("large: bringing servers up")
    up = bring_up(specs, m, lambda s: s.key == "tensorserve")
    model_ms = fl.big.p50_ms if fl.big else 0.0
    wrapper_rps: float | None = None
    try:
        for s, ep, subject in up:
            for t in large_targets(s, ep, subject, m):
                proto = t.protocol
                if t.error:
                    rows.append(Row("large c1", s.label, proto, 1, note=f"failed: {t.error}"[:300]))
                    continue
                try:
                    t.measure(1, 1, quiet=False)
                    res = t.measure(1, cfg.large_seconds)
                    slow = res.requests < LARGE_MIN_REQUESTS and proto not in GRPC_PROTOCOLS
                    if slow:  # each request outlasts the timed run: a fixed count instead
                        res = _fixed_count(t, LARGE_MIN_REQUESTS)
                except RuntimeError as e:
                    rows.append(Row("large c1", s.label, proto, 1, note=f"failed: {e}"[:300]))
                    continue
                if proto in GRPC_PROTOCOLS:
                    total = 2 * m.x.nbytes / 1e6
                else:
                    assert t.ep.rest_body is not None
                    total = t.ep.rest_body.stat().st_size / 1e6 + _rest_response_mb(s, t.ep)
                mbps = total / (res.p50_ms / 1e3) if res.p50_ms else 0.0
                codec_mbps = total / max(1e-6, (res.p50_ms - model_ms) / 1e3)
                note = (
                    f"{res.requests} requests"
                    + (
                        f" (h2load --h1 -n{LARGE_MIN_REQUESTS}: wrk completed too few)"
                        if slow
                        else ""
                    )
                    + f"; {total:.1f} MB/request (in+out); "
                    f"{mbps:.1f} MB/s end to end; "
                    f"{codec_mbps:.1f} MB/s excluding the model's {model_ms:.1f} ms"
                )
                if t.ep.rest_protocol in ("v1", "v2") and proto not in GRPC_PROTOCOLS and fl.codec:
                    note += f" (bound {fl.codec.mb_per_s:.1f} MB/s)"
                note += f"; other load {res.foreign_pct:.0f}%"
                row = Row(
                    "large c1",
                    s.label,
                    proto,
                    1,
                    res.rps,
                    res.p50_ms,
                    res.p99_ms,
                    s.rss() / 2**20,
                    failed=res.failed,
                    note=note,
                )
                row.pss_mib = s.pss() / 2**20
                row.extra = {
                    "mb_per_request": total,
                    "mb_per_s": mbps,
                    "codec_mb_per_s": codec_mbps,
                }
                if s.label == WRAPPER:
                    wrapper_rps = res.rps
                if wrapper_rps:
                    row.ratio = res.rps / wrapper_rps
                rows.append(row)
                say(f"large {s.label} {proto}: {res.rps:.2f} req/s p50 {res.p50_ms:.0f} ms")
    finally:
        stop_all([s for s, _, _ in specs])
    for s, _, _ in specs:
        if s not in [u[0] for u in up]:
            rows.append(Row("large c1", s.label, "REST", note=f"did not start: {s.error}"[:300]))
    failed_rows("large c1", {k: v for k, v in failed.items() if k != "litserve"}, rows)


LARGE_MIN_REQUESTS = 3  # a large-payload REST row with fewer in its run is measured by count


def _fixed_count(t: Target, n: int) -> loadgen.LoadResult:
    """``n`` sequential REST requests with h2load --h1 (for rows slower than the timed run)."""
    assert t.ep.rest_path and t.ep.rest_body
    QUIET.wait()
    before = CPU.snapshot()
    res = loadgen.h2load(
        t.server.rest_url(t.ep.rest_path),
        t.ep.rest_body,
        1,
        requests=n,
        grpc=False,
        content_type=t.ep.rest_content_type,
        headers=t.ep.rest_headers,
    )
    res.foreign_pct = CPU.foreign_pct(before, CPU.snapshot())
    FOREIGN.append(res.foreign_pct)
    return res


def _rest_response_mb(s: Server, ep: Endpoint) -> float:
    from servers import http_post_full

    assert s.rest_port and ep.rest_path and ep.rest_body
    _, _, body = http_post_full(
        s.rest_port, ep.rest_path, ep.rest_body.read_bytes(), ep.rest_content_type, ep.rest_headers
    )
    return len(body) / 1e6


def answers_all(s: Server, ep: Endpoint, expected: np.ndarray, n: int = 16) -> bool:
    """``n`` predicts, each on a fresh connection (so spread over the workers), all ``expected``."""
    return all(s.wait_ready(ep, expected, timeout_s=10) for _ in range(n))


def run_swap(cfg: Config, m: Model, rows: list[Row], details: list[str]) -> None:
    """tensorserve --num_workers=2: versions 1 -> 2 under REST load, then 2 -> 3 under gRPC."""
    base = BENCH / "swap-base"
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    src = MODELS / "mlp-swap-versions"
    src.mkdir(parents=True, exist_ok=True)
    versions = {1: m.version_path, **{v: bm.build_mlp(src, v) for v in (2, 3)}}
    refs = {v: bm.run_signature(p, m.x) for v, p in versions.items()}
    shutil.copytree(versions[1], base / "1")
    s, ep = make_tensorserve(m, "swap", workers=2, base=base)
    s.start()
    try:
        if not (s.wait_ready(ep, refs[1]) and s.check_grpc(ep, refs[1], m.name)):
            rows.append(Row("version swap", s.label, "REST+gRPC", note=f"failed: {s.error}"))
            return
        for proto, old, new in (("REST", 1, 2), ("gRPC", 2, 3)):
            t = Target(s.label, "tensorserve", proto, s, ep)
            t.measure(16, 1, quiet=False)
            row = _swap_once(cfg, t, m, base, versions[new], old, new)
            if proto == "gRPC":
                ep.grpc_request = m.grpc_request
            ok = answers_all(s, ep, refs[new]) and s.check_grpc(ep, refs[new], m.name)
            if not ok:
                row.note += f"; after the swap the answer is not version {new}'s: {s.error}"
            rows.append(row)
    finally:
        s.stop()


def _swap_once(cfg: Config, t: Target, m: Model, base: Path, src: Path, old: int, new: int) -> Row:
    secs = cfg.swap_seconds
    result: dict[str, loadgen.LoadResult] = {}

    def load() -> None:
        if t.protocol == "gRPC":
            assert t.ep.grpc_body is not None
            result["r"] = loadgen.h2load(
                t.server.grpc_url(),
                t.ep.grpc_body,
                16,
                seconds=secs,
                grpc=True,
                expect_data_bytes=t.ep.grpc_response_bytes,
                keep_samples=True,
            )
        else:
            assert t.ep.rest_path and t.ep.rest_body
            result["r"] = loadgen.h2load(
                t.server.rest_url(t.ep.rest_path),
                t.ep.rest_body,
                16,
                seconds=secs,
                grpc=False,
                keep_samples=True,
            )

    before = CPU.snapshot()
    th = threading.Thread(target=load)
    th.start()
    time.sleep(secs * 0.35)
    t_copy = time.time()
    tmp = base / f".incoming-{new}"
    shutil.copytree(src, tmp)
    tmp.rename(base / str(new))
    assert t.server.rest_port is not None
    t_done: float | None = None
    while time.time() < t_copy + secs * 0.6:
        st = model_status(t.server.rest_port, m.name)
        if st.get(str(new)) == "AVAILABLE" and st.get(str(old)) in (None, "END"):
            t_done = time.time()
            break
        time.sleep(0.1)
    th.join()
    foreign = CPU.foreign_pct(before, CPU.snapshot())
    FOREIGN.append(foreign)
    res = result.get("r")
    row = Row(f"version swap {old}→{new}", t.label, t.protocol, 16)
    if res is None:
        row.note = "load generator failed"
        return row
    window_end = (t_done or t_copy + secs * 0.6) + 0.5
    steady = [ms for ts, _, ms in res.samples if ts < t_copy - 0.2]
    during = [ms for ts, _, ms in res.samples if t_copy <= ts <= window_end]
    bad_status = sum(1 for _, st, _ in res.samples if st != 200)
    steady.sort()
    during.sort()
    p99_steady = loadgen._percentile(steady, 99)
    p99_swap = loadgen._percentile(during, 99)
    row.rps = res.rps
    row.p50_ms = loadgen._percentile(during, 50)
    row.p99_ms = p99_swap
    row.failed = max(res.failed, bad_status)
    row.rss_mib = t.server.rss() / 2**20
    row.pss_mib = t.server.pss() / 2**20
    swap_s = f"{t_done - t_copy:.1f} s" if t_done else "did not complete in the window"
    row.ratio = None
    row.note = (
        f"p99 steady {p99_steady:.2f} ms vs during swap {p99_swap:.2f} ms "
        f"(x{p99_swap / p99_steady:.2f}); swap took {swap_s}; {len(during)} requests in the "
        f"swap window; h2load{' --h1' if t.protocol == 'REST' else ''}; other load {foreign:.0f}%"
    )
    row.extra = {"p99_steady": p99_steady, "p99_swap": p99_swap}
    say(f"swap {t.protocol}: {row.note}; failed {row.failed}")
    return row


def run_soak(cfg: Config, m: Model, rows: list[Row]) -> None:
    """tensorserve --num_workers=2: RSS and PSS of all its processes after 10% and 100%."""
    for proto in ("REST", "gRPC"):
        s, ep = make_tensorserve(m, f"soak-{proto.lower()}", workers=2)
        up = bring_up(
            [(s, ep, "tensorserve")], m, _grpc_check if proto == "gRPC" else _no_grpc_check
        )
        if not up:
            rows.append(Row("100k soak", s.label, proto, note=f"failed: {s.error}"[:300]))
            continue
        try:
            first, rest = cfg.soak_first, cfg.soak_total - cfg.soak_first
            before = CPU.snapshot()
            r1 = _count_run(s, ep, proto, first)
            rss1, pss1 = s.rss() / 2**20, s.pss() / 2**20
            r2 = _count_run(s, ep, proto, rest)
            rss2, pss2 = s.rss() / 2**20, s.pss() / 2**20
            foreign = CPU.foreign_pct(before, CPU.snapshot())
            FOREIGN.append(foreign)
        except RuntimeError as e:
            rows.append(Row("100k soak", s.label, proto, note=f"failed: {e}"[:300]))
            continue
        finally:
            s.stop()
        growth = (rss2 - rss1) / rss1 * 100 if rss1 else float("nan")
        total = r1.requests + r2.requests
        row = Row(
            f"{cfg.soak_total // 1000}k soak",
            s.label,
            proto,
            16,
            total / (r1.seconds + r2.seconds),
            r2.p50_ms,
            r2.p99_ms,
            rss2,
            failed=r1.failed + r2.failed,
            note=f"RSS (all processes) {rss1:.0f} MiB after {first:,} → {rss2:.0f} MiB after "
            f"{cfg.soak_total:,} ({growth:+.1f}%); PSS sum {pss1:.0f} → {pss2:.0f} MiB; h2load"
            f"{' --h1' if proto == 'REST' else ''}; other load {foreign:.0f}%",
        )
        row.pss_mib = pss2
        row.extra = {"rss_first": rss1, "rss_last": rss2, "pss_first": pss1, "pss_last": pss2}
        rows.append(row)
        say(f"soak {s.label} {proto}: {row.note}")


def run_memory(cfg: Config, rows: list[Row]) -> None:
    """A model with ~300 MB of weights: sum of PSS over every process of each server."""
    m = prepare_model(bm.WIDE_NAME, bm.wide_input(1))
    weights = bm.wide_params() * 4 / 2**20
    variants: list[tuple[Factory, bool]] = []
    if "tensorserve" in cfg.subjects:
        if not CUSTOM_CMD[0]:
            variants.append((partial(make_tensorserve, workers=1), True))
        variants.append((partial(make_tensorserve, workers=2), True))
    if "fastapi" in cfg.subjects:  # for scale: what one model copy per worker costs
        variants += [(make_fastapi, False), (partial(make_fastapi, workers=2), False)]
    scenario = f"memory, {weights:.0f} MiB of weights"
    for make, grpc in variants:
        s, ep = make(m, "memory")
        up = bring_up([(s, ep, s.key)], m, lambda _s, g=grpc: g)  # type: ignore[misc]
        if not up:
            rows.append(Row(scenario, s.label, "REST", note=f"failed: {s.error}"[:300]))
            continue
        try:
            # Touch every path a request takes (both protocols, several connections) first.
            n = 60 if cfg.quick else 200
            runs = [_count_run(s, ep, "REST", n)]
            if grpc:
                runs.append(_count_run(s, ep, "gRPC", n))
            time.sleep(0.5)
            row = memory_row(scenario, s, "REST+gRPC" if grpc else "REST")
            failed = sum(r.failed for r in runs)
            row.failed = failed
            row.note += f"; sampled after {n} requests per protocol at 16 connections"
            rows.append(row)
            say(f"memory {s.label}: PSS sum {row.pss_mib:.0f} MiB ({row.note})")
        except RuntimeError as e:
            rows.append(Row(scenario, s.label, "REST", note=f"failed: {e}"[:300]))
        finally:
            s.stop()


def _grpc_check(_s: Server) -> bool:
    return True


def _no_grpc_check(_s: Server) -> bool:
    return False


def _count_run(s: Server, ep: Endpoint, proto: str, n: int) -> loadgen.LoadResult:
    if proto == "gRPC":
        assert ep.grpc_body is not None
        return loadgen.h2load(
            s.grpc_url(),
            ep.grpc_body,
            16,
            requests=n,
            grpc=True,
            expect_data_bytes=ep.grpc_response_bytes,
        )
    assert ep.rest_path and ep.rest_body
    return loadgen.h2load(s.rest_url(ep.rest_path), ep.rest_body, 16, requests=n, grpc=False)


# ---------------------------------------------------------------------------------------------
# Targets.


def _find(rows: list[Row], scenario: str, server: str, proto: str) -> Row | None:
    return next(
        (
            r
            for r in rows
            if r.scenario == scenario and r.server == server and r.protocol == proto and r.rps
        ),
        None,
    )


def per_round_ratio(a: Row, b: Row) -> float | None:
    """Median of a/b over the rounds both were measured in (each pair seconds apart)."""
    pairs = [x / y for x, y in zip(a.rounds, b.rounds, strict=False) if y]
    return median(pairs) if len(pairs) > 1 else None


def evaluate(rows: list[Row], fl: Floors) -> list[Check]:
    checks: list[Check] = []

    def ratio_check(label: str, a: Row | None, b: Row | None, need: float) -> None:
        if a is None or b is None or not b.rps or not a.rps:
            checks.append(Check(label, "not measured", None))
            return
        x = a.rps / b.rps
        text = f"{a.rps:,.0f} vs {b.rps:,.0f} req/s = x{x:.2f}"
        per_round = per_round_ratio(a, b)
        if per_round is not None:
            x = per_round  # judged on the median of per-round ratios
            text += f" (median of per-round ratios x{x:.2f})"
        checks.append(Check(label, text, x >= need))

    c16, c64 = "MLP c16", "MLP c64"
    wrapper = _find(rows, c16, WRAPPER, "REST")
    ratio_check(
        "REST c16 ≥ 3x the single-worker FastAPI wrapper (tensorserve --num_workers=2)",
        _find(rows, c16, TS2, "REST"),
        wrapper,
        3.0,
    )
    peers = [_find(rows, c16, p, "REST") for p in TWO_WORKER_PEERS]
    best = max((p for p in peers if p), key=lambda r: r.rps or 0.0, default=None)
    ratio_check(
        f"REST c16 ≥ 1.5x the best 2-worker peer ({best.server if best else '-'})",
        _find(rows, c16, TS2, "REST"),
        best,
        1.5,
    )
    ratio_check(
        "gRPC c16 ≥ 3x the single-worker FastAPI wrapper (REST)",
        _find(rows, c16, TS2, "gRPC"),
        wrapper,
        3.0,
    )
    for proto in ("REST", "gRPC"):
        ratio_check(
            f"{proto} c16: --num_workers=2 ≥ 1.6x --num_workers=1",
            _find(rows, c16, TS2, proto),
            _find(rows, c16, TS1, proto),
            1.6,
        )
    for proto in ("REST", "gRPC"):
        ratio_check(
            f"{proto} c64: batching ≥ 1.3x the same server unbatched (--num_workers=2)",
            _find(rows, c64, TS2_B, proto),
            _find(rows, c64, TS2, proto),
            1.3,
        )
    batched = _find(rows, c64, TS2_B, "REST")
    if batched is None or fl.b1 is None:
        checks.append(
            Check("REST c64 batching ≥ 1.0x the in-process batch-1 floor", "not measured", None)
        )
    else:
        x = (batched.rps or 0.0) / fl.b1.calls_per_s
        checks.append(
            Check(
                "REST c64 batching ≥ 1.0x the in-process batch-1 floor (calls/s)",
                f"{batched.rps:,.0f} req/s vs {fl.b1.calls_per_s:,.0f} calls/s = x{x:.2f}",
                x >= 1.0,
            )
        )
    swaps = [r for r in rows if "p99_swap" in r.extra]
    for r in swaps:
        steady, during = r.extra["p99_steady"], r.extra["p99_swap"]
        checks.append(
            Check(
                f"{r.protocol} {r.scenario} (--num_workers=2): 0 failed, p99 ≤ 2x steady",
                f"{r.failed} failed; p99 {during:.2f} vs {steady:.2f} ms (x{during / steady:.2f})",
                r.failed == 0 and during <= 2 * steady,
            )
        )
    if not swaps:
        checks.append(Check("version swap: 0 failed, p99 ≤ 2x steady", "not measured", None))
    mem1 = next((r for r in rows if r.scenario.startswith("memory,") and r.server == TS1), None)
    mem2 = next((r for r in rows if r.scenario.startswith("memory,") and r.server == TS2), None)
    mem_label = "memory: ~300 MB model, --num_workers=2 ≤ 1.3x --num_workers=1 (sum of PSS)"
    if mem1 is None or mem2 is None or not mem1.pss_mib or not mem2.pss_mib:
        checks.append(Check(mem_label, "not measured", None))
    else:
        x = mem2.pss_mib / mem1.pss_mib
        workers = [
            v
            for k, v in sorted(mem2.extra.items())
            if k.endswith("_uss_mib") and k.startswith("worker")
        ]
        wtext = ", ".join(f"{w:.0f}" for w in workers)
        checks.append(
            Check(
                mem_label,
                f"{mem2.pss_mib:,.0f} vs {mem1.pss_mib:,.0f} MiB = x{x:.2f} "
                f"(worker USS {wtext} MiB)",
                x <= 1.3,
            )
        )
    for proto in ("REST", "gRPC"):
        label = f"{proto} c1 p50: --num_workers=2 ≤ --num_workers=1 + 0.1 ms"
        two, one = _find(rows, "MLP c1", TS2, proto), _find(rows, "MLP c1", TS1, proto)
        if two is None or one is None or two.p50_ms is None or one.p50_ms is None:
            checks.append(Check(label, "not measured", None))
        else:
            checks.append(
                Check(
                    label,
                    f"{two.p50_ms:.3f} vs {one.p50_ms:.3f} ms ({two.p50_ms - one.p50_ms:+.3f} ms)",
                    two.p50_ms <= one.p50_ms + 0.1,
                )
            )
    for proto, extra in (("REST", 0.3), ("gRPC", 0.2)):
        label = f"{proto} c1 p50 ≤ floor + {extra} ms (--num_workers=2)"
        r1 = _find(rows, "MLP c1", TS2, proto)
        if r1 is None or fl.b1 is None or r1.p50_ms is None:
            checks.append(Check(label, "not measured", None))
        else:
            lim = fl.b1.p50_ms + extra
            checks.append(
                Check(
                    label,
                    f"{r1.p50_ms:.3f} ms vs {fl.b1.p50_ms:.3f} + {extra} = {lim:.3f} ms",
                    r1.p50_ms <= lim,
                )
            )
    soaks = [r for r in rows if "rss_last" in r.extra and r.server == TS2]
    for r in soaks:
        a, b = r.extra["rss_first"], r.extra["rss_last"]
        checks.append(
            Check(
                f"{r.protocol} RSS within ±5% ({r.scenario}, --num_workers=2: first 10% vs end)",
                f"{a:.0f} → {b:.0f} MiB ({(b - a) / a * 100:+.1f}%), {r.failed} failed",
                abs(b - a) <= 0.05 * a,
            )
        )
    if not soaks:
        checks.append(Check("RSS within ±5% from 10k to 100k requests", "not measured", None))
    big = _find(rows, "large c1", TS2, "REST")
    label = "large REST JSON decode+encode ≥ orjson+numpy MB/s (--num_workers=2)"
    if big is None or fl.codec is None or "codec_mb_per_s" not in big.extra:
        checks.append(Check(label, "not measured", None))
    else:
        mbps = big.extra["codec_mb_per_s"]
        checks.append(
            Check(
                label,
                f"{mbps:.1f} MB/s (in+out bytes / (p50 - model time)) vs bound "
                f"{fl.codec.mb_per_s:.1f} MB/s",
                mbps >= fl.codec.mb_per_s,
            )
        )
    if not OIP[0]:
        return checks
    # Open Inference Protocol (tensorserve --num_workers=2, the same servers as the rows above).
    mls = [_find(rows, c16, p, "REST") for p in (MLSERVER, MLSERVER2)]
    best_mls = max((r for r in mls if r), key=lambda r: r.rps or 0.0, default=None)
    ratio_check(
        f"OIP REST JSON c16 ≥ 2x MLServer's V2 JSON (best of its two rows: "
        f"{best_mls.server if best_mls else '-'})",
        _find(rows, c16, TS2, OIP_JSON),
        best_mls,
        2.0,
    )
    ratio_check(
        "OIP gRPC ModelInfer c16 within 10% of TF Serving API gRPC Predict (≥ 0.9x, same server)",
        _find(rows, c16, TS2, OIP_GRPC),
        _find(rows, c16, TS2, "gRPC"),
        0.9,
    )
    large = "large c1"
    mls_big = _find(rows, large, MLSERVER, "REST")
    json_big = _find(rows, large, TS2, OIP_JSON)
    bin_big = _find(rows, large, TS2, OIP_BIN)
    checks += [
        mb_per_s_check(
            "OIP REST JSON large payload ≥ 1.5x MLServer's V2 JSON MB/s", json_big, mls_big, 1.5
        ),
        mb_per_s_check(
            "OIP REST binary large payload ≥ 5x MLServer's V2 JSON MB/s", bin_big, mls_big, 5.0
        ),
        mb_per_s_check(
            "OIP REST binary large payload within 20% of gRPC Predict tensor_content MB/s "
            "(≥ 0.8x, same server)",
            bin_big,
            _find(rows, large, TS2, "gRPC"),
            0.8,
        ),
    ]
    return checks


def mb_per_s_check(label: str, a: Row | None, b: Row | None, need: float) -> Check:
    """``a``'s end-to-end MB/s (in+out bytes / p50) ≥ ``need`` x ``b``'s."""
    if a is None or b is None or not a.extra.get("mb_per_s") or not b.extra.get("mb_per_s"):
        return Check(label, "not measured", None)
    x = a.extra["mb_per_s"] / b.extra["mb_per_s"]
    return Check(
        label,
        f"{a.extra['mb_per_s']:.1f} vs {b.extra['mb_per_s']:.1f} MB/s (p50 {a.p50_ms:.1f} vs "
        f"{b.p50_ms:.1f} ms) = x{x:.2f}",
        x >= need,
    )


# ---------------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError):
        mem_kb = 0
    os_name = "?"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass

    def ver(cmd: list[str]) -> str:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    import tensorflow as tf

    peers = []
    try:
        from importlib.metadata import version

        peers.append(f"fastapi=={version('fastapi')} uvicorn=={version('uvicorn')} (wrapper)")
    except ImportError:
        pass
    for peer in PEERS:
        stamp = VENVS / peer / ".bench-installed"
        if stamp.exists():
            peers.append(stamp.read_text().strip())
    return {
        "CPU": f"{cpu}, {os.cpu_count()} vCPU (shared VM)",
        "memory": f"{mem_kb / 2**20:.0f} GiB",
        "OS": f"{os_name}, kernel {platform.release()}",
        "Python": platform.python_version(),
        "TensorFlow": f"{tf.__version__} (CPU)",
        "load generators": f"{' '.join(ver(['wrk', '-v']).split()[:2])}; "
        f"{ver(['h2load', '--version'])}",
        "peers": "; ".join(peers) or "-",
    }


METHOD = [
    "Every server answers one real predict, checked against the model's own output, before it "
    "is timed; gRPC is also checked with the official PredictionServiceStub.",
    "REST load: wrk, 1 thread, keep-alive, fixed POST body (benchmarks/post.lua). gRPC load: "
    "h2load, 1 thread, one stream per connection, body = 5-byte-framed PredictRequest with "
    "tensor_content, `content-type: application/grpc`, `te: trailers`; its DATA byte count is "
    "checked against the expected response size, so gRPC errors (HTTP 200, trailers only) "
    "count as failures.",
    "The MLP rounds are interleaved (every server is up during the whole scenario, each "
    "measurement short, the order rotated each round), and the table shows medians over rounds; "
    "`x wrapper` is the median of per-round ratios to the single-worker FastAPI wrapper at the "
    "same connection count, and the ratio targets are judged on per-round ratios too. Full "
    "mode: 3 rounds of 5 s per measurement (kept at that, with the 2-worker peers measured at "
    "c16 and c64 only and the batching row at c64 only, so the whole run stays near half an "
    "hour); --quick: 1 round of 3 s.",
    "Idle servers must not take CPU from the one being measured: after the warm-up the run "
    "measures every server's CPU over 3 s with nothing sent, and a server above "
    f"{IDLE_BUSY_PCT:.0f}% of one core is stopped (SIGSTOP of its process group) while the "
    "others are measured and continued (SIGCONT, then one checked predict) for its own turn. "
    "Stopping keeps its models loaded, where a restart per turn would cost a model load each "
    "time; the Notes say which servers it applied to.",
    "Load generator and servers share the same 2 vCPUs, as a user's single-box test would.",
    "Same cores: the 2-worker rows are each peer's own multi-process mode, configured for 2 "
    "cores. FastAPI wrapper: `uvicorn fastapi_wrapper:create_app --factory --workers 2` (each "
    "worker loads its own model copy, what users do). KServe: `--workers 2` "
    "(RESTServerMultiProcess: the parent binds the port and spawns 2 REST workers, each "
    "unpickling the model registry; the TF model reloads itself there, so parent and workers "
    "each hold a copy). MLServer: `parallel_workers: 2` (the HTTP server in the main process "
    "hands each inference to one of 2 worker processes, each with a model copy; the main "
    "process also loads one). LitServe 0.2.19: `LitServer(api, accelerator='cpu', "
    "workers_per_device=1)` + `run(num_api_servers=2)`: 2 forked uvicorn API-server "
    "processes in front of one inference worker (one model copy, like tensorserve's model "
    "process) over multiprocessing queues, JSON parsed in the API servers and decode_request / "
    "predict / encode_response in the worker; its batching row adds `LitAPI(max_batch_size, "
    "batch_timeout)` with tensorserve's batching values. tensorserve: `--num_workers=2` "
    "(a supervisor, one model process, 2 protocol workers sharing both ports).",
    "Seed MLP: Keras Input(784) → Dense(128, relu) → Dense(10, softmax), "
    "tf.saved_model.save; batch-1 JSON body ≈ 8.3 KB; input/output keys read from the loaded "
    "signature.",
    "Large payload: a weightless model returning `images * 0.5` for float32 [8,224,224,3] "
    "(4.8 MB of float32 each way; the same-size output makes the server encode as much as it "
    "decodes). The bound is orjson.loads + np.asarray(float32) of the request plus "
    "orjson.dumps(OPT_SERIALIZE_NUMPY) of the response, best of N, in one thread. Only the "
    "single-worker peers are measured here (one request at a time).",
    "FastAPI wrapper: `async def` handler, `await request.json()`, model on the event loop, "
    "`.tolist()` out, uvicorn[standard], access log off. KServe: custom kserve.Model, V1 "
    "protocol, latency and uvicorn logging off (its faster setting). MLServer: custom MLModel "
    "runtime, V2 JSON, single-worker row parallel_workers 0 (its faster setting for a light "
    "model), uvloop<0.22. LitServe: TF Serving's row JSON on its own `/predict` path, access "
    "log off, TensorFlow imported only in the inference worker.",
    "MLServer speaks the Open Inference Protocol, whose JSON carries one flat `data` list; "
    "TF Serving's `instances` rows are nested lists, which cost orjson + numpy about 4x more "
    "to decode for the large payload. So the large-payload REST rows compare wire formats as "
    "well as servers.",
    "Open Inference Protocol (OIP, KServe V2) rows, on tensorserve --num_workers=2 (the same "
    "server process as its TF Serving REST and gRPC rows, so measured side by side): "
    '\'OIP REST JSON\' = `POST /v2/models/{name}/infer` with `{"inputs": [{"name", '
    '"shape", "datatype": "FP32", "data": [flat list]}]}` (the body MLServer gets); '
    "'OIP REST binary' = Triton's binary tensor extension: a JSON header whose input declares "
    "`binary_data_size` and whose output asks for `binary_data: true`, then the raw "
    "little-endian float32 bytes, `Inference-Header-Content-Length: <header length>`, "
    "`content-type: application/octet-stream` (the answer is its JSON header + raw bytes; wrk "
    "sends the header through post.lua); 'OIP gRPC' = `inference.GRPCInferenceService/"
    "ModelInfer` on the TF Serving gRPC port, the input in `raw_input_contents`, driven by "
    "h2load like Predict and checked first with tritonclient's GRPCInferenceServiceStub. "
    "Model, input and output names are the serving_default signature's, as for Predict. Each "
    "OIP endpoint is checked against the model's answer before it is timed; one that does not "
    "answer shows as 'no result' / 'failed' without stopping the server's other rows. KServe "
    "0.21's row 'OIP REST JSON' is its own `/v2/models/{name}/infer` (the same custom "
    "kserve.Model answering an InferRequest). Large-payload MB/s = (request + response bytes) "
    "/ p50; for gRPC rows the tensor bytes both ways.",
    "Memory: RSS is summed over the server's process tree (/proc/PID/status), so pages shared "
    "between processes (libraries, fork copy-on-write) count once per process; PSS "
    "(/proc/PID/smaps_rollup) splits each shared page between its sharers, so the sum of PSS "
    "over the tree is what the server costs the machine; USS (Private_Clean + Private_Dirty) "
    "is what a process alone holds. Sampled after each MLP round (the table keeps the "
    "maximum) and, per process, once after the last round ('MLP memory' rows); tensorserve's "
    "processes are told apart by their `tensorserve.processes.child ROLE` command line "
    "(main = the supervisor, or the whole server with --num_workers=1).",
    "Memory with large weights: a Dense stack Input(2048) → 5x Dense(4096, relu) → Dense(10) "
    f"({bm.wide_params() / 1e6:.1f}M float32 parameters, {bm.wide_params() * 4 / 2**20:.0f} "
    "MiB), served by each server alone, sampled after 200 (--quick: 60) REST (and gRPC) "
    "requests at 16 connections; the target compares the sum of PSS of "
    "--num_workers=2 with --num_workers=1; the FastAPI wrapper rows (1 and 2 uvicorn workers) "
    "show what one model copy per worker costs.",
    "Version swap (--num_workers=2): a new version directory is renamed into the base path "
    "during a 16-connection h2load run; 'during' = requests started from the copy until the "
    "old version is unloaded +0.5 s, 'steady' = requests before it; afterwards 16 predicts on "
    "fresh connections (spread over the workers) must all answer the new version.",
    "Soak (--num_workers=2): RSS and PSS summed over all processes after the first 10% of the "
    "requests and at the end.",
]


def method_notes() -> list[str]:
    size, timeout = batching_params()
    notes = [
        *METHOD,
        "tensorserve batching (--enable_batching --batching_parameters_file): "
        + " ".join(BATCHING[0].split())
        + "; tensorserve runs with its defaults otherwise (access log off). LitServe batching: "
        f"max_batch_size={size}, batch_timeout={timeout} s; LitServe queues: "
        + ("ZeroMQ (fast_queue=True)." if LITSERVE_FAST_QUEUE[0] else "multiprocessing (default)."),
    ]
    if CUSTOM_CMD[0]:
        notes.append(
            f"tensorserve replaced by `{' '.join(TENSORSERVE_CMD)}` (--tensorserve-cmd), run "
            "without --num_workers: its rows carry the --num_workers=2 labels and the "
            "--num_workers=1 rows are not run."
        )
    return notes


def parse_args(argv: list[str] | None) -> tuple[Config, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 round, short runs, 20k soak")
    p.add_argument("--only", default="", help=f"comma list of {','.join(SUBJECTS)}")
    p.add_argument("--scenarios", default="", help=f"comma list of {','.join(SCENARIOS)}")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--seconds", type=float, default=None, help="per measurement")
    p.add_argument("--write", type=Path, default=None, help="write the markdown report here")
    p.add_argument("--render", type=Path, default=None, help="only re-render a results.json")
    p.add_argument("--skip-setup", action="store_true")
    p.add_argument("--batching-config", type=Path, default=None, help="BatchingParameters file")
    p.add_argument(
        "--litserve-fast-queue", action="store_true", help="LitServe with ZeroMQ (fast_queue=True)"
    )
    p.add_argument(
        "--no-oip",
        action="store_true",
        help="no Open Inference Protocol rows (tensorserve's /v2 and ModelInfer, KServe's V2)",
    )
    p.add_argument(
        "--tensorserve-cmd",
        default="",
        help="command replacing `.venv/bin/python -m tensorserve` (e.g. tensorflow_model_server)",
    )
    a = p.parse_args(argv)
    subjects = {x for x in a.only.split(",") if x} or set(SUBJECTS)
    scenarios = {x for x in a.scenarios.split(",") if x} or set(SCENARIOS)
    bad = (subjects - set(SUBJECTS)) | (scenarios - set(SCENARIOS))
    if bad:
        p.error(f"unknown: {sorted(bad)}")
    q = a.quick
    cfg = Config(
        quick=q,
        subjects=subjects,
        scenarios=scenarios,
        rounds=a.rounds or (1 if q else 3),
        seconds=a.seconds or (3.0 if q else 5.0),
        large_seconds=4.0 if q else 8.0,
        soak_total=20_000 if q else 100_000,
        soak_first=2_000 if q else 10_000,
        swap_seconds=8.0 if q else 12.0,
    )
    return cfg, a


def _interrupted(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    cfg, args = parse_args(argv)
    if cfg.quick:
        QUIET.budget_s = 30.0
    if args.batching_config:
        BATCHING[0] = args.batching_config.read_text()
    LITSERVE_FAST_QUEUE[0] = args.litserve_fast_queue
    OIP[0] = not args.no_oip
    if args.tensorserve_cmd:
        TENSORSERVE_CMD[:] = args.tensorserve_cmd.split()
        CUSTOM_CMD[0] = True
    out_json = BENCH / "results.json"
    if args.render:
        res = Results.load(args.render)
        res.meta["method"] = method_notes()
    else:
        # SIGTERM (e.g. `timeout`) unwinds like Ctrl-C, so no server outlives the run.
        signal.signal(signal.SIGTERM, _interrupted)
        try:
            res = bench(cfg, args)
        finally:
            stop_running()
        res.save(out_json)
        say(f"raw results: {out_json}")
    print(render_console(res))
    if args.write:
        args.write.write_text(render_markdown(res))
        say(f"wrote {args.write}")
    return 0


def bench(cfg: Config, args: argparse.Namespace) -> Results:
    t0 = time.monotonic()
    for d in (BENCH, LOGS, MODELS, BODIES):
        d.mkdir(parents=True, exist_ok=True)
    failed = {} if args.skip_setup else setup(cfg)
    say("building models and request bodies")
    mlp = prepare_model(bm.MLP_NAME, bm.mlp_input(1))
    need_big = "large" in cfg.scenarios or "floor" in cfg.subjects
    big = prepare_model(bm.BIG_NAME, bm.big_input()) if need_big else None
    rows: list[Row] = []
    details: list[str] = []
    fl = Floors()
    if "floor" in cfg.subjects:
        run_floor(cfg, mlp, big if "large" in cfg.scenarios else None, fl)
    servers = cfg.subjects - {"floor"}
    if "mlp" in cfg.scenarios and servers:
        run_mlp(cfg, mlp, failed, rows, fl, details)
    if "large" in cfg.scenarios and servers and big is not None:
        if fl.big is None:
            fl.big = bm.measure_floor(big.version_path, big.x, "big", 2)
        run_large(cfg, big, failed, rows, fl)
    if "swap" in cfg.scenarios and "tensorserve" in cfg.subjects:
        run_swap(cfg, mlp, rows, details)
    if "soak" in cfg.scenarios and "tensorserve" in cfg.subjects:
        run_soak(cfg, mlp, rows)
    if "memory" in cfg.scenarios and ({"tensorserve", "fastapi"} & cfg.subjects):
        run_memory(cfg, rows)
    rows[:0] = floor_rows(fl)
    checks = evaluate(rows, fl)
    elapsed = time.monotonic() - t0
    if FOREIGN:
        details.append(
            f"shared VM: other processes used a median {median(FOREIGN):.0f}% (max "
            f"{max(FOREIGN):.0f}%) of the 2 vCPUs during the measurements; rows with 10% or "
            "more say so"
        )
    details.append(f"whole run took {elapsed / 60:.1f} min; server logs in bench-results/logs/")
    meta = {
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "mode": "quick" if cfg.quick else "full",
        "rounds": cfg.rounds,
        "seconds": cfg.seconds,
        "machine": machine(),
        "method": method_notes(),
        "args": sys.argv[1:],
    }
    return Results(meta=meta, rows=rows, checks=checks, details=details)


if __name__ == "__main__":
    sys.exit(main())
