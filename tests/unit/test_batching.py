"""Server-side batching: scheduler semantics, padding, and BatchingServable end to end.

Synchronisation is by events and observer-reported queue depths, never sleeps:
a "held" fake servable blocks the only batch thread so that later requests
queue up together, then is released.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from tensorserve.batching import padding
from tensorserve.batching.batcher import BatchingServable
from tensorserve.batching.scheduler import BatchQueue, SafeObserver, SharedBatchScheduler
from tensorserve.config.batching import BatchingOptions
from tensorserve.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    Unavailable,
)
from tensorserve.servable import SignatureSpec, TensorSpec

SAFETY_S = 10.0  # only bounds a hang; never a timing assertion
SIG = "serving_default"


# -- fakes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    inputs: dict[str, np.ndarray]
    output_keys: tuple[str, ...]
    thread: str
    timeout_s: float | None


def compute(inputs: Mapping[str, np.ndarray], output_keys: Sequence[str]) -> dict[str, np.ndarray]:
    """The fake model: y = 2x + id (row-specific), z = 10 id, echo = x."""
    x, ids = inputs["x"], inputs["id"]
    every = {"y": 2 * x + ids[:, None].astype(x.dtype), "z": ids * 10, "echo": x}
    return {key: every[key] for key in output_keys}


def echo(inputs: Mapping[str, np.ndarray], output_keys: Sequence[str]) -> dict[str, np.ndarray]:
    """A fake model returning its input ``x`` for every requested output."""
    return {key: inputs["x"] for key in output_keys}


def _spec(shape: tuple[int, ...] | None = None) -> TensorSpec:
    return TensorSpec("t:0", 1, shape)


class FakeServable:
    """Records every batch it runs; ``hold()`` makes the next run block until ``release()``."""

    inline_ok = True
    allowed_batch_sizes: tuple[int, ...] = ()

    def schedule(self, *_args: object) -> None:
        return None  # no queue of its own

    def __init__(self, fn: Callable[..., dict[str, np.ndarray]] = compute) -> None:
        self.fn = fn
        self.calls: list[Call] = []
        self.closed = False
        self.error: Exception | None = None
        self._gate = threading.Event()
        self._gate.set()
        self.entered = threading.Event()
        outputs = {k: _spec() for k in ("y", "z", "echo")}
        spec = SignatureSpec(
            SIG, "tensorflow/serving/predict", {"x": _spec(), "id": _spec()}, outputs
        )
        self._signatures = {SIG: spec}

    @property
    def signatures(self) -> Mapping[str, SignatureSpec]:
        return self._signatures

    def signature_def_map(self) -> bytes:
        return b"sigdefs"

    def run(
        self,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_keys: Sequence[str],
        timeout_s: float | None = None,
    ) -> dict[str, np.ndarray]:
        if signature not in self._signatures:
            raise InvalidArgument(f"no signature {signature}")
        name = threading.current_thread().name
        self.calls.append(Call(dict(inputs), tuple(output_keys), name, timeout_s))
        self.entered.set()
        assert self._gate.wait(SAFETY_S)
        if self.error is not None:
            raise self.error
        return self.fn(inputs, output_keys)

    def close(self) -> None:
        self.closed = True

    def hold(self) -> None:
        self._gate.clear()
        self.entered.clear()

    def release(self) -> None:
        self._gate.set()

    def batch_sizes(self) -> list[int]:
        return [next(iter(call.inputs.values())).shape[0] for call in self.calls]


class Recorder:
    """A BatchObserver that lets tests wait for queue depths."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, str, tuple[int, ...], int, int]] = []
        self.latencies: list[tuple[str, float]] = []
        self.depths: list[int] = []
        self.runs: list[tuple[str, int, int]] = []
        self._cond = threading.Condition()

    def on_batch(
        self, model: str, signature: str, task_sizes: Sequence[int], processed: int, pad: int
    ) -> None:
        self.batches.append((model, signature, tuple(task_sizes), processed, pad))

    def on_queue_latency(self, thread_pool_name: str, micros: float) -> None:
        self.latencies.append((thread_pool_name, micros))

    def on_batch_run(self, model: str, version: int, processed: int, micros: float) -> None:
        self.runs.append((model, version, processed))

    def on_queue_depth(self, model: str, signature: str, depth: int) -> None:
        with self._cond:
            self.depths.append(depth)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Re-check ``predicate`` after every depth report (reports may arrive out of order)."""
        with self._cond:
            assert self._cond.wait_for(predicate, SAFETY_S)


def request(ids: Sequence[int], width: int = 3) -> dict[str, np.ndarray]:
    id_array = np.asarray(ids, dtype=np.int64)
    x = np.arange(len(ids) * width, dtype=np.float32).reshape(len(ids), width) + id_array[:, None]
    return {"x": x, "id": id_array}


class Caller:
    """Runs ``servable.run`` on a thread and keeps the result or the error."""

    def __init__(self, servable: BatchingServable, inputs: Mapping[str, np.ndarray], **kw: Any):
        self.result: dict[str, np.ndarray] | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._go, args=(servable, inputs, kw), daemon=True)
        self._thread.start()

    def _go(self, servable: BatchingServable, inputs: Mapping[str, np.ndarray], kw: Any) -> None:
        keys = kw.pop("output_keys", ["y", "z"])
        try:
            self.result = servable.run(SIG, inputs, keys, **kw)
        except BaseException as exc:
            self.error = exc

    def join(self) -> dict[str, np.ndarray]:
        self._thread.join(SAFETY_S)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


@dataclass
class Env:
    scheduler: SharedBatchScheduler
    inner: FakeServable
    observer: Recorder
    made: list[BatchingServable] = field(default_factory=list)

    def servable(self, **options: Any) -> BatchingServable:
        opts = BatchingOptions(num_batch_threads=1, **options)
        made = BatchingServable(self.inner, self.scheduler, opts, "m", 1, self.observer)
        self.made.append(made)
        return made

    def wait_queued(self, servable: BatchingServable, count: int) -> None:
        """Until ``count`` tasks wait in the signature's queue (checked on each report)."""
        self.observer.wait_for(lambda: servable.num_enqueued_tasks(SIG) == count)

    def block_thread(self, servable: BatchingServable) -> Caller:
        """Occupy the only batch thread with a 1-row request (id -1) held in the inner run."""
        self.inner.hold()
        blocker = Caller(servable, request([-1]))
        assert self.inner.entered.wait(SAFETY_S)
        return blocker


