"""Prometheus metrics for one server, TF Serving's names first.

One :class:`Metrics` per server renders one text exposition (format 0.0.4) made of two blocks:

1. **TF Serving's metrics**, byte-compatible with ``tensorflow_model_server``'s exporter
   (``util/prometheus_exporter.cc``): the TF monitoring name with every character outside
   ``[A-Za-z0-9_]`` turned into ``:``; one ``# TYPE`` line per metric even before it has a
   point; no ``# HELP``, no ``_total`` suffix, no ``_created`` series; labelled points sorted by
   label values; histogram buckets use TF's ``[lower, upper)`` rule (a value equal to a bound
   counts in the next bucket) and print their bounds as C ``%.6g``. Names, labels and buckets
   are those of TF Serving 2.21 / TensorFlow 2.21 (``servables/tensorflow/util.cc``,
   ``core/request_logger.cc``, ``servables/tensorflow/saved_model_warmup_util.cc``,
   ``batching/batching_util.h``, ``batching/batching_session.cc``,
   ``tensorflow/cc/saved_model/loader.cc``).
2. **tensorserve's own metrics** (``tensorserve_*``), exported through this instance's own
   ``prometheus_client.CollectorRegistry`` with ordinary Prometheus conventions (seconds,
   ``_total`` counters, ``le`` buckets), plus the process collector (memory, CPU, fds).

Every ``record_*``/``on_*``/``set_*`` method is thread-safe and cheap (one lock, a few dict
operations): they run on the request path. :meth:`Metrics.render` copies the points under the
lock and formats outside it.
"""

from __future__ import annotations

import re
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Final, Literal

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from tensorserve.errors import Code
from tensorserve.metrics.statistics import InferenceStatistics

LabelValues = tuple[str, ...]

MODEL_STATES: Final = frozenset({"START", "LOADING", "AVAILABLE", "UNLOADING", "END"})
"""Accepted ``state_name`` values of :meth:`Metrics.set_model_state`."""

_SECONDS_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


def exponential_buckets(scale: float, growth: float, count: int) -> tuple[float, ...]:
    """Finite bucket bounds of TF's ``monitoring::Buckets::Exponential(scale, growth, count)``.

    Computed by repeated multiplication, as TF does, so bounds match TF's doubles bit for bit.
    """
    bounds: list[float] = []
    bound = scale
    for _ in range(count):
        bounds.append(bound)
        bound *= growth
    return tuple(bounds)


def prometheus_name(tf_name: str) -> str:
    """TF Serving's exported name for a TF monitoring name (``/a/b`` -> ``:a:b``)."""
    name = re.sub(r"[^a-zA-Z0-9_]", ":", tf_name)
    return "_" + name if name[:1].isdigit() else name


