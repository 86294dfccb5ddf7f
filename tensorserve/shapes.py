"""Signature shapes and dtypes in words, and the two shape rules (shared by service and runtime).

Shapes print as ``[-1, 784]`` (-1 = any size), ``[]`` for scalars, ``(any shape)`` for an
unknown rank; dtypes by their ``DT_`` name, so a message reads as the model's metadata.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from tensorserve import dtypes
from tensorserve.servable import TensorSpec


def shape_text(shape: tuple[int, ...] | None) -> str:
    """``[-1, 784]``; ``(any shape)`` when the rank is unknown."""
    if shape is None:
        return "(any shape)"
    return "[" + ", ".join(str(d) for d in shape) + "]"


def tensor_text(spec: TensorSpec) -> str:
    """``DT_FLOAT [-1, 784]``."""
    return f"{dtypes.name(spec.dtype)} {shape_text(spec.shape)}"


def inputs_text(inputs: Mapping[str, TensorSpec]) -> str:
    """``a: DT_FLOAT [-1, 2], b: DT_INT64 [-1]`` (sorted by name); ``no inputs`` when empty."""
    if not inputs:
        return "no inputs"
    return ", ".join(f"{name}: {tensor_text(inputs[name])}" for name in sorted(inputs))


def matches(expected: tuple[int, ...], got: tuple[int, ...]) -> bool:
    """Same rank, and every fixed dimension equal (what a TF2 signature function accepts)."""
    if len(expected) != len(got):
        return False
    return all(e < 0 or e == g for e, g in zip(expected, got, strict=True))


def can_fill(expected: tuple[int, ...], size: int) -> bool:
    """Whether ``size`` values could fill ``expected`` (a multiple of its fixed dimensions).

    TF1 sessions feed a tensor as sent, whatever its rank or layout (TF Serving's own
    tests send ``[2, 2]`` and ``[3]`` to ``[-1, 1]``), so only a tensor that could never
    have the declared shape (2 values for ``[-1, 784]``) is refused before TensorFlow.
    """
    fixed = math.prod(d for d in expected if d >= 0)
    return size == 0 if fixed == 0 else size % fixed == 0