@pytest.fixture
def env() -> Iterator[Env]:
    scheduler = SharedBatchScheduler(1, "test_pool")
    made = Env(scheduler, FakeServable(), Recorder())
    yield made
    made.inner.release()
    scheduler.shutdown()


def assert_answers(result: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]) -> None:
    expected = compute(inputs, list(result))
    assert result.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(result[key], value)
        assert result[key].dtype == value.dtype


# -- (a) correctness under concurrency ------------------------------------------


def test_concurrent_requests_are_batched_and_answered_exactly(env: Env) -> None:
    servable = env.servable(max_batch_size=64)
    blocker = env.block_thread(servable)
    rng = random.Random(7)
    inputs = [request(range(100 * i, 100 * i + rng.randint(1, 8))) for i in range(32)]
    start = threading.Barrier(32)

    def fire(i: int) -> dict[str, np.ndarray]:
        start.wait(SAFETY_S)
        return servable.run(SIG, inputs[i], ["y", "z"])

    results: dict[int, dict[str, np.ndarray]] = {}
    threads = [threading.Thread(target=lambda i=i: results.update({i: fire(i)})) for i in range(32)]
    for thread in threads:
        thread.start()
    env.wait_queued(servable, 32)
    env.inner.release()
    for thread in threads:
        thread.join(SAFETY_S)
    blocker.join()
    for i in range(32):
        assert_answers(results[i], inputs[i])
    sizes = env.inner.batch_sizes()[1:]
    assert sum(sizes) == sum(len(r["id"]) for r in inputs)
    assert len(sizes) < 32 and max(sizes) <= 64
    assert all(call.thread.startswith("test_pool_") for call in env.inner.calls)


