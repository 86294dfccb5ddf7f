"""A process-wide batch scheduler: one thread pool shared by many queues.

Semantics of TF's ``SharedBatchScheduler`` (``shared_batch_scheduler.h``):

- Each :class:`BatchQueue` (one per model, version and signature) collects
  tasks into batches of at most ``max_execution_batch_size`` rows. A task
  joins the open batch of its *batch key*; tasks with different keys never
  share a batch (each key has its own open batch, see ``padding.batch_key``).
  A batch that cannot take the next task, or is full, is closed.
- A batch is processed when it is closed, when its oldest task has waited
  ``batch_timeout_micros`` (0: as soon as a thread is free), or when its queue
  is being closed. Closed batches go first (FIFO), then open ones, oldest first.
- ``max_enqueued_batches`` bounds the batches waiting in a queue (closed plus
  open; batches being processed do not count). A task that would need one more
  batch is rejected with UNAVAILABLE; a task larger than ``max_batch_size`` with
  INVALID_ARGUMENT. With ``enable_large_batch_splitting`` a task is split to
  fill the open batch and then new batches, if the queue has room for all of it.
- Batch threads pick work round-robin across queues.

Concurrency: every method is thread-safe. One lock guards all queue state;
batches are processed outside it. ``BatchQueue.close`` and
``SharedBatchScheduler.shutdown`` block until pending work is done, so they must
not be called from a batch thread (e.g. from a process callback).
Time is ``time.monotonic`` only.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from tensorserve.config.batching import BatchingOptions
from tensorserve.errors import InvalidArgument, Unavailable

logger = logging.getLogger(__name__)

QUEUE_FULL_MESSAGE = "The batch scheduling queue to which this task was submitted is full"
QUEUE_CLOSED_MESSAGE = "The batch scheduling queue to which this task was submitted is closed"


class BatchObserver(Protocol):
    """Receives batching metrics. Implementations must be thread-safe and fast;
    they are called from request and batch threads, and whatever they raise is
    logged and dropped (see :class:`SafeObserver`)."""

    def on_batch(
        self,
        model: str,
        signature: str,
        task_sizes: Sequence[int],
        processed_size: int,
        padding_rows: int,
    ) -> None:
        """One batch about to run: request sizes, padded size, padding rows."""
        ...

    def on_batch_run(self, model: str, version: int, processed_size: int, micros: float) -> None:
        """One batch of ``processed_size`` rows ran in ``micros`` (the runtime call)."""
        ...

    def on_queue_latency(self, thread_pool_name: str, micros: float) -> None:
        """One task's time from enqueue to the start of its batch's processing."""
        ...

    def on_queue_depth(self, model: str, signature: str, depth: int) -> None:
        """Tasks now waiting in a queue, after an enqueue or a dequeue. Reported outside
        the scheduler lock, so concurrent reports may arrive out of order."""
        ...


class SafeObserver:
    """Wraps a :class:`BatchObserver` so that its exceptions are logged, never raised."""

    __slots__ = ("_inner",)

    def __init__(self, inner: BatchObserver) -> None:
        self._inner = inner

    def on_batch(
        self,
        model: str,
        signature: str,
        task_sizes: Sequence[int],
        processed_size: int,
        padding_rows: int,
    ) -> None:
        try:
            self._inner.on_batch(model, signature, task_sizes, processed_size, padding_rows)
        except Exception:
            logger.exception("BatchObserver.on_batch failed")

    def on_queue_latency(self, thread_pool_name: str, micros: float) -> None:
        try:
            self._inner.on_queue_latency(thread_pool_name, micros)
        except Exception:
            logger.exception("BatchObserver.on_queue_latency failed")

    def on_queue_depth(self, model: str, signature: str, depth: int) -> None:
        try:
            self._inner.on_queue_depth(model, signature, depth)
        except Exception:
            logger.exception("BatchObserver.on_queue_depth failed")

    def on_batch_run(self, model: str, version: int, processed_size: int, micros: float) -> None:
        try:
            self._inner.on_batch_run(model, version, processed_size, micros)
        except Exception:
            logger.exception("BatchObserver.on_batch_run failed")


T = TypeVar("T", bound="Task")


class Task(Protocol):
    """What a queue schedules. ``size`` (rows, >= 1) and ``key`` never change."""

    @property
    def size(self) -> int: ...

    @property
    def key(self) -> Hashable: ...

    def split(self: T, sizes: Sequence[int]) -> Sequence[T]:
        """Pieces of these sizes (summing to ``size``), same key, in row order."""
        ...

    def cancelled(self) -> bool:
        """True when nobody waits for the result any more: dropped when dequeued."""
        ...


class _Batch(Generic[T]):
    __slots__ = ("key", "size", "start", "tasks")

    def __init__(self, key: Hashable, start: float) -> None:
        self.key = key
        self.start = start
        self.size = 0
        self.tasks: list[tuple[T, float]] = []

    def add(self, task: T, now: float) -> None:
        self.tasks.append((task, now))
        self.size += task.size


class BatchQueue(Generic[T]):
    """One queue of the shared scheduler; created by :meth:`SharedBatchScheduler.add_queue`.

    ``process_batch`` runs on a batch thread with the batch's live tasks, in
    enqueue order; it must complete every task and should not raise (what it
    raises is logged).
    """

    def __init__(
        self,
        scheduler: SharedBatchScheduler,
        options: BatchingOptions,
        process_batch: Callable[[list[T]], None],
        model: str,
        signature: str,
        observer: BatchObserver | None,
    ) -> None:
        self._scheduler = scheduler
        self._lock = scheduler._lock
        self._options = options
        self._limit = options.max_execution_batch_size
        self._timeout_s = options.batch_timeout_micros / 1e6
        self._process_batch = process_batch
        self._model = model
        self._signature = signature
        self._observer = SafeObserver(observer) if observer is not None else None
        self._closed_batches: collections.deque[_Batch[T]] = collections.deque()
        self._open: dict[Hashable, _Batch[T]] = {}
        self._num_tasks = 0
        self._in_flight = 0
        self._closed = False

    @property
    def num_enqueued_tasks(self) -> int:
        """Tasks (pieces of split tasks count one each) waiting, not yet processing."""
        with self._lock:
            return self._num_tasks

    def schedule(self, task: T) -> None:
        """Enqueue ``task``; raises InvalidArgument (too large) or Unavailable (full, closed)."""
        limit = self._options.max_batch_size
        if task.size > limit:
            raise InvalidArgument(
                f"Task size {task.size} is larger than maximum input batch size {limit}"
            )
        with self._lock:
            if self._closed:
                raise Unavailable(QUEUE_CLOSED_MESSAGE)
            if self._enqueue_locked(task, time.monotonic()):
                self._scheduler._work.notify()
            depth = self._num_tasks
        if self._observer is not None:
            self._observer.on_queue_depth(self._model, self._signature, depth)

    def close(self) -> None:
        """Stop accepting tasks, process what is pending at once (no timeout
        wait), wait until done, then leave the scheduler. Idempotent."""
        with self._lock:
            self._closed = True
            self._scheduler._work.notify_all()
            while not self._drained_locked():
                self._scheduler._idle.wait()
            self._scheduler._remove_locked(self)

    # -- enqueue (lock held) ------------------------------------------------

    def _enqueue_locked(self, task: T, now: float) -> bool:
        """Add ``task`` (or its pieces); True when a batch thread should look again."""
        if self._options.enable_large_batch_splitting:
            pieces = self._split_locked(task)
        else:
            self._check_room_locked(task)
            pieces = [task]
        wake = self._timeout_s == 0
        for piece in pieces:
            wake = self._add_locked(piece, now) or wake
        return wake

    def _num_batches(self) -> int:
        return len(self._closed_batches) + len(self._open)

    def _check_room_locked(self, task: T) -> None:
        batch = self._open.get(task.key)
        if batch is not None and batch.size + task.size <= self._limit:
            return
        enqueued, bound = self._num_batches(), self._options.max_enqueued_batches
        if enqueued >= bound:
            raise Unavailable(
                f"{QUEUE_FULL_MESSAGE}; currently {enqueued} batches enqueued and "
                f"max_enqueued_batches is {bound}"
            )

    def _split_locked(self, task: T) -> Sequence[T]:
        batch = self._open.get(task.key)
        open_size = batch.size if batch is not None else 0
        # Count an (empty) open batch for this key, as TF's queue always has one.
        enqueued = self._num_batches() + (0 if batch is not None else 1)
        bound = self._options.max_enqueued_batches
        capacity = (bound - enqueued) * self._limit + (self._limit - open_size)
        if task.size > capacity:
            raise Unavailable(
                f"{QUEUE_FULL_MESSAGE}; task size is {task.size} but scheduling capacity is "
                f"only {capacity} (num_enqueued_batches={enqueued}, max_enqueued_batches="
                f"{bound}, open_batch_size={open_size}, max_execution_batch_size={self._limit})"
            )
        room = self._limit - open_size if batch is not None else 0
        sizes = _split_sizes(task.size, room, self._limit)
        return [task] if len(sizes) == 1 else task.split(sizes)

    def _add_locked(self, task: T, now: float) -> bool:
        wake = False
        batch = self._open.get(task.key)
        if batch is not None and batch.size + task.size > self._limit:
            self._close_batch_locked(batch)
            batch, wake = None, True
        if batch is None:
            batch = self._open[task.key] = _Batch(task.key, now)
            wake = True
        batch.add(task, now)
        self._num_tasks += 1
        if batch.size >= self._limit:
            self._close_batch_locked(batch)
            wake = True
        return wake

    def _close_batch_locked(self, batch: _Batch[T]) -> None:
        del self._open[batch.key]
        self._closed_batches.append(batch)

    # -- dequeue (lock held) ------------------------------------------------

    def _take_locked(self, now: float) -> list[tuple[T, float]] | None:
        """The next ready batch's live tasks, or None; counts it as in flight."""
        while (batch := self._pop_ready_locked(now)) is not None:
            self._num_tasks -= len(batch.tasks)
            live = [entry for entry in batch.tasks if not entry[0].cancelled()]
            if live:
                self._in_flight += 1
                return live
            self._notify_if_drained_locked()
        return None

    def _pop_ready_locked(self, now: float) -> _Batch[T] | None:
        if self._closed_batches:
            return self._closed_batches.popleft()
        for batch in self._open.values():
            if self._closed or now >= batch.start + self._timeout_s:
                del self._open[batch.key]
                return batch
        return None

    def _deadline_locked(self) -> float | None:
        """When the oldest open batch times out; None without open batches."""
        if not self._open:
            return None
        return min(batch.start for batch in self._open.values()) + self._timeout_s

    def _has_pending_locked(self) -> bool:
        return bool(self._closed_batches or self._open)

    def _drained_locked(self) -> bool:
        return not self._has_pending_locked() and self._in_flight == 0

    def _finish_locked(self) -> None:
        self._in_flight -= 1
        self._notify_if_drained_locked()

    def _notify_if_drained_locked(self) -> None:
        if self._closed and self._drained_locked():
            self._scheduler._idle.notify_all()

    # -- processing (no lock) -----------------------------------------------

    def _process(self, entries: list[tuple[T, float]]) -> None:
        if self._observer is not None:
            self._observe_dequeue(entries)
        try:
            self._process_batch([task for task, _ in entries])
        except Exception:
            logger.exception("Batch processing callback for %s failed", self._model)

    def _observe_dequeue(self, entries: list[tuple[T, float]]) -> None:
        assert self._observer is not None
        now = time.monotonic()
        pool = self._scheduler.thread_pool_name
        for _, enqueued_at in entries:
            self._observer.on_queue_latency(pool, (now - enqueued_at) * 1e6)
        self._observer.on_queue_depth(self._model, self._signature, self._num_tasks)


