"""``BatchingServable``: a Servable that batches concurrent ``run`` calls (TF Serving's
``BatchingSession``).

Each signature gets one queue on the shared scheduler. A request becomes a task
of its dim-0 size; the batch thread merges the tasks' inputs (``padding.py``),
runs the inner servable once with the union of the requested outputs, and
hands every task its rows of the requested outputs. Requests whose inputs
differ in names, dtypes or (without ``pad_variable_length_inputs``) non-batch
shapes go to different batches.

Requests that cannot be batched run directly on the inner servable: unknown
signatures (the inner servable reports the error), requests without inputs,
with a rank-0 input (TF Serving rejects these; we run them unbatched), or with
zero rows.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np

from tensorserve.batching import padding
from tensorserve.batching.scheduler import (
    BatchObserver,
    BatchQueue,
    SafeObserver,
    SharedBatchScheduler,
)
from tensorserve.config.batching import BatchingOptions
from tensorserve.errors import DeadlineExceeded, Internal, InvalidArgument, ServingError
from tensorserve.servable import Servable, SignatureSpec

UNEQUAL_BATCH_SIZE_MESSAGE = "Batching Run() input tensors must have equal 0th-dimension size"
DEADLINE_MESSAGE = "Deadline Exceeded"
Outputs = dict[str, np.ndarray]


class _Unit:
    """A schedulable piece of work: a whole request or a split part of one."""

    __slots__ = ("deadline", "inputs", "key", "output_keys", "size")

    def __init__(
        self,
        inputs: Mapping[str, np.ndarray],
        output_keys: Sequence[str],
        size: int,
        key: Hashable,
        deadline: float | None,
    ) -> None:
        self.inputs = inputs
        self.output_keys = output_keys
        self.size = size
        self.key = key
        self.deadline = deadline

    def split(self, sizes: Sequence[int]) -> Sequence[_Unit]:
        raise NotImplementedError

    def request_size(self) -> int | None:
        """The whole request's rows, reported once per request (metrics); None for the
        later parts of a split request."""
        return self.size

    def cancelled(self) -> bool:
        raise NotImplementedError

    def succeed(self, outputs: Outputs) -> None:
        raise NotImplementedError

    def fail(self, error: ServingError) -> None:
        raise NotImplementedError


class _Request(_Unit):
    """One call. Completes ``future`` exactly once; ``run`` callers block on ``wait``."""

    __slots__ = ("_error", "_parts", "_parts_left", "_parts_lock", "future")

    def __init__(
        self,
        inputs: Mapping[str, np.ndarray],
        output_keys: Sequence[str],
        size: int,
        key: Hashable,
        deadline: float | None,
    ) -> None:
        super().__init__(inputs, output_keys, size, key, deadline)
        self.future: Future[Outputs] = Future()
        self._error: ServingError | None = None
        self._parts: list[Outputs | None] = []
        self._parts_left = 0
        self._parts_lock: threading.Lock | None = None

    def wait(self) -> Outputs:
        """Block until completed or past the deadline (then DeadlineExceeded)."""
        timeout = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
        try:
            return self.future.result(timeout)
        except FutureTimeout:
            self.future.cancel()
            raise DeadlineExceeded(DEADLINE_MESSAGE) from None

    def cancelled(self) -> bool:
        """The caller gave up (deadline, or an awaiting coroutine was cancelled)."""
        return self.future.cancelled()

    def succeed(self, outputs: Outputs) -> None:
        with contextlib.suppress(InvalidStateError):  # cancelled meanwhile
            self.future.set_result(outputs)

    def fail(self, error: ServingError) -> None:
        with contextlib.suppress(InvalidStateError):
            self.future.set_exception(error)

    def split(self, sizes: Sequence[int]) -> Sequence[_Unit]:
        self._parts = [None] * len(sizes)
        self._parts_left = len(sizes)
        self._parts_lock = threading.Lock()
        parts: list[_Unit] = []
        start = 0
        for index, size in enumerate(sizes):
            rows = {name: tensor[start : start + size] for name, tensor in self.inputs.items()}
            parts.append(_Part(self, index, rows, size))
            start += size
        return parts

    def part_done(self, index: int, outputs: Outputs | None, error: ServingError | None) -> None:
        """Record one part; the last one completes the request."""
        assert self._parts_lock is not None
        with self._parts_lock:
            if error is not None and self._error is None:
                self._error = error
            self._parts[index] = outputs
            self._parts_left -= 1
            if self._parts_left:
                return
        if self._error is not None:
            self.fail(self._error)
            return
        self.succeed(self._join_parts())

    def _join_parts(self) -> Outputs:
        parts = [part for part in self._parts if part is not None]
        return {key: np.concatenate([p[key] for p in parts]) for key in self.output_keys}


class _Part(_Unit):
    """Rows ``[start, start + size)`` of a split request."""

    __slots__ = ("_index", "_parent")

    def __init__(
        self, parent: _Request, index: int, inputs: Mapping[str, np.ndarray], size: int
    ) -> None:
        super().__init__(inputs, parent.output_keys, size, parent.key, parent.deadline)
        self._parent = parent
        self._index = index

    def split(self, sizes: Sequence[int]) -> Sequence[_Unit]:
        raise Internal("A split batching task cannot be split again")

    def request_size(self) -> int | None:
        return self._parent.size if self._index == 0 else None

    def cancelled(self) -> bool:
        return self._parent.cancelled()

    def succeed(self, outputs: Outputs) -> None:
        self._parent.part_done(self._index, outputs, None)

    def fail(self, error: ServingError) -> None:
        self._parent.part_done(self._index, None, error)


class BatchingServable:
    """A Servable that batches ``run`` calls of ``inner`` on a shared scheduler.

    Thread-safe like any Servable: ``run`` blocks the calling thread until its
    rows are ready, its deadline (``timeout_s``) passes (DeadlineExceeded; the
    task is dropped if not yet running), or the batch fails (every task of the
    batch gets the error). ``close`` must follow the last ``run``: it drains and
    removes this servable's queues, then closes ``inner``.
    """

    def __init__(
        self,
        inner: Servable,
        scheduler: SharedBatchScheduler,
        options: BatchingOptions,
        model: str,
        version: int,
        observer: BatchObserver | None = None,
    ) -> None:
        self._inner = inner
        self._options = options
        self._model = model
        self._version = version
        self._observer = SafeObserver(observer) if observer is not None else None
        self._queues: dict[str, BatchQueue[_Unit]] = {
            key: self._add_queue(scheduler, key, observer) for key in inner.signatures
        }

    def _add_queue(
        self, scheduler: SharedBatchScheduler, signature: str, observer: BatchObserver | None
    ) -> BatchQueue[_Unit]:
        def process(units: list[_Unit]) -> None:
            self._process(signature, units)

        return scheduler.add_queue(
            self._options, process, model=self._model, signature=signature, observer=observer
        )

    @property
    def signatures(self) -> Mapping[str, SignatureSpec]:
        return self._inner.signatures

    def signature_def_map(self) -> bytes:
        return self._inner.signature_def_map()

    @property
    def inline_ok(self) -> bool:
        """Never: ``run`` waits for the batch to fill or time out."""
        return False

    @property
    def allowed_batch_sizes(self) -> tuple[int, ...]:
        """This servable's allowed batch sizes (its per-model file's, else the global ones)."""
        return self._options.allowed_batch_sizes

    def run(
        self,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_keys: Sequence[str],
        timeout_s: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Batch this call with concurrent ones; ``timeout_s`` None or <= 0: no deadline."""
        request = self._request(signature, inputs, output_keys, timeout_s)
        if request is None:
            return self._inner.run(signature, inputs, output_keys, timeout_s)
        return request.wait()

    def schedule(
        self,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_keys: Sequence[str],
        timeout_s: float | None = None,
    ) -> Future[Outputs] | None:
        """Queue the call and return its future, blocking no thread (None: use ``run``).

        Cancelling the future before its batch runs drops the task (a caller's deadline).
        """
        request = self._request(signature, inputs, output_keys, timeout_s)
        return request.future if request is not None else None

    def _request(
        self,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_keys: Sequence[str],
        timeout_s: float | None,
    ) -> _Request | None:
        queue = self._queues.get(signature)
        size = _batch_size(inputs)
        if queue is None or not size:
            return None
        deadline = time.monotonic() + timeout_s if timeout_s and timeout_s > 0 else None
        key = padding.batch_key(inputs, self._options.pad_variable_length_inputs)
        request = _Request(inputs, tuple(output_keys), size, key, deadline)
        queue.schedule(request)
        return request

    def num_enqueued_tasks(self, signature: str) -> int:
        """Tasks waiting in ``signature``'s queue (0 for an unknown signature)."""
        queue = self._queues.get(signature)
        return queue.num_enqueued_tasks if queue is not None else 0

    def close(self) -> None:
        """Drain and remove the queues, then close the inner servable."""
        for queue in self._queues.values():
            queue.close()
        self._inner.close()

    # -- batch thread --------------------------------------------------------

    def _process(self, signature: str, units: list[_Unit]) -> None:
        try:
            self._run_batch(signature, units)
        except ServingError as error:
            _fail_all(units, error)
        except Exception as exc:
            _fail_all(units, Internal(f"Batch processing failed: {type(exc).__name__}: {exc}"))

    def _run_batch(self, signature: str, units: list[_Unit]) -> None:
        timeout_s = _batch_timeout(units)
        sizes = [unit.size for unit in units]
        total = sum(sizes)
        padded = padding.padded_batch_size(total, self._options.allowed_batch_sizes)
        merged = padding.merge_inputs(
            [unit.inputs for unit in units], padded, self._options.pad_variable_length_inputs
        )
        if self._observer is not None:
            # TF Serving records each request's size once, before any splitting.
            requests = [n for unit in units if (n := unit.request_size()) is not None]
            self._observer.on_batch(self._model, signature, requests, padded, padded - total)
        start = time.perf_counter()
        outputs = self._inner.run(signature, merged, _union_keys(units), timeout_s)
        if self._observer is not None:
            micros = (time.perf_counter() - start) * 1e6
            self._observer.on_batch_run(self._model, self._version, padded, micros)
        for unit, rows in zip(units, padding.split_outputs(outputs, sizes, padded), strict=True):
            unit.succeed({key: rows[key] for key in unit.output_keys})


def _batch_size(inputs: Mapping[str, np.ndarray]) -> int:
    """Shared dim-0 size; 0 when the request cannot be batched (no inputs, a scalar)."""
    sizes = {tensor.shape[0] if tensor.ndim else -1 for tensor in inputs.values()}
    if not sizes or -1 in sizes:
        return 0
    if len(sizes) > 1:
        raise InvalidArgument(UNEQUAL_BATCH_SIZE_MESSAGE)
    return sizes.pop()


def _union_keys(units: Sequence[_Unit]) -> list[str]:
    return list(dict.fromkeys(key for unit in units for key in unit.output_keys))


def _batch_timeout(units: Sequence[_Unit]) -> float | None:
    """Time left until the latest deadline (TF Serving's rule); None if a unit has none."""
    deadlines = [unit.deadline for unit in units]
    if any(d is None for d in deadlines):
        return None
    remaining = max(d for d in deadlines if d is not None) - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceeded(DEADLINE_MESSAGE)
    return remaining


def _fail_all(units: Sequence[_Unit], error: ServingError) -> None:
    for unit in units:
        unit.fail(copy.copy(error))