def test_batches_are_filled_in_arrival_order(env: Env) -> None:
    servable = env.servable(max_batch_size=4)
    blocker = env.block_thread(servable)
    callers = []
    for n, ids in enumerate(([1, 2], [3], [4, 5], [6])):
        callers.append(Caller(servable, request(ids)))
        env.wait_queued(servable, n + 1)
    env.inner.release()
    for caller, ids in zip(callers, ([1, 2], [3], [4, 5], [6]), strict=True):
        assert_answers(caller.join(), request(ids))
    blocker.join()
    assert [list(c.inputs["id"]) for c in env.inner.calls[1:]] == [[1, 2, 3], [4, 5, 6]]


# -- (b) queue bound --------------------------------------------------------------


def test_full_queue_is_unavailable_with_tf_message(env: Env) -> None:
    servable = env.servable(max_batch_size=4, max_enqueued_batches=1)
    blocker = env.block_thread(servable)
    waiting = Caller(servable, request([1, 2, 3]))
    env.wait_queued(servable, 1)
    with pytest.raises(Unavailable) as info:
        servable.run(SIG, request([4, 5]), ["y"])
    assert str(info.value) == (
        "The batch scheduling queue to which this task was submitted is full; "
        "currently 1 batches enqueued and max_enqueued_batches is 1"
    )
    assert_answers(waiting_result(env, waiting, blocker), request([1, 2, 3]))


def waiting_result(env: Env, waiting: Caller, blocker: Caller) -> dict[str, np.ndarray]:
    env.inner.release()
    blocker.join()
    return waiting.join()


def test_task_that_fits_the_open_batch_is_accepted_when_bound_reached(env: Env) -> None:
    servable = env.servable(max_batch_size=4, max_enqueued_batches=1)
    blocker = env.block_thread(servable)
    first = Caller(servable, request([1, 2]))
    env.wait_queued(servable, 1)
    second = Caller(servable, request([3, 4]))
    env.wait_queued(servable, 2)
    env.inner.release()
    blocker.join()
    assert_answers(first.join(), request([1, 2]))
    assert_answers(second.join(), request([3, 4]))
    assert env.inner.batch_sizes() == [1, 4]


# -- (c) task size limit and large batch splitting --------------------------------


def test_task_larger_than_max_batch_size_is_invalid(env: Env) -> None:
    servable = env.servable(max_batch_size=4)
    with pytest.raises(InvalidArgument) as info:
        servable.run(SIG, request(range(5)), ["y"])
    assert str(info.value) == "Task size 5 is larger than maximum input batch size 4"
    assert env.inner.calls == []


def test_large_batch_splitting_reassembles(env: Env) -> None:
    servable = env.servable(
        max_batch_size=10, enable_large_batch_splitting=True, max_execution_batch_size=4
    )
    blocker = env.block_thread(servable)
    small = Caller(servable, request([1, 2, 3]))
    env.wait_queued(servable, 1)
    big = Caller(servable, request(range(10, 17)))
    env.wait_queued(servable, 4)
    env.inner.release()
    blocker.join()
    assert_answers(small.join(), request([1, 2, 3]))
    assert_answers(big.join(), request(range(10, 17)))
    assert [list(c.inputs["id"]) for c in env.inner.calls[1:]] == [
        [1, 2, 3, 10],
        [11, 12, 13, 14],
        [15, 16],
    ]


def test_split_task_over_capacity_is_unavailable(env: Env) -> None:
    servable = env.servable(
        max_batch_size=10,
        enable_large_batch_splitting=True,
        max_execution_batch_size=4,
        max_enqueued_batches=2,
    )
    blocker = env.block_thread(servable)
    waiting = Caller(servable, request([1]))
    env.wait_queued(servable, 1)
    with pytest.raises(Unavailable) as info:
        servable.run(SIG, request(range(10, 18)), ["y"])
    assert str(info.value) == (
        "The batch scheduling queue to which this task was submitted is full; task size is 8 "
        "but scheduling capacity is only 7 (num_enqueued_batches=1, max_enqueued_batches=2, "
        "open_batch_size=1, max_execution_batch_size=4)"
    )
    assert_answers(waiting_result(env, waiting, blocker), request([1]))


def test_error_in_one_part_fails_the_split_request(env: Env) -> None:
    def fail_on_second_part(inputs: Mapping[str, np.ndarray], keys: Sequence[str]) -> Any:
        if 3 in inputs["id"]:
            raise InvalidArgument("part failed")
        return compute(inputs, keys)

    env.inner.fn = fail_on_second_part
    servable = env.servable(
        max_batch_size=6, enable_large_batch_splitting=True, max_execution_batch_size=2
    )
    with pytest.raises(InvalidArgument, match=r"^part failed$"):
        servable.run(SIG, request(range(6)), ["y"])
    assert env.inner.batch_sizes() == [2, 2, 2]


