"""Start, check, sample and stop the servers under test.

Every server runs as its own process group (``start_new_session``) with output to a log file under
``bench-results/logs``; it is stopped by signalling that group only. Readiness is a real predict
whose answer matches the model's own output (never a health URL); the gRPC side is checked with
the official ``PredictionServiceStub`` (or, for the Open Inference Protocol, tritonclient's
``GRPCInferenceServiceStub``) and with one h2load request (which also gives the exact response
size that later h2load runs are validated against).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bench_models as bm
import loadgen
import numpy as np

_HANDED_OUT: set[int] = set()
RUNNING: list[Server] = []  # every started, not yet stopped server (stop_running() ends them)


def free_port() -> int:
    """A free TCP port *below* the kernel's ephemeral range.

    Ports from the ephemeral range can be taken between our check and the server's bind by
    the load generators' own client sockets (or by other work on the VM), so pick from below it.
    """
    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    lo, hi = (20000, low - 1) if low > 21000 else (low // 2, low - 1)
    rng = random.Random()
    for _ in range(500):
        port = rng.randint(lo, hi)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port found")


def _proc_stats() -> dict[int, list[str]]:
    """``{pid: fields of /proc/PID/stat after the command name}`` for every process."""
    out: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        out[int(entry)] = stat[stat.rfind(")") + 2 :].split()
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (parents before children)."""
    children: dict[int, list[int]] = {}
    for p, fields in _proc_stats().items():
        children.setdefault(int(fields[1]), []).append(p)
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(sorted(children.get(p, [])))
    return out


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` plus all its descendants, from /proc."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` and its live descendants, in clock ticks."""
    stats = _proc_stats()
    tree = set(process_tree(pid))
    return sum(int(f[11]) + int(f[12]) for p, f in stats.items() if p in tree)


@dataclass
class ProcMem:
    """One process's memory from /proc/PID/smaps_rollup (bytes)."""

    pid: int
    role: str  # tensorserve: "main", "model" or "worker"; otherwise the program name
    rss: int
    pss: int
    uss: int  # Private_Clean + Private_Dirty: what killing the process would free


def _role(pid: int) -> str:
    """tensorserve children carry ``tensorserve.processes.child ROLE`` in their cmdline."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return "?"
    if "tensorserve.processes.child" in argv:
        i = argv.index("tensorserve.processes.child")
        return argv[i + 1] if i + 1 < len(argv) else "child"
    if "tensorserve" in argv:
        return "main"  # the supervisor (or, with --num_workers=1, the whole server)
    if "-c" in argv:  # multiprocessing's helpers and spawned children
        code = argv[argv.index("-c") + 1] if argv.index("-c") + 1 < len(argv) else ""
        for key, name in (("resource_tracker", "mp-tracker"), ("spawn_main", "mp-child")):
            if key in code:
                return name
        return "python -c"
    rest = [a for a in argv[1:] if not a.startswith("-")]
    if "-m" in argv and argv.index("-m") + 1 < len(argv):
        return argv[argv.index("-m") + 1]
    if rest and os.path.basename(argv[0]).startswith("python"):
        return os.path.basename(rest[0])  # the script (forked children keep the same cmdline)
    return os.path.basename(argv[0]) if argv else "?"


def smaps_rollup(pid: int) -> ProcMem | None:
    vals: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                    vals[parts[0][:-1]] = int(parts[1]) * 1024
    except OSError:
        return None
    uss = vals.get("Private_Clean", 0) + vals.get("Private_Dirty", 0)
    return ProcMem(pid, _role(pid), vals.get("Rss", 0), vals.get("Pss", 0), uss)


def tree_memory(pid: int) -> list[ProcMem]:
    """smaps_rollup of ``pid`` and every descendant."""
    return [m for m in (smaps_rollup(p) for p in process_tree(pid)) if m is not None]


def http_post(port: int, path: str, body: bytes, timeout: float = 60.0) -> tuple[int, bytes]:
    status, _, data = http_post_full(port, path, body, timeout=timeout)
    return status, data


def http_post_full(
    port: int,
    path: str,
    body: bytes,
    content_type: str = "application/json",
    headers: tuple[str, ...] = (),
    timeout: float = 60.0,
) -> tuple[int, dict[str, str], bytes]:
    """POST ``body``; ``headers`` are extra ``"Name: value"`` lines. Returns (status, response
    headers with lower-case names, body)."""
    sent = {"Content-Type": content_type}
    for h in headers:
        name, _, value = h.partition(":")
        sent[name.strip()] = value.strip()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=sent)
        resp = conn.getresponse()
        got = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, got, resp.read()
    finally:
        conn.close()


def http_get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


TFS_PREDICT = "/tensorflow.serving.PredictionService/Predict"
OIP_MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


@dataclass
class Endpoint:
    """What is needed to drive and check one protocol of one server for one model."""

    rest_path: str | None = None
    rest_body: Path | None = None
    # "v1" (TFS), "v2" (OIP JSON) or "v2-binary" (OIP JSON header + raw tensor bytes)
    rest_protocol: str = "v1"
    rest_content_type: str = "application/json"
    rest_headers: tuple[str, ...] = ()  # extra "Name: value" request headers
    grpc_body: Path | None = None  # framed PredictRequest (or ModelInferRequest)
    grpc_request: Any = None  # the request message itself, for the stub check
    grpc_output_key: str = ""
    grpc_response_bytes: int = 0  # filled in by check_grpc
    grpc_method: str = TFS_PREDICT  # or OIP_MODEL_INFER

    def rest_answer(self, headers: dict[str, str], body: bytes) -> np.ndarray:
        """The prediction in a REST answer of this endpoint's protocol."""
        if self.rest_protocol == "v2-binary":
            length = headers.get(bm.OIP_HEADER_LENGTH.lower())
            return bm.answer_from_oip_binary(body, int(length) if length is not None else None)
        return bm.answer_from_json(body, self.rest_protocol)