def escape_label_value(value: str) -> str:
    """Escape ``\\``, ``"`` and newlines as the text format requires."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Hist:
    """Bucket counts (the last one unbounded) and the sum of one labelled histogram point."""

    __slots__ = ("counts", "total")

    def __init__(self, counts: list[int], total: float = 0.0) -> None:
        self.counts = counts
        self.total = total


class _Scalar:
    """A counter or gauge: label names and points. Not locked: callers hold the lock."""

    __slots__ = ("doc", "kind", "labels", "name", "points")

    def __init__(
        self,
        name: str,
        kind: Literal["counter", "gauge"],
        labels: Sequence[str] = (),
        doc: str = "",
    ) -> None:
        self.name, self.kind, self.labels, self.doc = name, kind, tuple(labels), doc
        self.points: dict[LabelValues, float] = {}

    def add(self, key: LabelValues, amount: float) -> None:
        """Counter increment, or gauge delta."""
        self.points[key] = self.points.get(key, 0) + amount

    def set(self, key: LabelValues, value: float) -> None:
        """Gauge assignment."""
        self.points[key] = value

    def copy(self) -> _Scalar:
        """The same metric with a copy of its points."""
        other = _Scalar(self.name, self.kind, self.labels, self.doc)
        other.points = dict(self.points)
        return other


class _Histogram:
    """A histogram with fixed finite bounds (plus +Inf). Not locked: callers hold the lock.

    ``tf_semantics``: TF's rule, a value equal to a bound counts in the next bucket
    (``[lower, upper)``); otherwise Prometheus' ``le`` rule.
    """

    __slots__ = ("_find", "bounds", "doc", "labels", "name", "points", "tf_semantics")
    kind: Final = "histogram"

    def __init__(
        self,
        name: str,
        labels: Sequence[str],
        bounds: Sequence[float],
        doc: str = "",
        tf_semantics: bool = True,
    ) -> None:
        self.name, self.labels, self.bounds, self.doc = name, tuple(labels), tuple(bounds), doc
        self.tf_semantics = tf_semantics
        self._find = bisect_right if tf_semantics else bisect_left
        self.points: dict[LabelValues, _Hist] = {}

    def observe(self, key: LabelValues, value: float) -> None:
        """Add one sample to the point ``key``."""
        point = self.points.get(key)
        if point is None:
            point = self.points[key] = _Hist([0] * (len(self.bounds) + 1))
        point.counts[self._find(self.bounds, value)] += 1
        point.total += value

    def copy(self) -> _Histogram:
        """The same metric with a copy of its points."""
        other = _Histogram(self.name, self.labels, self.bounds, self.doc, self.tf_semantics)
        other.points = {k: _Hist(list(v.counts), v.total) for k, v in self.points.items()}
        return other


_Family = _Scalar | _Histogram


# ---------------------------------------------------------------------------------------------
# TF Serving block: exposition identical to util/prometheus_exporter.cc.


def _tf_number(value: float) -> str:
    """A histogram sum: integral values print without a fraction, others in full precision."""
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _tf_labels(names: Sequence[str], values: LabelValues) -> str:
    return ",".join(f'{n}="{escape_label_value(v)}"' for n, v in zip(names, values, strict=True))


def _tf_scalar_lines(name: str, fam: _Scalar) -> list[str]:
    points = fam.points
    return [f"{name}{{{_tf_labels(fam.labels, k)}}} {int(points[k])}" for k in sorted(points)]


def _tf_hist_lines(name: str, labels: str, bounds: Sequence[float], hist: _Hist) -> list[str]:
    prefix = f"{name}_bucket{{{labels}{',' if labels else ''}"
    lines, cumulative = [], 0
    for i, count in enumerate(hist.counts):
        cumulative += count
        le = f"{bounds[i]:.6g}" if i < len(bounds) else "+Inf"
        lines.append(f'{prefix}le="{le}"}} {cumulative}')
    lines.append(f"{name}_sum{{{labels}}} {_tf_number(hist.total)}")
    lines.append(f"{name}_count{{{labels}}} {cumulative}")
    return lines


def _tf_family_lines(fam: _Family) -> list[str]:
    name = prometheus_name(fam.name)
    lines = [f"# TYPE {name} {fam.kind}"]
    if isinstance(fam, _Scalar):
        return lines + _tf_scalar_lines(name, fam)
    for key in sorted(fam.points):
        lines += _tf_hist_lines(name, _tf_labels(fam.labels, key), fam.bounds, fam.points[key])
    return lines


def render_tf_block(families: Iterable[_Family]) -> str:
    """TF Serving's page for these families, sorted by TF name, ending with a newline."""
    lines: list[str] = []
    for fam in sorted(families, key=lambda f: f.name):
        lines += _tf_family_lines(fam)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# tensorserve block: standard conventions via prometheus_client.


def _std_scalar(fam: _Scalar) -> Metric:
    cls = CounterMetricFamily if fam.kind == "counter" else GaugeMetricFamily
    metric = cls(fam.name, fam.doc, labels=fam.labels)
    for key, value in sorted(fam.points.items()):
        metric.add_metric(key, value)
    return metric