# -- (d) allowed batch sizes ------------------------------------------------------


def test_batches_are_padded_to_allowed_sizes(env: Env) -> None:
    servable = env.servable(max_batch_size=8, allowed_batch_sizes=(2, 4, 8))
    blocker = env.block_thread(servable)
    first = Caller(servable, request([1]))
    env.wait_queued(servable, 1)
    second = Caller(servable, request([2, 3]))
    env.wait_queued(servable, 2)
    env.inner.release()
    blocker.join()
    assert_answers(first.join(), request([1]))
    assert_answers(second.join(), request([2, 3]))
    # blocker: 1 row padded to 2; then 3 rows padded to 4 with the last task's first row.
    assert env.inner.batch_sizes() == [2, 4]
    merged = env.inner.calls[1].inputs
    assert list(merged["id"]) == [1, 2, 3, 2]
    np.testing.assert_array_equal(merged["x"][3], request([2, 3])["x"][0])
    assert env.observer.batches[1] == ("m", SIG, (1, 2), 4, 1)


def test_single_request_padded_up(env: Env) -> None:
    servable = env.servable(max_batch_size=8, allowed_batch_sizes=(2, 4, 8))
    assert_answers(servable.run(SIG, request(range(5)), ["y", "z"]), request(range(5)))
    assert env.inner.batch_sizes() == [8]


def test_padded_batch_size() -> None:
    assert padding.padded_batch_size(3, (2, 4, 8)) == 4
    assert padding.padded_batch_size(4, (2, 4, 8)) == 4
    assert padding.padded_batch_size(9, (2, 4, 8)) == 9
    assert padding.padded_batch_size(3, ()) == 3


# -- (e) variable-length padding --------------------------------------------------


def test_variable_length_inputs_are_padded_with_each_tasks_first_element(env: Env) -> None:
    env.inner.fn = echo
    servable = env.servable(max_batch_size=8, pad_variable_length_inputs=True)
    blocker = env.block_thread(servable)
    a = {"x": np.array([[5.0, 6.0]], np.float32), "id": np.array([1])}
    b = {"x": np.array([[7.0, 8.0, 9.0], [1.0, 2.0, 3.0]], np.float32), "id": np.array([2, 3])}
    first = Caller(servable, a, output_keys=["echo"])
    env.wait_queued(servable, 1)
    second = Caller(servable, b, output_keys=["echo"])
    env.wait_queued(servable, 2)
    env.inner.release()
    blocker.join()
    np.testing.assert_array_equal(first.join()["echo"], [[5.0, 6.0, 5.0]])
    np.testing.assert_array_equal(second.join()["echo"], b["x"])
    assert env.inner.calls[1].inputs["x"].shape == (3, 3)


def test_length_padding_pads_every_inner_dimension_at_the_end() -> None:
    a = np.array([[[1, 2]]], np.int32)  # (1, 1, 2)
    b = np.zeros((1, 2, 1), np.int32)
    merged = padding.merge_inputs([{"t": a}, {"t": b}], 2, True)["t"]
    np.testing.assert_array_equal(merged[0], [[1, 2], [1, 1]])
    np.testing.assert_array_equal(merged[1], [[0, 0], [0, 0]])


def test_length_padding_of_strings() -> None:
    a = np.array([[b"a"]], dtype=object)
    b = np.array([[b"b", b"c"]], dtype=object)
    merged = padding.merge_inputs([{"s": a}, {"s": b}], 3, True)["s"]
    assert merged.tolist() == [[b"a", b"a"], [b"b", b"c"], [b"b", b"c"]]


def test_length_padding_rejects_an_empty_tensor() -> None:
    empty = np.zeros((1, 0), np.float32)
    with pytest.raises(
        InvalidArgument, match=r"^Got empty tensor in batch of non-empty tensors\.$"
    ):
        padding.merge_inputs([{"t": empty}, {"t": np.ones((1, 2), np.float32)}], 2, True)


