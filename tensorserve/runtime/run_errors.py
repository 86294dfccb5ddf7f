"""Errors TensorFlow raises while running a signature, said in words first.

The first line names the model, version and signature and the reason in plain words
(and, when an input's shape differs from the signature's, that input); TensorFlow's own
text follows on the next line, without the ``[[{{node ...}}]]`` graph locations and the
"defined at" Python traces it appends. The canonical code stays TensorFlow's, so the
REST status and gRPC code are the ones TF Serving returns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

import numpy as np

from tensorserve import shapes
from tensorserve.errors import Code, ServingError
from tensorserve.servable import SignatureSpec

_REASONS: Final = {
    Code.INVALID_ARGUMENT: "TensorFlow rejected the input values",
    Code.DEADLINE_EXCEEDED: "the computation did not finish before the deadline",
    Code.RESOURCE_EXHAUSTED: "TensorFlow ran out of memory or another resource",
    Code.FAILED_PRECONDITION: "the model is not ready to run this signature "
    "(an uninitialized variable or table)",
    Code.OUT_OF_RANGE: "a value is out of range (an index, or an exhausted input)",
    Code.NOT_FOUND: "something the model needs was not found",
    Code.UNIMPLEMENTED: "the model uses an operation this TensorFlow cannot run",
    Code.CANCELLED: "the computation was cancelled",
}
_SHAPE_WORDS: Final = re.compile(
    r"size-incompatible|Incompatible shapes|Input to reshape|Dimensions must|shape|rank",
    re.IGNORECASE,
)
# ``\n\t [[{{node x}}]]``, ``[[{{function_node f}}{{node x}}]]`` and what follows them.
_NODE_DUMP: Final = re.compile(r"\s*\[\[\{\{.*?\}\}\]\]", re.DOTALL)
_TRACE: Final = re.compile(r"\n\s*(Detected at node|Stack trace for op|Node:)\b.*", re.DOTALL)


def tensorflow_text(message: str) -> str:
    """TensorFlow's message without graph locations, traces and ``Graph execution error:``."""
    text = message.removeprefix("Graph execution error:").strip()
    text = _TRACE.sub("", text)
    text = _NODE_DUMP.sub("", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(lines)


def run_error(
    error: ServingError,
    model: str,
    version: int | None,
    signature: SignatureSpec | None,
    inputs: Mapping[str, np.ndarray],
) -> ServingError:
    """``error`` (from TensorFlow) with the plain-words first line; same code."""
    where = f"Model '{model}'" + (f" version {version}" if version is not None else "")
    key = signature.key if signature is not None else "?"
    reason = _REASONS.get(error.code, "TensorFlow failed while running it")
    hint = _shape_hint(signature, inputs) if error.code is Code.INVALID_ARGUMENT else ""
    if hint or (
        error.code is Code.INVALID_ARGUMENT and _SHAPE_WORDS.search(error.message) is not None
    ):
        reason = "the input shapes do not fit the model's computation"
    first = f"{where} could not run signature '{key}': {reason}{hint}."
    return ServingError(f"{first}\nTensorFlow: {tensorflow_text(error.message)}", error.code)


def _shape_hint(signature: SignatureSpec | None, inputs: Mapping[str, np.ndarray]) -> str:
    """``: input 'x' has shape [1, 2] but the signature declares DT_FLOAT [-1, 784]``."""
    if signature is None:
        return ""
    wrong = []
    for name in sorted(inputs):
        spec = signature.inputs.get(name)
        if spec is None or spec.shape is None:
            continue
        shape = tuple(inputs[name].shape)
        if not shapes.matches(spec.shape, shape):
            wrong.append(
                f"input '{name}' has shape {shapes.shape_text(shape)} but the signature "
                f"declares {shapes.tensor_text(spec)}"
            )
    return (": " + "; ".join(wrong)) if wrong else ""