def _std_buckets(bounds: Sequence[float], hist: _Hist) -> list[tuple[str, float]]:
    out, cumulative = [], 0
    for i, count in enumerate(hist.counts):
        cumulative += count
        out.append((repr(float(bounds[i])) if i < len(bounds) else "+Inf", float(cumulative)))
    return out


def _std_family(fam: _Family) -> Metric:
    if isinstance(fam, _Scalar):
        return _std_scalar(fam)
    metric = HistogramMetricFamily(fam.name, fam.doc, labels=fam.labels)
    for key, hist in sorted(fam.points.items()):
        metric.add_metric(key, _std_buckets(fam.bounds, hist), hist.total)
    return metric


class _ServeCollector(Collector):
    """Exposes the ``tensorserve_*`` families of one :class:`Metrics` to its registry."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for fam in self._metrics.snapshot(self._metrics.serve_families):
            yield _std_family(fam)


# ---------------------------------------------------------------------------------------------


class _InFlight(AbstractContextManager[None]):
    """Counts one request in ``tensorserve_requests_in_flight`` while the block runs."""

    __slots__ = ("_key", "_metrics")

    def __init__(self, metrics: Metrics, model: str) -> None:
        self._metrics = metrics
        self._key = (model,)

    def __enter__(self) -> None:
        self._metrics.gauge_add(self._metrics.in_flight, self._key, 1)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._metrics.gauge_add(self._metrics.in_flight, self._key, -1)


class BatchingMetrics:
    """The batching layer's observer (duck-typed protocol of ``batching/scheduler.py``).

    Mirrors ``BatchingSession``: each request's rows go to ``input_batch_size`` (TF records
    them once per input tensor; we once per request, before any splitting: the batching layer
    passes request sizes in ``task_sizes``), the executed (padded) size to
    ``processed_batch_size``, the padding rows to ``padding_size{execution_batch_size}``, and
    every executed batch bumps ``wrapped_run_count``.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def on_batch(
        self,
        model: str,
        signature: str,
        task_sizes: Sequence[int],
        processed_size: int,
        padding_rows: int,
    ) -> None:
        """One batch ran: ``processed_size`` rows including ``padding_rows`` of padding."""
        m = self._m
        with m.lock:
            for size in task_sizes:
                m.input_batch_size.observe((), size)
            m.processed_batch_size.observe((), processed_size)
            m.padding_size.observe((str(processed_size),), padding_rows)
            m.wrapped_run_count.add((), 1)

    def on_batch_run(self, model: str, version: int, processed_size: int, micros: float) -> None:
        """One batch ran: the per-version ``batch_stats`` of the inference statistics."""
        self._m.statistics.record_batch(model, version, processed_size, micros)

    def on_queue_latency(self, thread_pool_name: str, micros: float) -> None:
        """One task waited ``micros`` between enqueue and the start of its batch."""
        with self._m.lock:
            self._m.queuing_latency.observe((thread_pool_name,), max(micros, 0.0))

    def on_queue_depth(self, model: str, signature: str, depth: int) -> None:
        """Tasks currently queued for this model and signature."""
        with self._m.lock:
            self._m.batch_queue_depth.set((model, signature), depth)