def test_batch_key_with_length_padding_keeps_rank_and_dtype() -> None:
    key = padding.batch_key
    assert key({"t": np.zeros((1, 2))}, True) == key({"t": np.zeros((3, 5))}, True)
    assert key({"t": np.zeros((1, 2))}, True) != key({"t": np.zeros((1, 2, 1))}, True)
    assert key({"t": np.zeros((1, 2))}, True) != key({"t": np.zeros((1, 2), np.float32)}, True)
    assert key({"t": np.zeros((1, 2))}, False) != key({"t": np.zeros((1, 3))}, False)
    assert key({"t": np.zeros((1, 2))}, False) == key({"t": np.zeros((4, 2))}, False)
    assert key({"a": np.zeros(1)}, False) != key({"b": np.zeros(1)}, False)


# -- (f) different shapes are not merged without padding ------------------------


def test_different_inner_shapes_go_to_different_batches(env: Env) -> None:
    servable = env.servable(max_batch_size=8)
    blocker = env.block_thread(servable)
    shapes = [([1, 2], 3), ([3], 4), ([4], 3), ([5], 4)]
    callers = []
    for n, (ids, width) in enumerate(shapes):
        callers.append(Caller(servable, request(ids, width)))
        env.wait_queued(servable, n + 1)
    env.inner.release()
    blocker.join()
    for caller, (ids, width) in zip(callers, shapes, strict=True):
        assert_answers(caller.join(), request(ids, width))
    batches = [(list(c.inputs["id"]), c.inputs["x"].shape[1]) for c in env.inner.calls[1:]]
    assert batches == [([1, 2, 4], 3), ([3, 5], 4)]


# -- (g) timeout flushes an under-full batch ------------------------------------


def test_timeout_flushes_an_underfull_batch(env: Env) -> None:
    servable = env.servable(max_batch_size=100, batch_timeout_micros=30_000)
    started = time.monotonic()
    assert_answers(servable.run(SIG, request([1]), ["y"]), request([1]))
    assert time.monotonic() - started >= 0.03  # a lower bound: it waited for the timeout
    assert env.inner.batch_sizes() == [1]


def test_full_batch_does_not_wait_for_timeout(env: Env) -> None:
    servable = env.servable(max_batch_size=2, batch_timeout_micros=60_000_000)
    assert_answers(servable.run(SIG, request([1, 2]), ["y"]), request([1, 2]))


def test_batch_filled_by_a_later_task_does_not_wait_for_timeout(env: Env) -> None:
    servable = env.servable(max_batch_size=3, batch_timeout_micros=60_000_000)
    first = Caller(servable, request([1]))
    env.wait_queued(servable, 1)
    second = Caller(servable, request([2, 3]))
    assert_answers(first.join(), request([1]))
    assert_answers(second.join(), request([2, 3]))
    assert env.inner.batch_sizes() == [3]


def test_close_flushes_pending_batches_without_waiting(env: Env) -> None:
    servable = env.servable(max_batch_size=100, batch_timeout_micros=60_000_000)
    callers = [Caller(servable, request([1]))]
    env.wait_queued(servable, 1)
    callers.append(Caller(servable, request([2, 3])))
    env.wait_queued(servable, 2)
    servable.close()
    for caller, ids in zip(callers, ([1], [2, 3]), strict=True):
        assert_answers(caller.join(), request(ids))
    assert env.inner.closed
    assert env.inner.batch_sizes() == [3]
    with pytest.raises(Unavailable):
        servable.run(SIG, request([4]), ["y"])


# -- (h) errors reach every task -------------------------------------------------


def test_inner_error_reaches_every_task_of_the_batch(env: Env) -> None:
    servable = env.servable(max_batch_size=8)
    blocker = env.block_thread(servable)
    env.inner.error = InvalidArgument("boom")
    callers = []
    for n in range(3):
        callers.append(Caller(servable, request([n])))
        env.wait_queued(servable, n + 1)
    env.inner.release()
    errors = []
    for caller in [blocker, *callers]:
        with pytest.raises(InvalidArgument, match=r"^boom$") as info:
            caller.join()
        errors.append(info.value)
    assert len({id(e) for e in errors}) == 4
    assert env.inner.batch_sizes() == [1, 3]