def _split_sizes(size: int, open_room: int, limit: int) -> list[int]:
    """Piece sizes: fill the open batch's room first, then whole batches of ``limit``."""
    sizes: list[int] = []
    if open_room > 0:
        sizes.append(min(open_room, size))
        size -= sizes[0]
    while size > 0:
        sizes.append(min(size, limit))
        size -= sizes[-1]
    return sizes


class SharedBatchScheduler:
    """``num_batch_threads`` daemon threads serving every queue added to it.

    Threads start in the constructor. Create one per process (from the global
    batching options) and share it between all batching servables.
    """

    def __init__(self, num_batch_threads: int, thread_pool_name: str = "batch_threads") -> None:
        if num_batch_threads < 1:
            raise ValueError(f"num_batch_threads must be positive; was {num_batch_threads}")
        self.thread_pool_name = thread_pool_name
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)
        self._idle = threading.Condition(self._lock)
        self._queues: list[BatchQueue[Any]] = []
        self._next = 0
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._run, name=f"{thread_pool_name}_{i}", daemon=True)
            for i in range(num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    @classmethod
    def from_options(cls, options: BatchingOptions) -> SharedBatchScheduler:
        """A scheduler with the options' ``num_batch_threads`` and ``thread_pool_name``."""
        return cls(options.num_batch_threads, options.thread_pool_name)

    def add_queue(
        self,
        options: BatchingOptions,
        process_batch: Callable[[list[T]], None],
        *,
        model: str,
        signature: str,
        observer: BatchObserver | None = None,
    ) -> BatchQueue[T]:
        """A new queue with its own batching options; raises Unavailable after shutdown."""
        queue: BatchQueue[T] = BatchQueue(self, options, process_batch, model, signature, observer)
        with self._lock:
            if self._stopping:
                raise Unavailable("The batch scheduler is shut down")
            self._queues.append(queue)
        return queue

    def shutdown(self) -> None:
        """Close every queue, finish all pending batches, stop the threads. Idempotent."""
        with self._lock:
            self._stopping = True
            for queue in self._queues:
                queue._closed = True
            self._work.notify_all()
        for thread in self._threads:
            thread.join()
        with self._lock:
            self._queues.clear()
            self._idle.notify_all()

    def _remove_locked(self, queue: BatchQueue[Any]) -> None:
        if queue not in self._queues:
            return
        index = self._queues.index(queue)
        del self._queues[index]
        if index < self._next:
            self._next -= 1
        if self._next >= len(self._queues):
            self._next = 0

    def _run(self) -> None:
        while True:
            with self._lock:
                work = self._wait_for_work_locked()
            if work is None:
                return
            queue, entries = work
            queue._process(entries)
            with self._lock:
                queue._finish_locked()

    def _wait_for_work_locked(self) -> tuple[BatchQueue[Any], list[tuple[Any, float]]] | None:
        while True:
            now = time.monotonic()
            work = self._next_work_locked(now)
            if work is not None:
                if any(queue._has_pending_locked() for queue in self._queues):
                    self._work.notify()  # hand deadline watching / more work to a peer
                return work
            if self._stopping:
                return None
            self._work.wait(self._wait_timeout_locked(now))

    def _next_work_locked(
        self, now: float
    ) -> tuple[BatchQueue[Any], list[tuple[Any, float]]] | None:
        count = len(self._queues)
        for offset in range(count):
            index = (self._next + offset) % count
            queue = self._queues[index]
            entries = queue._take_locked(now)
            if entries is not None:
                self._next = (index + 1) % count
                return queue, entries
        return None

    def _wait_timeout_locked(self, now: float) -> float | None:
        deadlines = [d for q in self._queues if (d := q._deadline_locked()) is not None]
        return max(0.0, min(deadlines) - now) if deadlines else None
