"""Request logging: sampled ``PredictionLog`` records written to rotating TFRecord files.

The OSS ``tensorflow_model_server`` has no log collector ("No request-logger-creator
provided."); this is tensorserve's. One :class:`RequestLogger` per model (its
``logging_config``), shared by all request threads.

Contract:

- :meth:`RequestLogger.maybe_log` samples first (``rng() < sampling_rate``, as TF
  Serving's ``RequestLogger::Log``); an unsampled request costs one ``rng()`` call and
  ``build`` is not called. A sampled log goes to a bounded in-memory queue; when the queue
  is full (or the logger closed) it is dropped. Logging never blocks, raises to, or fails
  a request; every problem is counted (:meth:`RequestLogger.stats`), reported through
  ``on_result(False)`` and logged once per kind.
- One daemon thread per logger serializes queued logs, writes them, and flushes the file
  to the OS after each batch; ``on_result(True)`` follows a successful write.
- Files: ``<prefix>.<UTC %Y%m%dT%H%M%SZ>.<pid>.<seq>.tfrecord`` (a prefix ending in ``/``
  is a directory: ``<prefix><UTC…>.<pid>.<seq>.tfrecord``); ``seq`` is process-wide, so
  loggers sharing a prefix never share a file, and an existing name is skipped. A file is
  opened at its first record, rotated before a record would take it past
  ``max_file_bytes`` (a larger record gets a file of its own), and every file is a valid
  TFRecord file readable by ``tf.data.TFRecordDataset`` and usable as a warm-up file.
  Missing directories are created; URIs go through ``tf.io.gfile``.
- The logger sets ``log_metadata.sampling_config.sampling_rate`` (as TF Serving does) and
  ``log_metadata.timestamp_secs`` when zero (wall clock, request thread); the caller fills
  the rest of ``log_metadata`` (``model_spec``, ``saved_model_tags``) in ``build``.
- The built message is owned by the logger from then on: callers must not touch it.
- Call :meth:`RequestLogger.close` at unload/shutdown: the thread is a daemon, so logs
  still queued at interpreter exit are lost otherwise.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import logging
import os
import posixpath
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tensorflow_serving.apis.prediction_log_pb2 import PredictionLog

    from tensorserve.config.logging_config import RequestLoggingOptions

DEFAULT_QUEUE_CAPACITY = 1024
RECORD_OVERHEAD_BYTES = 16  # TFRecord framing: uint64 length + two masked crc32c
FILE_SUFFIX = ".tfrecord"

_log = logging.getLogger(__name__)
_file_seq = itertools.count()  # process-wide; next() is atomic under the GIL


class RecordSink(Protocol):
    """An open TFRecord file; used by the writer thread only."""

    def write(self, record: bytes) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


SinkFactory = Callable[[str], RecordSink]


def tfrecord_sink(path: str) -> RecordSink:
    """Open ``path`` with ``tf.io.TFRecordWriter`` (truncating it)."""
    import tensorflow as tf

    sink: RecordSink = tf.io.TFRecordWriter(path)
    return sink


@dataclass(frozen=True, slots=True)
class RequestLogStats:
    """Counters of one logger; after :meth:`RequestLogger.flush`,
    ``sampled == written + dropped + failed``."""

    sampled: int = 0
    written: int = 0
    dropped: int = 0  # queue full or logger closed
    failed: int = 0  # build, serialization or write error
    files: int = 0  # files opened


class RequestLogger:
    """Samples and asynchronously writes one model's ``PredictionLog`` records.

    Thread-safe: :meth:`maybe_log`, :meth:`flush`, :meth:`close` and :meth:`stats` may be
    called from any thread. ``rng`` (default :func:`random.random`) must be thread-safe;
    ``on_result`` is called from request threads (drops, build errors) and the writer
    thread (writes), must be cheap, and must not call :meth:`flush` or :meth:`close`.
    ``sink_factory`` opens a file for the writer thread (tests inject fakes).
    """

    def __init__(
        self,
        options: RequestLoggingOptions,
        model_name: str,
        on_result: Callable[[bool], None] | None = None,
        *,
        rng: Callable[[], float] = random.random,
        queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
        sink_factory: SinkFactory = tfrecord_sink,
    ) -> None:
        if queue_capacity < 1:
            raise ValueError(f"queue_capacity must be >= 1, got {queue_capacity}")
        self._options = options
        self._model_name = model_name
        self._on_result = on_result
        self._rng = rng
        self._capacity = queue_capacity
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)
        self._queue: deque[PredictionLog] = deque()
        self._closing = False
        self._enqueued = 0
        self._processed = 0
        self._counts = {"sampled": 0, "written": 0, "dropped": 0, "failed": 0}
        self._warned: set[str] = set()
        self._files = _RotatingFiles(options, sink_factory)
        self._thread = threading.Thread(
            target=self._run, name=f"request-log-{model_name}", daemon=True
        )
        self._thread.start()

    @property
    def options(self) -> RequestLoggingOptions:
        return self._options

    def maybe_log(self, build: Callable[[], PredictionLog]) -> None:
        """Sample; if sampled, call ``build`` and queue its log. Never raises or blocks."""
        if not self._sampled():
            return
        try:
            log = build()
            metadata = log.log_metadata
            if not metadata.timestamp_secs:
                metadata.timestamp_secs = int(time.time())
        except Exception as exc:
            self._count_sampled("failed")
            self._warn_once("building the log", exc)
            self._report(False)
            return
        if not self._offer(log):
            self._warn_once("queueing the log", "queue full or logger closed; log dropped")
            self._report(False)

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every log queued before this call is written (or failed) and the
        file flushed to the OS. Returns False if ``timeout_s`` passed first."""
        with self._lock:
            target = self._enqueued
            return self._progress.wait_for(lambda: self._processed >= target, timeout_s)

    def close(self, timeout_s: float = 30.0) -> bool:
        """Stop accepting logs, write what is queued, close the file, stop the thread.

        Idempotent. Returns False if the thread had not finished after ``timeout_s``.
        """
        with self._lock:
            self._closing = True
            self._has_work.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def stats(self) -> RequestLogStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return RequestLogStats(**self._counts, files=self._files.opened)

    # request threads

    def _sampled(self) -> bool:
        rate = self._options.sampling_rate
        if rate <= 0.0:
            return False
        return rate >= 1.0 or self._rng() < rate

    def _offer(self, log: PredictionLog) -> bool:
        with self._lock:
            self._counts["sampled"] += 1
            if self._closing or len(self._queue) >= self._capacity:
                self._counts["dropped"] += 1
                return False
            self._queue.append(log)
            self._enqueued += 1
            self._has_work.notify()
        return True

    def _count_sampled(self, outcome: str) -> None:
        with self._lock:
            self._counts["sampled"] += 1
            self._counts[outcome] += 1

    # writer thread

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            results = [self._write(log) for log in batch]
            self._flush_file()
            self._finish(results)
        with contextlib.suppress(Exception):
            self._files.close()

    def _take(self) -> list[PredictionLog] | None:
        with self._lock:
            self._has_work.wait_for(lambda: bool(self._queue) or self._closing)
            if not self._queue:
                return None
            batch = list(self._queue)
            self._queue.clear()
            return batch

    def _write(self, log: PredictionLog) -> bool:
        try:
            log.log_metadata.sampling_config.sampling_rate = self._options.sampling_rate
            data = log.SerializeToString()
        except Exception as exc:
            self._warn_once("serializing the log", exc)
            return False
        try:
            self._files.write(data)
        except Exception as exc:
            self._warn_once("writing the log", exc)
            self._files.discard()
            return False
        return True

    def _flush_file(self) -> None:
        try:
            self._files.flush()
        except Exception as exc:
            self._warn_once("flushing the log file", exc)
            self._files.discard()

    def _finish(self, results: list[bool]) -> None:
        written = sum(results)
        with self._lock:
            self._counts["written"] += written
            self._counts["failed"] += len(results) - written
            self._processed += len(results)
            self._progress.notify_all()
        for ok in results:
            self._report(ok)

    # both

    def _report(self, ok: bool) -> None:
        if self._on_result is None:
            return
        try:
            self._on_result(ok)
        except Exception as exc:
            self._warn_once("calling on_result", exc)

    def _warn_once(self, what: str, problem: BaseException | str) -> None:
        kind = f"{what}:{type(problem).__name__}"
        if kind in self._warned:
            return
        self._warned.add(kind)
        _log.warning(
            "Request logging for model %s: %s failed: %s (further failures of this kind "
            "are only counted)",
            self._model_name,
            what,
            problem if isinstance(problem, str) else f"{type(problem).__name__}: {problem}",
        )