def test_unexpected_inner_exception_becomes_internal(env: Env) -> None:
    servable = env.servable()
    env.inner.error = ZeroDivisionError("oops")
    with pytest.raises(Internal, match="ZeroDivisionError: oops"):
        servable.run(SIG, request([1]), ["y"])


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (np.float32(1.0), "Batched output tensor has 0 dimensions"),
        (np.zeros(5), "Batched output tensor's 0th dimension does not equal the sum of the 0th "),
    ],
)
def test_unbatched_outputs_fail_the_batch(env: Env, output: np.ndarray, message: str) -> None:
    env.inner.fn = lambda inputs, keys: {"y": np.asarray(output)}
    servable = env.servable()
    with pytest.raises(FailedPrecondition, match=f"^{message}"):
        servable.run(SIG, request([1, 2]), ["y"])


# -- other BatchingServable behaviour ------------------------------------------


def test_unequal_dim0_is_invalid(env: Env) -> None:
    servable = env.servable()
    inputs: dict[str, np.ndarray] = {"x": np.zeros((2, 3), np.float32), "id": np.zeros(3, np.int64)}
    with pytest.raises(InvalidArgument) as info:
        servable.run(SIG, inputs, ["y"])
    assert str(info.value) == "Batching Run() input tensors must have equal 0th-dimension size"


def test_output_keys_union_and_subsets(env: Env) -> None:
    servable = env.servable(max_batch_size=8)
    blocker = env.block_thread(servable)
    y_only = Caller(servable, request([1]), output_keys=["y"])
    env.wait_queued(servable, 1)
    z_only = Caller(servable, request([2]), output_keys=["z"])
    env.wait_queued(servable, 2)
    env.inner.release()
    blocker.join()
    assert_answers(y_only.join(), request([1]))
    assert_answers(z_only.join(), request([2]))
    assert list(y_only.join()) == ["y"] and list(z_only.join()) == ["z"]
    assert env.inner.calls[1].output_keys == ("y", "z")


def test_unbatchable_requests_run_directly(env: Env) -> None:
    env.inner.fn = echo
    servable = env.servable()
    scalar: dict[str, np.ndarray] = {"x": np.array(3.0, np.float32), "id": np.array(1, np.int64)}
    np.testing.assert_array_equal(servable.run(SIG, scalar, ["echo"])["echo"], 3.0)
    empty = request([])
    assert servable.run(SIG, empty, ["echo"])["echo"].shape == (0, 3)
    with pytest.raises(InvalidArgument, match="no signature other"):
        servable.run("other", request([1]), ["y"])
    main = threading.current_thread().name
    assert [call.thread for call in env.inner.calls] == [main, main]


def test_string_inputs_are_batched(env: Env) -> None:
    env.inner.fn = echo
    servable = env.servable(max_batch_size=8)
    blocker = env.block_thread(servable)
    a = {"x": np.array([b"a", b"bb"], dtype=object), "id": np.array([1, 2])}
    b = {"x": np.array([b"ccc"], dtype=object), "id": np.array([3])}
    first = Caller(servable, a, output_keys=["echo"])
    env.wait_queued(servable, 1)
    second = Caller(servable, b, output_keys=["echo"])
    env.wait_queued(servable, 2)
    env.inner.release()
    blocker.join()
    assert first.join()["echo"].tolist() == [b"a", b"bb"]
    assert second.join()["echo"].tolist() == [b"ccc"]
    assert env.inner.batch_sizes() == [1, 3]


def test_deadline_exceeded_and_cancelled_task_is_dropped(env: Env) -> None:
    servable = env.servable(max_batch_size=8)
    blocker = env.block_thread(servable)
    with pytest.raises(DeadlineExceeded):
        servable.run(SIG, request([7]), ["y"], timeout_s=0.01)
    env.inner.release()
    blocker.join()
    assert_answers(servable.run(SIG, request([8]), ["y"]), request([8]))
    assert [list(c.inputs["id"]) for c in env.inner.calls] == [[-1], [8]]


