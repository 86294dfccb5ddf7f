"""Load generators: ``wrk`` for REST (HTTP/1.1) and ``h2load`` for gRPC (HTTP/2, h2c).

wrk posts a fixed body through ``benchmarks/post.lua`` (with extra headers where a protocol needs
them: the Open Inference Protocol's binary body carries ``Inference-Header-Content-Length``) and
prints one ``WRK_JSON`` line with its latency histogram's percentiles. h2load posts a pre-built
5-byte-framed ``PredictRequest`` (or OIP ``ModelInferRequest``, to the URL path of that method) with
``content-type: application/grpc`` and ``te: trailers``; it counts HTTP statuses, not gRPC ones,
so every run also checks the response DATA bytes: a gRPC error is a trailers-only response with
no DATA, so ``data bytes / requests`` must equal the expected framed response size. Latency
percentiles come from h2load's per-request ``--log-file`` (start time, status, elapsed µs), which
also lets the version-swap scenario split requests into time windows. h2load ``--h1`` drives
REST the same way where per-request timestamps or a fixed request count are needed.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
POST_LUA = HERE / "post.lua"


@dataclass
class LoadResult:
    tool: str
    connections: int
    requests: int
    seconds: float
    failed: int
    p50_ms: float
    p99_ms: float
    notes: list[str] = field(default_factory=list)
    foreign_pct: float = 0.0  # CPU used by processes outside the benchmark, % of the machine
    # h2load only, with keep_samples: per-request (start time in epoch seconds, status, ms)
    samples: list[tuple[float, int, float]] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.requests > 0


def wrk(
    url: str,
    body_file: Path,
    connections: int,
    seconds: float,
    content_type: str = "application/json",
    threads: int = 1,
    timeout_s: float = 30.0,
    headers: Sequence[str] = (),
) -> LoadResult:
    """``headers``: extra ``"Name: value"`` request headers (post.lua sets them)."""
    cmd = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={int(timeout_s)}s",
        "-s",
        str(POST_LUA),
        url,
        "--",
        str(body_file),
        content_type,
        *headers,
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + timeout_s + 30, check=False
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRK_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    d = json.loads(line[len("WRK_JSON ") :])
    failed = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]
    notes = []
    if failed:
        notes.append(
            "wrk errors: "
            + ", ".join(
                f"{k}={d[k]}" for k in ("connect", "read", "write", "status", "timeout") if d[k]
            )
        )
    return LoadResult(
        tool="wrk",
        connections=connections,
        requests=int(d["requests"]),
        seconds=d["duration_us"] / 1e6,
        failed=int(failed),
        p50_ms=d["p50_us"] / 1e3,
        p99_ms=d["p99_us"] / 1e3,
        notes=notes,
    )


_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout"
)
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_TRAFFIC = re.compile(r"traffic: .*? (\d+) data")


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    idx = min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))
    return sorted_values[idx]


def h2load(
    url: str,
    body_file: Path,
    connections: int,
    *,
    seconds: float | None = None,
    requests: int | None = None,
    grpc: bool = True,
    expect_data_bytes: int | None = None,
    content_type: str = "application/json",
    threads: int = 1,
    keep_samples: bool = False,
    headers: Sequence[str] = (),
) -> LoadResult:
    """Run h2load for ``seconds`` (duration mode) or for ``requests`` requests.

    ``expect_data_bytes``: the exact size of one response body (framed gRPC message, or REST
    JSON); when given, a run whose received DATA bytes fall short counts the shortfall as failed
    requests (gRPC errors arrive as HTTP 200 with no DATA). The URL's path picks the gRPC
    method (TF Serving's ``PredictionService/Predict`` or the Open Inference Protocol's
    ``GRPCInferenceService/ModelInfer``); ``headers``: extra ``"Name: value"`` headers.
    """
    with tempfile.NamedTemporaryFile(prefix="h2load-", suffix=".log", delete=False) as tmp:
        log_path = Path(tmp.name)
    cmd = ["h2load", f"-t{min(threads, connections)}", f"-c{connections}", "-m1"]
    if grpc:
        cmd += ["-H", "content-type: application/grpc", "-H", "te: trailers"]
    else:
        cmd += ["--h1", "-H", f"content-type: {content_type}"]
    for h in headers:
        cmd += ["-H", h]
    if requests is not None:
        cmd += [f"-n{requests}"]
    else:
        cmd += [f"-D{max(1, round(seconds or 5))}"]
    cmd += ["-d", str(body_file), f"--log-file={log_path}", url]
    limit = (seconds or 0) + (requests or 0) / 200 + 120
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, check=False)
        out = proc.stdout
        fin = _FINISHED.search(out)
        req = _REQUESTS.search(out)
        if proc.returncode != 0 or fin is None or req is None:
            raise RuntimeError(
                f"h2load failed ({proc.returncode}): {(proc.stderr or out).strip()[-500:]}"
            )
        elapsed = float(fin.group(1)) / (1000 if fin.group(2) == "ms" else 1)
        done = int(req.group(3))
        succeeded = int(req.group(4))
        failed = done - succeeded + int(req.group(5)) + int(req.group(6)) + int(req.group(7))
        failed = max(failed, int(req.group(1)) - succeeded if requests is not None else failed)
        notes: list[str] = []
        st = _STATUS.search(out)
        if st and (int(st.group(3)) or int(st.group(4))):
            notes.append(f"HTTP 4xx={st.group(3)} 5xx={st.group(4)}")
        tr = _TRAFFIC.search(out)
        if expect_data_bytes and tr:
            data = int(tr.group(1))
            short = done - data // expect_data_bytes
            if short > 0:
                failed = max(failed, short)
                notes.append(
                    f"{short} responses without the expected {expect_data_bytes}-byte body "
                    "(gRPC error or wrong answer size)"
                )
        lat: list[float] = []
        samples: list[tuple[float, int, float]] = []
        for raw in log_path.read_text().splitlines():
            parts = raw.split()
            if len(parts) < 3:
                continue
            start_us, status, elapsed_us = float(parts[0]), int(parts[1]), float(parts[2])
            lat.append(elapsed_us / 1e3)
            if keep_samples:
                samples.append((start_us / 1e6, status, elapsed_us / 1e3))
        samples.sort()
        lat.sort()
        return LoadResult(
            tool="h2load" if grpc else "h2load --h1",
            connections=connections,
            requests=succeeded,
            seconds=elapsed,
            failed=failed,
            p50_ms=_percentile(lat, 50),
            p99_ms=_percentile(lat, 99),
            notes=notes,
            samples=samples,
        )
    finally:
        log_path.unlink(missing_ok=True)
