"""Per-model, per-version inference statistics: Triton's statistics extension.

Fed by ``Metrics.record_request`` and ``Metrics.record_runtime`` with the very numbers the
Prometheus families get, so ``/v2/models/{m}/stats`` and ``/monitoring/prometheus/metrics``
agree. Durations are cumulative nanoseconds. ``success``/``fail``: whole requests in the
model process (``request_latency``); ``compute_infer``: time in the runtime
(``runtime_latency``, which includes a batching queue wait); ``queue`` stays 0 because the
batching queue is inside that runtime time; ``inference_count`` counts samples (the batch
dimension), ``execution_count`` runtime executions; ``batch_stats`` (when batching is on)
counts the executed batches per size (padding included) and their runtime.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

_STAGES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


@dataclass(slots=True)
class _Stats:
    durations: dict[str, list[int]] = field(
        default_factory=lambda: {stage: [0, 0] for stage in _STAGES}
    )
    batches: dict[int, list[int]] = field(default_factory=dict)  # size -> [count, ns]
    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0

    def add(self, stage: str, ns: int) -> None:
        entry = self.durations[stage]
        entry[0] += 1
        entry[1] += max(ns, 0)


class InferenceStatistics:
    """Thread-safe accumulator; :meth:`report` gives Triton's ``model_stats`` entries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[tuple[str, int], _Stats] = {}

    def _entry(self, model: str, version: int) -> _Stats:
        entry = self._stats.get((model, version))
        if entry is None:
            entry = self._stats[(model, version)] = _Stats()
        return entry

    def record_request(
        self, model: str, version: int | None, ok: bool, latency_us: float, items: int
    ) -> None:
        """One finished inference request (``items`` samples) of ``model`` at ``version``."""
        if version is None:  # never resolved to a version: no per-version entry to charge
            return
        with self._lock:
            entry = self._entry(model, version)
            entry.add("success" if ok else "fail", int(latency_us * 1e3))
            if ok:
                entry.inference_count += items
                entry.last_inference_ms = int(time.time() * 1e3)

    def record_compute(self, model: str, version: int, latency_us: float) -> None:
        """One runtime execution of ``latency_us``."""
        with self._lock:
            entry = self._entry(model, version)
            entry.add("compute_infer", int(latency_us * 1e3))
            entry.execution_count += 1

    def record_batch(self, model: str, version: int, size: int, latency_us: float) -> None:
        """One executed batch of ``size`` rows (padding included) that took ``latency_us``."""
        with self._lock:
            entry = self._entry(model, version).batches.setdefault(size, [0, 0])
            entry[0] += 1
            entry[1] += max(int(latency_us * 1e3), 0)

    def report(self, models: dict[str, list[int]]) -> list[dict[str, Any]]:
        """Entries for each (model, versions) asked, in that order; zeros for versions with
        no requests yet."""
        with self._lock:
            out = []
            for model, versions in models.items():
                for version in versions:
                    out.append(_entry_json(model, version, self._stats.get((model, version))))
            return out


def _entry_json(model: str, version: int, stats: _Stats | None) -> dict[str, Any]:
    stats = stats or _Stats()
    return {
        "name": model,
        "version": str(version),
        "last_inference": stats.last_inference_ms,
        "inference_count": stats.inference_count,
        "execution_count": stats.execution_count,
        "inference_stats": {
            stage: {"count": count, "ns": ns} for stage, (count, ns) in stats.durations.items()
        },
        "batch_stats": [
            {
                "batch_size": size,
                "compute_input": {"count": 0, "ns": 0},
                "compute_infer": {"count": count, "ns": ns},
                "compute_output": {"count": 0, "ns": 0},
            }
            for size, (count, ns) in sorted(stats.batches.items())
        ],
    }
