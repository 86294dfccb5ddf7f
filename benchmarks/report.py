"""Result rows, the summary table, the target checks and the BENCHMARKS.md writer."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    scenario: str
    server: str
    protocol: str
    conns: int | None = None
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    rss_mib: float | None = None  # sum over the server's processes (shared pages counted each time)
    ratio: float | None = None
    failed: int | None = None
    note: str = ""
    rounds: list[float] = field(default_factory=list)  # per-round req/s
    extra: dict[str, float] = field(default_factory=dict)  # scenario-specific numbers
    pss_mib: float | None = None  # sum of PSS over the server's processes (shared pages split)


@dataclass
class Check:
    target: str
    measured: str
    passed: bool | None  # None: could not be evaluated


@dataclass
class Results:
    meta: dict[str, Any]
    rows: list[Row]
    checks: list[Check]
    details: list[str]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1))

    @staticmethod
    def load(path: Path) -> Results:
        d = json.loads(path.read_text())
        return Results(
            meta=d["meta"],
            rows=[Row(**r) for r in d["rows"]],
            checks=[Check(**c) for c in d["checks"]],
            details=list(d.get("details", [])),
        )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _fmt(v: float | None, digits: int = 2) -> str:
    if v is None or v != v:  # None or NaN
        return "-"
    if digits == 0 or abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


HEADER = [
    "scenario",
    "server",
    "protocol",
    "conns",
    "req/s",
    "p50 ms",
    "p99 ms",
    "RSS MiB",
    "PSS MiB",
    "x wrapper",
    "failed",
    "notes",
]


def table_lines(rows: list[Row]) -> list[str]:
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        cells = [
            r.scenario,
            r.server,
            r.protocol,
            "-" if r.conns is None else str(r.conns),
            _fmt(r.rps, 0 if (r.rps or 0) >= 100 else 2),
            _fmt(r.p50_ms, 3 if (r.p50_ms or 0) < 10 else 1),
            _fmt(r.p99_ms, 3 if (r.p99_ms or 0) < 10 else 1),
            _fmt(r.rss_mib, 0),
            _fmt(r.pss_mib, 0),
            "-" if r.ratio is None else f"{r.ratio:.2f}",
            "-" if r.failed is None else str(r.failed),
            r.note.replace("|", "/"),
        ]
        out.append("| " + " | ".join(cells) + " |")
    return out


def check_lines(checks: list[Check]) -> list[str]:
    out = ["| target | measured | result |", "|---|---|---|"]
    for c in checks:
        verdict = "n/a" if c.passed is None else ("PASS" if c.passed else "FAIL")
        out.append(f"| {c.target} | {c.measured} | {verdict} |")
    return out


def render_console(res: Results) -> str:
    return "\n".join(
        [
            *table_lines(res.rows),
            "",
            *check_lines(res.checks),
            "",
            *res.details,
        ]
    )


def render_markdown(res: Results) -> str:
    m = res.meta
    lines = [
        "# Benchmarks",
        "",
        "Produced by `make bench` (`.venv/bin/python benchmarks/run.py --write BENCHMARKS.md`).",
        f"Run: {m.get('date', '?')}, {m.get('mode', '')} mode, "
        f"{m.get('rounds', '?')} interleaved round(s) of {m.get('seconds', '?')} s per "
        "measurement; req/s, p50 and p99 are medians over rounds.",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in m.get("machine", {}).items()],
        "",
        "## Results",
        "",
        *table_lines(res.rows),
        "",
        "## Targets (same run)",
        "",
        *check_lines(res.checks),
        "",
        "## Notes",
        "",
        *[f"- {d}" for d in res.details],
        "",
        "## Method",
        "",
        *[f"- {d}" for d in m.get("method", [])],
        "",
        "## Running it",
        "",
        "- `make bench` runs everything (about 30 minutes on this 2-vCPU VM) and rewrites this "
        "file. It installs what it lacks first: wrk and nghttp2-client (apt), fastapi in the "
        "project venv, KServe, MLServer and LitServe each in its own virtualenv under "
        "`bench-results/venvs/` (`benchmarks/setup_peers.sh`, idempotent; a peer that fails to "
        "install shows as 'did not install: <reason>').",
        "- Subsets: `.venv/bin/python benchmarks/run.py --only floor,fastapi,kserve,mlserver,"
        "litserve,tensorserve --scenarios mlp,large,swap,soak,memory`; `--quick` (1 round, "
        "short runs, 20k soak); `--rounds N`, `--seconds S`; `--write BENCHMARKS.md`; "
        "`--render bench-results/results.json` re-renders the last run; `--tensorserve-cmd` "
        "benchmarks another TF-Serving-compatible binary in tensorserve's place (without "
        "`--num_workers`, so only the 2-worker rows); `--batching-config FILE` changes the "
        "batching parameters (tensorserve's and LitServe's); `--no-oip` leaves out the Open "
        "Inference Protocol rows (tensorserve's /v2 and ModelInfer, KServe's V2).",
        "- This is a shared 2-vCPU VM: compare only ratios from the same run, and treat "
        "differences under ~15% as noise. Each measurement records how much CPU other "
        "processes took meanwhile; the run waits briefly (bounded) for a quiet moment before "
        "each measurement.",
        "",
    ]
    # sections kept by hand: measured by other commands (make soak, benchmarks/micro/)
    for name in ("soak-results.md", "tflite-results.md", "analysis.md"):
        section = Path(__file__).with_name(name)
        if section.is_file():
            lines += [section.read_text(encoding="utf-8").rstrip(), ""]
    return "\n".join(lines)