@dataclass
class Server:
    key: str
    label: str
    cmd: list[str]
    log: Path
    rest_port: int | None = None
    grpc_port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    error: str | None = None
    paused: bool = False

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.update(self.env)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        RUNNING.append(self)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 600) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        return " | ".join(lines[-6:])[-chars:]

    def rss(self) -> int:
        return rss_bytes(self.proc.pid) if self.alive and self.proc else 0

    def memory(self) -> list[ProcMem]:
        """USS/PSS/RSS of every process of this server (the launched one and its children)."""
        return tree_memory(self.proc.pid) if self.alive and self.proc else []

    def pss(self) -> int:
        """Sum of PSS over the server's processes: shared pages are counted once in total."""
        return sum(m.pss for m in self.memory())

    def cpu_ticks(self) -> int:
        return cpu_ticks(self.proc.pid) if self.alive and self.proc else 0

    def pause(self) -> None:
        """SIGSTOP the server's process group (it burns no CPU while another is measured)."""
        if self.alive and self.proc and not self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.proc and self.paused:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGCONT)
            self.paused = False
            time.sleep(0.2)  # let its event loops and queue threads catch up

    def stop(self) -> None:
        if self in RUNNING:
            RUNNING.remove(self)
        if self.proc is None:
            return
        self.resume()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    def wait_ready(self, ep: Endpoint, expected: np.ndarray, timeout_s: float = 240.0) -> bool:
        """Poll with a real REST predict until it answers ``expected``; set ``error`` if not."""
        assert self.rest_port is not None and ep.rest_path and ep.rest_body
        body = ep.rest_body.read_bytes()
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            if not self.alive:
                self.error = f"exited (rc={self.proc.returncode if self.proc else '?'}): "
                self.error += self.log_tail()
                return False
            try:
                status, headers, resp = http_post_full(
                    self.rest_port, ep.rest_path, body, ep.rest_content_type, ep.rest_headers
                )
            except OSError as e:
                last = f"{type(e).__name__}: {e}"
                time.sleep(0.5)
                continue
            if status == 200:
                try:
                    got = ep.rest_answer(headers, resp)
                except (ValueError, KeyError, IndexError, TypeError) as e:
                    self.error = f"unparseable answer ({e}): {resp[:200]!r}"
                    return False
                if bm.close(got, expected):
                    return True
                self.error = f"wrong answer: got {np.asarray(got).ravel()[:4]} ..."
                return False
            last = f"HTTP {status}: {resp[:200]!r}"
            time.sleep(0.5)
        self.error = f"not ready after {timeout_s:.0f}s (last: {last}); log: {self.log_tail()}"
        return False

    def check_grpc(self, ep: Endpoint, expected: np.ndarray, model: str) -> bool:
        """One official-stub call must answer ``expected``; one h2load request must too.

        TF Serving's ``PredictionServiceStub.Predict``, or for ``OIP_MODEL_INFER`` endpoints
        tritonclient's ``GRPCInferenceServiceStub.ModelInfer`` (same port).
        """
        assert self.grpc_port is not None and ep.grpc_body is not None
        import grpc

        oip = ep.grpc_method == OIP_MODEL_INFER
        opts = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        try:
            with grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}", options=opts) as ch:
                if oip:
                    from tritonclient.grpc import service_pb2_grpc

                    resp = service_pb2_grpc.GRPCInferenceServiceStub(ch).ModelInfer(
                        ep.grpc_request, timeout=60
                    )
                else:
                    from tensorflow_serving.apis import prediction_service_pb2_grpc

                    stub = prediction_service_pb2_grpc.PredictionServiceStub(ch)
                    resp = stub.Predict(ep.grpc_request, timeout=60)
        except grpc.RpcError as e:
            self.error = f"gRPC {ep.grpc_method.rsplit('/', 1)[-1]} failed: {e.code()}: "
            self.error += str(e.details())
            return False
        names = [o.name for o in resp.outputs] if oip else list(resp.outputs)
        if ep.grpc_output_key not in names:
            self.error = f"gRPC answer lacks output {ep.grpc_output_key!r}: {names}"
            return False
        if oip:
            got = bm.answer_from_oip_grpc(resp)
        else:
            got = bm.tensor_from_proto(resp.outputs[ep.grpc_output_key])
        if not bm.close(got, expected):
            self.error = f"gRPC wrong answer: {got.ravel()[:4]} ..."
            return False
        ep.grpc_response_bytes = 5 + resp.ByteSize()
        one = loadgen.h2load(
            self.grpc_url(ep.grpc_method),
            ep.grpc_body,
            1,
            requests=1,
            grpc=True,
            expect_data_bytes=ep.grpc_response_bytes,
        )
        if one.failed or one.requests != 1:
            self.error = f"h2load gRPC request failed: {one.notes}"
            return False
        return True

    def probe(self, ep: Endpoint, expected: np.ndarray, grpc: bool, model: str) -> str | None:
        """One check of an extra protocol of a server already up: None if it answers
        ``expected``, else why not (the server's own ``error`` is left as it was)."""
        saved, self.error = self.error, None
        try:
            ok = self.check_grpc(ep, expected, model) if grpc else self.wait_ready(ep, expected, 5)
            return None if ok else (self.error or "failed")
        finally:
            self.error = saved

    def grpc_url(self, method: str = TFS_PREDICT) -> str:
        return f"http://127.0.0.1:{self.grpc_port}{method}"

    def rest_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.rest_port}{path}"


