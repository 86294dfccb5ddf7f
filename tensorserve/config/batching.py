"""``BatchingParameters`` text proto (``--batching_parameters_file``) -> :class:`BatchingOptions`.

Defaults and validation follow TF Serving (``bundle_factory_util.h``) and TF's
``SharedBatchScheduler`` (``shared_batch_scheduler.h``): an unset wrapper field
takes the scheduler default. Every :class:`BatchingOptions` instance is valid
and normalized; invalid values raise :class:`BatchingConfigError` naming the
field and the value.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tensorserve.config import protos, textproto

PAD_UP: Final = "PAD_UP"
BATCH_PADDING_POLICIES: Final = frozenset({PAD_UP, "BATCH_DOWN", "MINIMIZE_TPU_COST_PER_REQUEST"})
DEFAULT_THREAD_POOL_NAME: Final = "batch_threads"
MODEL_SERVER_THREAD_POOL_NAME: Final = "model_server_batch_threads"


class BatchingConfigError(ValueError):
    """An unparsable or invalid ``BatchingParameters``; the message names the problem."""


def _schedulable_cpus() -> int:
    """TF's ``port::MaxParallelism()``: CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class BatchingOptions:
    """Validated batching parameters; defaults are TF Serving's for unset fields.

    Normalization (done in ``__post_init__``, so it holds for direct construction too):

    - ``max_batch_size`` bounds one request (TF's ``input_batch_size_limit``);
      ``max_execution_batch_size`` bounds one executed batch. It is
      ``max_batch_size`` unless ``enable_large_batch_splitting`` is set (TF
      ignores it otherwise); ``0`` means "same as ``max_batch_size``".
    - ``max_enqueued_batches == 0`` becomes 1 without splitting, as TF's
      ``AddQueue`` rewrites it; with splitting it is an error.
    - ``batch_padding_policy``: ``BATCH_DOWN`` and ``MINIMIZE_TPU_COST_PER_REQUEST``
      are accepted but behave as ``PAD_UP`` (TF falls back to ``PAD_UP`` for the
      latter when it has no batch cost statistics).
    """

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=_schedulable_cpus)
    thread_pool_name: str = DEFAULT_THREAD_POOL_NAME
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    enable_large_batch_splitting: bool = False
    max_execution_batch_size: int = 0
    batch_padding_policy: str = PAD_UP

    def __post_init__(self) -> None:
        _positive("max_batch_size", self.max_batch_size)
        if not self.enable_large_batch_splitting or self.max_execution_batch_size == 0:
            object.__setattr__(self, "max_execution_batch_size", self.max_batch_size)
        if self.max_enqueued_batches == 0 and not self.enable_large_batch_splitting:
            object.__setattr__(self, "max_enqueued_batches", 1)
        object.__setattr__(self, "allowed_batch_sizes", tuple(self.allowed_batch_sizes))
        _validate(self)


def _positive(name: str, value: int) -> None:
    if value < 1:
        raise BatchingConfigError(f"{name} must be positive; was {value}")


def _validate(options: BatchingOptions) -> None:
    _positive("num_batch_threads", options.num_batch_threads)
    _positive("max_enqueued_batches", options.max_enqueued_batches)
    _positive("max_execution_batch_size", options.max_execution_batch_size)
    if options.batch_timeout_micros < 0:
        raise BatchingConfigError(
            f"batch_timeout_micros must be non-negative; was {options.batch_timeout_micros}"
        )
    if options.max_execution_batch_size > options.max_batch_size:
        raise BatchingConfigError(
            "When enable_large_batch_splitting is true, max_batch_size must be greater than or "
            f"equal to max_execution_batch_size; max_batch_size was {options.max_batch_size}, "
            f"max_execution_batch_size was {options.max_execution_batch_size}"
        )
    if options.batch_padding_policy not in BATCH_PADDING_POLICIES:
        raise BatchingConfigError(
            f"batch_padding_policy must be one of {sorted(BATCH_PADDING_POLICIES)}; "
            f"was {options.batch_padding_policy!r}"
        )
    _validate_allowed_sizes(options)


def _validate_allowed_sizes(options: BatchingOptions) -> None:
    """TF Serving requires last == max_batch_size; TF's own splitting rule says
    last == max_execution_batch_size. With splitting we accept either."""
    sizes = options.allowed_batch_sizes
    if not sizes:
        return
    if any(size < 1 for size in sizes):
        raise BatchingConfigError(
            f"allowed_batch_sizes entries must be positive; got {list(sizes)}"
        )
    if any(b <= a for a, b in itertools.pairwise(sizes)):
        raise BatchingConfigError(
            f"allowed_batch_sizes entries must be monotonically increasing; got {list(sizes)}"
        )
    last = sizes[-1]
    if options.enable_large_batch_splitting:
        expected = {options.max_batch_size, options.max_execution_batch_size}
        if last not in expected:
            raise BatchingConfigError(
                "Last entry in allowed_batch_sizes must be equal to max_execution_batch_size "
                f"or max_batch_size; last entry was {last}; expected "
                f"{options.max_execution_batch_size} or {options.max_batch_size}"
            )
    elif last != options.max_batch_size:
        raise BatchingConfigError(
            "Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
            f"{last}; expected {options.max_batch_size}"
        )


def default_batching_options() -> BatchingOptions:
    """``--enable_batching`` without a file: defaults, pool named like TF Serving's main.cc."""
    return BatchingOptions(thread_pool_name=MODEL_SERVER_THREAD_POOL_NAME)


_WRAPPED_FIELDS: Final = (
    "max_batch_size",
    "batch_timeout_micros",
    "max_enqueued_batches",
    "num_batch_threads",
    "thread_pool_name",
    "enable_large_batch_splitting",
    "max_execution_batch_size",
    "batch_padding_policy",
)


def options_from_proto(message: Any) -> BatchingOptions:
    """A ``tensorflow.serving.BatchingParameters`` message -> validated options."""
    kwargs: dict[str, Any] = {
        name: getattr(message, name).value for name in _WRAPPED_FIELDS if message.HasField(name)
    }
    kwargs["allowed_batch_sizes"] = tuple(int(size) for size in message.allowed_batch_sizes)
    kwargs["pad_variable_length_inputs"] = bool(message.pad_variable_length_inputs)
    return BatchingOptions(**kwargs)


def parse_batching_parameters(text: str, source: str = "batching parameters") -> BatchingOptions:
    """Parse text-format ``BatchingParameters``; raises :class:`BatchingConfigError`."""
    message = protos.BatchingParameters()
    try:
        textproto.parse(text, message, source)
    except textproto.TextProtoError as exc:
        raise BatchingConfigError(str(exc)) from exc
    return options_from_proto(message)


def load_batching_file(path: str | os.PathLike[str]) -> BatchingOptions:
    """Read and parse a ``--batching_parameters_file``; raises :class:`BatchingConfigError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchingConfigError(f"Cannot read batching parameters file {path}: {exc}") from exc
    try:
        return parse_batching_parameters(text, os.fspath(path))
    except BatchingConfigError as exc:
        raise BatchingConfigError(f"{path}: {exc}") from exc