class Metrics:
    """All metrics of one server, in its own registry (never prometheus_client's global one).

    Create one per server; pass ``metrics.batching`` to the batching layer; serve
    :meth:`render` at the configured path. ``registry`` accepts further collectors, which
    :meth:`render` includes after TF Serving's block.
    """

    def __init__(self, *, process_metrics: bool = True) -> None:
        self.lock = threading.Lock()
        self.statistics = InferenceStatistics()
        self._code_names = {code: code.name for code in Code}
        self._build_tf_families()
        self._build_serve_families()
        self._current_state: dict[tuple[str, str], str] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_ServeCollector(self))
        if process_metrics:
            ProcessCollector(registry=self.registry)
        self.batching = BatchingMetrics(self)

    def _build_tf_families(self) -> None:
        latency_us = exponential_buckets(10, 1.8, 33)
        batch_sizes = exponential_buckets(1, 2, 14)
        serving, saved_model = "/tensorflow/serving/", "/tensorflow/cc/saved_model/"
        batching = serving + "batching_session/"
        self.request_count = _Scalar(serving + "request_count", "counter", ("model_name", "status"))
        self.request_latency = _Histogram(
            serving + "request_latency", ("model_name", "API", "entrypoint"), latency_us
        )
        self.runtime_latency = _Histogram(
            serving + "runtime_latency", ("model_name", "API", "runtime"), latency_us
        )
        self.example_counts = _Histogram(
            serving + "request_example_counts", ("model",), exponential_buckets(1, 2, 15)
        )
        self.example_count_total = _Scalar(
            serving + "request_example_count_total", "counter", ("model",)
        )
        self.request_log_count = _Scalar(
            serving + "request_log_count", "counter", ("model_name", "status_code")
        )
        self.warmup_latency = _Histogram(
            serving + "model_warmup_latency", ("model_path", "status"), latency_us
        )
        self.input_batch_size = _Histogram(batching + "input_batch_size", (), batch_sizes)
        self.processed_batch_size = _Histogram(batching + "processed_batch_size", (), batch_sizes)
        self.padding_size = _Histogram(
            batching + "padding_size", ("execution_batch_size",), batch_sizes
        )
        self.queuing_latency = _Histogram(
            batching + "queuing_latency", ("thread_pool_name",), exponential_buckets(100, 1.2, 52)
        )
        self.wrapped_run_count = _Scalar(batching + "wrapped_run_count", "counter")
        self.load_attempt_count = _Scalar(
            saved_model + "load_attempt_count", "counter", ("model_path", "status")
        )
        self.load_latency = _Scalar(saved_model + "load_latency", "counter", ("model_path",))
        self.load_latency_by_stage = _Histogram(
            saved_model + "load_latency_by_stage", ("model_path", "stage"), latency_us
        )
        self.tf_families: tuple[_Family, ...] = (
            self.request_count, self.request_latency, self.runtime_latency, self.example_counts,
            self.example_count_total, self.request_log_count, self.warmup_latency,
            self.input_batch_size, self.processed_batch_size, self.padding_size,
            self.queuing_latency, self.wrapped_run_count, self.load_attempt_count,
            self.load_latency, self.load_latency_by_stage,
        )  # fmt: skip

    def _build_serve_families(self) -> None:
        self.model_state = _Scalar(
            "tensorserve_model_state", "gauge", ("model_name", "version", "state"),
            "1 for the current state of each model version.",
        )  # fmt: skip
        self.in_flight = _Scalar(
            "tensorserve_requests_in_flight", "gauge", ("model_name",),
            "Requests currently being served, by model.",
        )  # fmt: skip
        self.batch_queue_depth = _Scalar(
            "tensorserve_batch_queue_depth", "gauge", ("model_name", "signature"),
            "Tasks waiting in the batching queue.",
        )  # fmt: skip
        self.serve_latency = _Histogram(
            "tensorserve_request_latency_seconds",
            ("model_name", "version", "signature", "API", "entrypoint"), _SECONDS_BUCKETS,
            "Latency of successful requests, by version and signature.", tf_semantics=False,
        )  # fmt: skip
        self.warmup_records = _Scalar(
            "tensorserve_model_warmup_records_read", "counter", ("model_path", "status"),
            "Warmup records replayed from assets.extra/tf_serving_warmup_requests.",
        )  # fmt: skip
        self.memory_estimate = _Scalar(
            "tensorserve_model_memory_estimate_bytes", "gauge", ("model_name", "version"),
            "Memory estimated for each loaded version before its load (files' size x 1.2).",
        )  # fmt: skip
        self.load_rss_growth = _Scalar(
            "tensorserve_model_load_rss_growth_bytes", "gauge", ("model_name", "version"),
            "Growth of the model process's resident memory while each loaded version loaded.",
        )  # fmt: skip
        self.serve_families: tuple[_Family, ...] = (
            self.model_state, self.in_flight, self.batch_queue_depth, self.serve_latency,
            self.warmup_records, self.memory_estimate, self.load_rss_growth,
        )  # fmt: skip

    # -- request path --------------------------------------------------------------------------

    def record_request(
        self,
        model: str,
        api: str,
        entrypoint: str,
        code: Code,
        latency_us: float,
        version: int | None = None,
        signature: str = "",
        items: int = 0,
    ) -> None:
        """Count one finished request by status; record its latency only when ``code`` is OK.

        ``api``: ``Predict``/``Classify``/``Regress``/``MultiInference``/``GetModelMetadata``
        on gRPC, the lowercase verb on REST (OIP: ``ModelInfer``/``infer``); ``entrypoint``:
        ``GRPC`` or ``REST``. ``items`` > 0 marks an inference of that many samples, which
        the per-version :attr:`statistics` count too.
        """
        if items:
            self.statistics.record_request(model, version, code is Code.OK, latency_us, items)
        count_key = (model, self._code_names[code])
        if code is not Code.OK:
            with self.lock:
                self.request_count.add(count_key, 1)
            return
        latency_us = latency_us if latency_us > 0 else 0.0
        ver = "" if version is None else str(version)
        with self.lock:
            self.request_count.add(count_key, 1)
            self.request_latency.observe((model, api, entrypoint), latency_us)
            self.serve_latency.observe((model, ver, signature, api, entrypoint), latency_us / 1e6)

    def record_runtime(
        self,
        model: str,
        api: str,
        latency_us: float,
        runtime: str = "TF1",
        version: int | None = None,
    ) -> None:
        """Wall time spent inside the TensorFlow runtime for one request."""
        if version is not None:
            self.statistics.record_compute(model, version, latency_us)
        with self.lock:
            self.runtime_latency.observe((model, api, runtime), max(latency_us, 0.0))

    def record_examples(self, model: str, count: int) -> None:
        """Number of ``tf.Example``s in one Classify/Regress/MultiInference request."""
        with self.lock:
            self.example_counts.observe((model,), count)
            self.example_count_total.add((model,), count)

    def record_request_log(self, model: str, code: Code) -> None:
        """One sampled request was handed to the request logger with outcome ``code``."""
        with self.lock:
            self.request_log_count.add((model, self._code_names[code]), 1)

    def inflight(self, model: str) -> AbstractContextManager[None]:
        """``with metrics.inflight(model):`` counts the block in ``requests_in_flight``."""
        return _InFlight(self, model)

    def gauge_add(self, fam: _Scalar, key: LabelValues, delta: float) -> None:
        """Add ``delta`` to a gauge point under the lock."""
        with self.lock:
            fam.add(key, delta)

    # -- lifecycle -----------------------------------------------------------------------------

    def record_load(self, model_path: str, ok: bool, latency_us: float) -> None:
        """One SavedModel load attempt (``status`` is ``success``/``fail``, as TF's loader).

        ``load_latency`` is a counter of total microseconds over all attempts, as in TF.
        """
        with self.lock:
            self.load_attempt_count.add((model_path, "success" if ok else "fail"), 1)
            self.load_latency.add((model_path,), int(max(latency_us, 0.0)))

    def record_load_stage(self, model_path: str, stage: str, latency_us: float) -> None:
        """Time spent in one load stage; TF's stages are ``restore_graph`` and ``init_graph``."""
        with self.lock:
            self.load_latency_by_stage.observe((model_path, stage), max(latency_us, 0.0))

    def record_warmup(
        self, model_path: str, ok: bool, latency_us: float, records: int, error: str = ""
    ) -> None:
        """One warmup run over ``records`` records.

        The ``status`` label is TF's ``Status::ToString()``: ``OK``, else e.g.
        ``INVALID_ARGUMENT: <message>``; pass that text as ``error`` (default ``UNKNOWN``).
        """
        status = "OK" if ok else (error or "UNKNOWN")
        with self.lock:
            self.warmup_latency.observe((model_path, status), max(latency_us, 0.0))
            self.warmup_records.add((model_path, status), records)

    def set_model_memory(self, model: str, version: int, memory: tuple[int, int] | None) -> None:
        """A loaded version's (estimate, RSS growth) in bytes; None: it is not loaded."""
        key = (model, str(version))
        with self.lock:
            if memory is None:
                self.memory_estimate.points.pop(key, None)
                self.load_rss_growth.points.pop(key, None)
            else:
                self.memory_estimate.set(key, memory[0])
                self.load_rss_growth.set(key, memory[1])

    def set_model_state(self, model: str, version: int, state_name: str) -> None:
        """Mark ``state_name`` (one of :data:`MODEL_STATES`) as the version's only state."""
        if state_name not in MODEL_STATES:
            raise ValueError(
                f"unknown model state {state_name!r}; expected one of {sorted(MODEL_STATES)}"
            )
        ver = str(version)
        with self.lock:
            previous = self._current_state.get((model, ver))
            if previous is not None:
                self.model_state.points.pop((model, ver, previous), None)
            self.model_state.set((model, ver, state_name), 1)
            self._current_state[(model, ver)] = state_name

    # -- exposition ----------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Cumulative per-model request counters and latency buckets, JSON-able.

        For dashboards that compute rates and percentiles from the change between two
        summaries (no history is kept here). Latency counts use
        ``latency_bounds_us`` (the last bucket is unbounded) and sum every API and
        entrypoint; batch sizes are server-wide, as TF Serving's batching metrics are.
        """
        with self.lock:
            models: dict[str, dict[str, Any]] = {}
            for (model, status), count in self.request_count.points.items():
                entry = _summary_entry(models, model, self.request_latency.bounds)
                entry["requests"][status] = entry["requests"].get(status, 0) + count
            for (model, _api, _entrypoint), hist in self.request_latency.points.items():
                entry = _summary_entry(models, model, self.request_latency.bounds)
                entry["latency_counts"] = [
                    a + b for a, b in zip(entry["latency_counts"], hist.counts, strict=True)
                ]
                entry["latency_sum_us"] += hist.total
            for (model,), value in self.in_flight.points.items():
                _summary_entry(models, model, self.request_latency.bounds)["in_flight"] = value
            for (model, _signature), depth in self.batch_queue_depth.points.items():
                entry = _summary_entry(models, model, self.request_latency.bounds)
                entry["batch_queue_depth"] += depth
            batches = self.processed_batch_size.points.get(())
            return {
                "time": time.time(),
                "latency_bounds_us": list(self.request_latency.bounds),
                "batch_size_bounds": list(self.processed_batch_size.bounds),
                "processed_batch_sizes": list(batches.counts) if batches else [],
                "models": models,
            }

    def snapshot(self, families: Iterable[_Family]) -> list[_Family]:
        """Consistent copies of the families, taken under the lock."""
        with self.lock:
            return [fam.copy() for fam in families]

    def render(self) -> bytes:
        """The whole page: TF Serving's block, then this registry's (tensorserve, process)."""
        tf_block = render_tf_block(self.snapshot(self.tf_families)).encode()
        return tf_block + generate_latest(self.registry)


def _summary_entry(
    models: dict[str, dict[str, Any]], model: str, bounds: Sequence[float]
) -> dict[str, Any]:
    entry = models.get(model)
    if entry is None:
        entry = models[model] = {
            "requests": {},
            "latency_counts": [0] * (len(bounds) + 1),
            "latency_sum_us": 0.0,
            "in_flight": 0,
            "batch_queue_depth": 0,
        }
    return entry