def test_scheduled_calls_complete_their_futures_without_a_waiting_thread(env: Env) -> None:
    servable = env.servable(max_batch_size=64)
    blocker = env.block_thread(servable)
    inputs = [request(range(10 * i, 10 * i + 3)) for i in range(5)]
    futures = [servable.schedule(SIG, x, ["y", "z"]) for x in inputs]  # from this one thread
    env.wait_queued(servable, 5)
    env.inner.release()
    blocker.join()
    for future, x in zip(futures, inputs, strict=True):
        assert future is not None
        assert_answers(future.result(SAFETY_S), x)
    assert env.inner.batch_sizes()[1:] == [15]  # the five calls ran as one batch


def test_a_cancelled_scheduled_call_is_dropped(env: Env) -> None:
    servable = env.servable(max_batch_size=8)
    blocker = env.block_thread(servable)
    dropped = servable.schedule(SIG, request([7]), ["y"])
    kept = servable.schedule(SIG, request([8]), ["y"])
    assert dropped is not None and kept is not None
    assert dropped.cancel()
    env.inner.release()
    blocker.join()
    assert_answers(kept.result(SAFETY_S), request([8]))
    assert [list(c.inputs["id"]) for c in env.inner.calls] == [[-1], [8]]


def test_unbatchable_calls_are_not_scheduled(env: Env) -> None:
    servable = env.servable()
    assert servable.schedule("unknown_signature", request([1]), ["y"]) is None


def test_inner_timeout_is_the_latest_task_deadline(env: Env) -> None:
    servable = env.servable()
    servable.run(SIG, request([1]), ["y"], timeout_s=30.0)
    servable.run(SIG, request([1]), ["y"])
    first, second = (call.timeout_s for call in env.inner.calls)
    assert first is not None and 0 < first <= 30.0
    assert second is None


def test_delegates_metadata_and_close(env: Env) -> None:
    servable = env.servable()
    assert servable.signatures is env.inner.signatures
    assert servable.signature_def_map() == b"sigdefs"
    servable.close()
    assert env.inner.closed


def test_observer_sees_batches_latencies_and_never_breaks_serving(env: Env) -> None:
    servable = env.servable(max_batch_size=8)
    servable.run(SIG, request([1, 2]), ["y"])
    assert env.observer.batches == [("m", SIG, (2,), 2, 0)]
    assert env.observer.runs == [("m", 1, 2)]
    assert [pool for pool, _ in env.observer.latencies] == ["test_pool"]
    assert env.observer.latencies[0][1] >= 0

    class Broken:
        def __getattr__(self, name: str) -> Any:
            def fail(*args: Any) -> None:
                raise RuntimeError(name)

            return fail

    opts = BatchingOptions(num_batch_threads=1)
    broken = BatchingServable(env.inner, env.scheduler, opts, "m", 2, Broken())
    assert_answers(broken.run(SIG, request([3]), ["y", "z"]), request([3]))
    broken.close()


def test_safe_observer_swallows_errors(caplog: pytest.LogCaptureFixture) -> None:
    class Raises(Recorder):
        def on_queue_depth(self, model: str, signature: str, depth: int) -> None:
            raise ValueError("bad")

    SafeObserver(Raises()).on_queue_depth("m", "s", 1)
    assert "on_queue_depth failed" in caplog.text


# -- scheduler-level semantics ---------------------------------------------------


@dataclass(eq=False)
class FakeTask:
    size: int
    name: str
    key: Hashable = "k"
    is_cancelled: bool = False

    def split(self, sizes: Sequence[int]) -> Sequence[FakeTask]:
        return [FakeTask(s, f"{self.name}.{i}", self.key) for i, s in enumerate(sizes)]

    def cancelled(self) -> bool:
        return self.is_cancelled