def stop_running() -> None:
    """Stop every server still running (an interrupted or failed run leaves none behind)."""
    for server in list(RUNNING):
        with contextlib.suppress(Exception):
            server.stop()


def model_status(port: int, model: str) -> dict[str, str]:
    """``{version: state}`` from TF Serving's ``GET /v1/models/{model}``."""
    try:
        status, body = http_get(port, f"/v1/models/{model}", timeout=5)
    except OSError:
        return {}
    if status != 200:
        return {}
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return {
        str(v.get("version")): str(v.get("state"))
        for v in doc.get("model_version_status", [])
        if isinstance(v, dict)
    }


class CpuMeter:
    """How much of the machine's CPU went to processes outside this benchmark's process tree.

    The VM is shared: other work (test suites, builds) shows up as "foreign" CPU. Total busy
    time comes from /proc/stat; this tree's share is our own and our reaped children's CPU time
    plus that of every live descendant.
    """

    def __init__(self) -> None:
        self.hz = os.sysconf("SC_CLK_TCK")
        self.ncpu = os.cpu_count() or 1

    @staticmethod
    def _total_busy() -> int:
        with open("/proc/stat") as f:
            parts = f.readline().split()[1:]
        vals = [int(v) for v in parts]
        idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        return sum(vals[:8]) - idle

    def _ours(self) -> int:
        me = os.getpid()
        children: dict[int, list[int]] = {}
        times: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            pid = int(entry)
            children.setdefault(int(fields[1]), []).append(pid)
            # utime, stime, cutime, cstime
            times[pid] = sum(int(x) for x in fields[11:15])
        total, todo = 0, [me]
        while todo:
            p = todo.pop()
            total += times.get(p, 0)
            todo.extend(children.get(p, []))
        return total

    def snapshot(self) -> tuple[float, int, int]:
        return time.monotonic(), self._total_busy(), self._ours()

    def foreign_pct(self, a: tuple[float, int, int], b: tuple[float, int, int]) -> float:
        """Foreign CPU between two snapshots, in % of the whole machine."""
        wall = b[0] - a[0]
        if wall <= 0:
            return 0.0
        foreign = (b[1] - a[1]) - (b[2] - a[2])
        return max(0.0, 100.0 * foreign / (wall * self.hz * self.ncpu))

    def wait_quiet(self, max_wait_s: float, threshold_pct: float = 25.0) -> float:
        """Wait (up to ``max_wait_s``) for a 0.5 s window with foreign CPU below the threshold."""
        deadline = time.monotonic() + max_wait_s
        while True:
            a = self.snapshot()
            time.sleep(0.5)
            pct = self.foreign_pct(a, self.snapshot())
            if pct < threshold_pct or time.monotonic() >= deadline:
                return pct