class _RotatingFiles:
    """The current output file and its size. Writer thread only (``opened`` is read
    under the logger's lock, a plain int read)."""

    def __init__(self, options: RequestLoggingOptions, factory: SinkFactory) -> None:
        self._prefix = options.filename_prefix
        self._max_bytes = options.max_file_bytes
        self._factory = factory
        self._sink: RecordSink | None = None
        self._size = 0
        self.opened = 0

    def write(self, data: bytes) -> None:
        size = len(data) + RECORD_OVERHEAD_BYTES
        if self._sink is not None and self._size + size > self._max_bytes:
            self.close()
        if self._sink is None:
            self._sink = self._factory(self._new_path())
            self._size = 0
            self.opened += 1
        self._sink.write(data)
        self._size += size

    def flush(self) -> None:
        if self._sink is not None:
            self._sink.flush()

    def close(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.close()

    def discard(self) -> None:
        """Drop the current file after an error; the next record opens a new one."""
        with contextlib.suppress(Exception):
            self.close()

    def _new_path(self) -> str:
        _make_parent_dirs(self._prefix)
        while True:
            path = file_name(self._prefix, next(_file_seq))
            if not _exists(path):
                return path


def file_name(prefix: str, seq: int, now: datetime.datetime | None = None) -> str:
    """``<prefix>.<UTC time>.<pid>.<seq>.tfrecord`` (no ``.`` after a ``/``-ended prefix)."""
    stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y%m%dT%H%M%SZ")
    sep = "" if prefix.endswith(("/", os.sep)) else "."
    return f"{prefix}{sep}{stamp}.{os.getpid()}.{seq:06d}{FILE_SUFFIX}"


def _make_parent_dirs(prefix: str) -> None:
    if "://" in prefix:
        import tensorflow as tf

        parent = posixpath.dirname(prefix)
        if not tf.io.gfile.exists(parent):
            tf.io.gfile.makedirs(parent)
        return
    parent = os.path.dirname(prefix)
    if parent:
        os.makedirs(parent, exist_ok=True)


def _exists(path: str) -> bool:
    if "://" not in path:
        return os.path.exists(path)
    import tensorflow as tf

    return bool(tf.io.gfile.exists(path))
