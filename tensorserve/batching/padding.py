"""Merge request tensors along dim 0, pad batches, split outputs back (pure numpy).

Semantics follow TF Serving's ``BatchingSession`` (``batching_session.cc``) and
``batching_util.cc``:

- a batch of total size ``n`` is padded up to the smallest allowed batch size
  ``>= n``; padding rows are copies of the first row of the *last* task's
  (possibly length-padded) tensor;
- with ``pad_variable_length_inputs`` every non-batch dimension of each input
  is padded at its end to the batch maximum, with that task tensor's first
  element as the value (an empty tensor that needs padding is an error);
- every output must be batched along dim 0 with exactly the padded size.

Batch keys decide which requests may share a batch; see :func:`batch_key`.
All functions are pure and thread-safe; inputs are never modified.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from tensorserve.errors import FailedPrecondition, InvalidArgument

Inputs = Mapping[str, np.ndarray]

EMPTY_TENSOR_MESSAGE = "Got empty tensor in batch of non-empty tensors."
UNBATCHED_OUTPUT_RANK_MESSAGE = "Batched output tensor has 0 dimensions"
UNBATCHED_OUTPUT_SIZE_MESSAGE = (
    "Batched output tensor's 0th dimension does not equal the sum of the 0th dimension "
    "sizes of the input tensors"
)


def batch_key(inputs: Inputs, pad_variable_length_inputs: bool) -> Hashable:
    """What requests must share to be merged into one batch.

    Always the input names and dtypes. Without length padding, also each
    input's non-batch dimensions (TF Serving would fail a mixed batch with
    FAILED_PRECONDITION; we keep such requests in separate batches instead).
    With length padding, each input's rank instead (shapes are padded to match).
    """
    if pad_variable_length_inputs:
        return tuple(sorted((name, a.dtype.str, a.ndim) for name, a in inputs.items()))
    return tuple(sorted((name, a.dtype.str, a.shape[1:]) for name, a in inputs.items()))


def padded_batch_size(batch_size: int, allowed_batch_sizes: Sequence[int]) -> int:
    """Smallest allowed size ``>= batch_size``; ``batch_size`` itself when none applies."""
    for allowed in allowed_batch_sizes:
        if allowed >= batch_size:
            return allowed
    return batch_size


def merge_inputs(
    tasks: Sequence[Inputs], padded_size: int, pad_variable_length_inputs: bool
) -> dict[str, np.ndarray]:
    """Concatenate each input across ``tasks`` (all with one batch key) and pad to ``padded_size``.

    Raises InvalidArgument when length padding meets an empty tensor.
    """
    names = tasks[0].keys()
    merged: dict[str, np.ndarray] = {}
    for name in names:
        parts = [task[name] for task in tasks]
        if pad_variable_length_inputs:
            parts = _pad_to_common_shape(parts)
        merged[name] = _concat_with_padding(parts, padded_size)
    return merged


def _pad_to_common_shape(parts: list[np.ndarray]) -> list[np.ndarray]:
    target = tuple(max(dims) for dims in zip(*(p.shape[1:] for p in parts), strict=True))
    return [_pad_tensor(part, target) for part in parts]


def _pad_tensor(tensor: np.ndarray, inner_shape: tuple[int, ...]) -> np.ndarray:
    if tensor.shape[1:] == inner_shape:
        return tensor
    if tensor.size == 0:
        raise InvalidArgument(EMPTY_TENSOR_MESSAGE)
    fill: Any = tensor.flat[0]
    padded = np.full((tensor.shape[0], *inner_shape), fill, dtype=tensor.dtype)
    padded[tuple(slice(0, n) for n in tensor.shape)] = tensor
    return padded


def _concat_with_padding(parts: list[np.ndarray], padded_size: int) -> np.ndarray:
    rows = sum(part.shape[0] for part in parts)
    if rows < padded_size:
        filler = np.repeat(parts[-1][:1], padded_size - rows, axis=0)
        parts = [*parts, filler]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts, axis=0)


def split_outputs(
    outputs: Mapping[str, np.ndarray], task_sizes: Sequence[int], padded_size: int
) -> list[dict[str, np.ndarray]]:
    """Slice each batched output into one mapping per task (views, padding rows dropped).

    Raises FailedPrecondition (TF Serving's messages) for an output that is not
    batched along dim 0 with exactly ``padded_size`` rows.
    """
    for tensor in outputs.values():
        _check_batched(tensor, padded_size)
    results: list[dict[str, np.ndarray]] = []
    start = 0
    for size in task_sizes:
        results.append({key: tensor[start : start + size] for key, tensor in outputs.items()})
        start += size
    return results


def _check_batched(tensor: np.ndarray, padded_size: int) -> None:
    if tensor.ndim == 0:
        raise FailedPrecondition(UNBATCHED_OUTPUT_RANK_MESSAGE)
    if tensor.shape[0] != padded_size:
        raise FailedPrecondition(UNBATCHED_OUTPUT_SIZE_MESSAGE)