class Log:
    """A process callback recording batches; the batch named ``hold`` blocks until released."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.done = threading.Semaphore(0)

    def process(self, tasks: list[FakeTask]) -> None:
        if tasks[0].name == "hold":
            self.entered.set()
            assert self.gate.wait(SAFETY_S)
        self.batches.append([task.name for task in tasks])
        self.done.release()

    def wait_batches(self, count: int) -> None:
        for _ in range(count):
            assert self.done.acquire(timeout=SAFETY_S)


@pytest.fixture
def scheduler() -> Iterator[SharedBatchScheduler]:
    made = SharedBatchScheduler(1, "sched")
    yield made
    made.shutdown()


def _queue(
    scheduler: SharedBatchScheduler, log: Log, name: str = "q", **options: Any
) -> BatchQueue[FakeTask]:
    opts = BatchingOptions(**options)
    return scheduler.add_queue(opts, log.process, model=name, signature=SIG)


def test_round_robin_across_queues(scheduler: SharedBatchScheduler) -> None:
    log = Log()
    first = _queue(scheduler, log, "a", max_batch_size=1)
    second = _queue(scheduler, log, "b", max_batch_size=1)
    first.schedule(FakeTask(1, "hold"))
    assert log.entered.wait(SAFETY_S)
    for name in ("a1", "a2"):
        first.schedule(FakeTask(1, name))
    for name in ("b1", "b2"):
        second.schedule(FakeTask(1, name))
    log.gate.set()
    log.wait_batches(5)
    assert log.batches == [["hold"], ["b1"], ["a1"], ["b2"], ["a2"]]


def test_open_batches_per_key_and_close_flush(scheduler: SharedBatchScheduler) -> None:
    log = Log()
    queue = _queue(scheduler, log, max_batch_size=4, batch_timeout_micros=60_000_000)
    for name, key in (("a", 1), ("b", 2), ("c", 1), ("d", 2), ("e", 1)):
        queue.schedule(FakeTask(1, name, key))
    assert queue.num_enqueued_tasks == 5
    queue.close()
    assert log.batches == [["a", "c", "e"], ["b", "d"]]
    with pytest.raises(Unavailable, match=r"is closed$"):
        queue.schedule(FakeTask(1, "late"))


def test_cancelled_tasks_are_dropped(scheduler: SharedBatchScheduler) -> None:
    log = Log()
    queue = _queue(scheduler, log, batch_timeout_micros=60_000_000)
    gone = FakeTask(1, "gone")
    queue.schedule(gone)
    queue.schedule(FakeTask(1, "kept"))
    gone.is_cancelled = True
    alone = _queue(scheduler, log, "alone", batch_timeout_micros=60_000_000)
    alone.schedule(FakeTask(1, "cancelled", is_cancelled=True))
    queue.close()
    alone.close()
    assert log.batches == [["kept"]]


def test_split_sizes_fill_open_batch_first(scheduler: SharedBatchScheduler) -> None:
    log = Log()
    queue = _queue(
        scheduler,
        log,
        max_batch_size=20,
        enable_large_batch_splitting=True,
        max_execution_batch_size=5,
        batch_timeout_micros=60_000_000,
    )
    queue.schedule(FakeTask(2, "a"))
    queue.schedule(FakeTask(14, "big"))
    queue.close()
    assert log.batches == [["a", "big.0"], ["big.1"], ["big.2"], ["big.3"]]


def test_shutdown_drains_and_rejects(scheduler: SharedBatchScheduler) -> None:
    log = Log()
    queue = _queue(scheduler, log, batch_timeout_micros=60_000_000)
    queue.schedule(FakeTask(3, "pending"))
    scheduler.shutdown()
    assert log.batches == [["pending"]]
    with pytest.raises(Unavailable):
        queue.schedule(FakeTask(1, "late"))
    with pytest.raises(Unavailable):
        _queue(scheduler, log)


def test_scheduler_requires_threads() -> None:
    with pytest.raises(ValueError, match="num_batch_threads must be positive; was 0"):
        SharedBatchScheduler(0)


def test_from_options_names_threads() -> None:
    made = SharedBatchScheduler.from_options(
        BatchingOptions(num_batch_threads=2, thread_pool_name="p")
    )
    try:
        names = {t.name for t in threading.enumerate()}
        assert {"p_0", "p_1"} <= names
    finally:
        made.shutdown()
    assert not {"p_0", "p_1"} & {t.name for t in threading.enumerate()}


def test_process_callback_exception_is_contained(
    scheduler: SharedBatchScheduler, caplog: pytest.LogCaptureFixture
) -> None:
    log = Log()

    def explode(tasks: list[FakeTask]) -> None:
        raise RuntimeError("callback bug")

    broken = scheduler.add_queue(BatchingOptions(), explode, model="broken", signature=SIG)
    broken.schedule(FakeTask(1, "x"))
    broken.close()
    assert "Batch processing callback for broken failed" in caplog.text
    fine = _queue(scheduler, log)
    fine.schedule(FakeTask(1, "y"))
    log.wait_batches(1)
    assert log.batches == [["y"]]
