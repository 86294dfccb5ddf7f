"""Predict: signature selection and input/output validation, protocol-neutral.

Both protocols decode their wire format into a ``service.api.PredictCall``
(numpy inputs) and get a ``PredictResult`` back; the checks between are here,
the rest of the path in ``service/service.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tensorserve import dtypes, shapes
from tensorserve.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from tensorserve.servable import DEFAULT_SIGNATURE, Servable, SignatureSpec


def select_signature(servable: Servable, name: str, rest: bool = False) -> SignatureSpec:
    """The signature a Predict call names ("" = ``serving_default``).

    A missing one is TF Serving's error for the protocol (REST: INVALID_ARGUMENT,
    gRPC: FAILED_PRECONDITION, both HTTP 400), plus the signatures that exist.
    """
    key = name or DEFAULT_SIGNATURE
    spec = servable.signatures.get(key)
    if spec is None:
        available = sorted(k for k in servable.signatures if not k.startswith("__"))
        if rest:
            raise InvalidArgument(
                f'Serving signature name: "{key}" not found in signature def. '
                f"Available signatures: {available}"
            )
        raise FailedPrecondition(
            f'Serving signature key "{key}" not found. Available signatures: {available}'
        )
    if not spec.outputs:
        raise FailedPrecondition(f'Serving signature "{key}" has no outputs to compute')
    return spec


def check_size(inputs: Mapping[str, np.ndarray], limit: int) -> None:
    """ResourceExhausted when the inputs hold more than ``limit`` elements together (0: any)."""
    if limit <= 0:
        return
    count = sum(int(value.size) for value in inputs.values())
    if count > limit:
        raise ResourceExhausted(
            f"The request's input tensors hold {count} elements; at most {limit} are "
            "allowed per call (--max_request_tensor_elements raises the limit)"
        )


def check_inputs(spec: SignatureSpec, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validate names, dtypes and shapes against the signature; returns contiguous arrays.

    Messages start with TF Serving's wording and then say what the signature takes and
    what was sent. Shapes: a signature that enforces them (TF2 functions) needs the same
    rank and every fixed dimension; a TF1 graph is fed the tensor as sent (TF Serving's
    behaviour), so only a tensor that could not fill the declared shape is refused.
    """
    sent, expected = set(inputs), set(spec.inputs)
    if sent != expected and not (sent < expected and expected - sent <= spec.defaults):
        raise InvalidArgument(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({_set(sent)}) != len({_set(expected)}). Sent extra: {_set(sent - expected)}. "
            f"Missing but required: {_set(expected - sent - spec.defaults)}. "
            f"Signature '{spec.key}' takes {shapes.inputs_text(spec.inputs)}; "
            f"the request sent {_sent_text(inputs)}."
        )
    return {k: _check_tensor(spec, k, v) for k, v in inputs.items()}


def _check_tensor(signature: SignatureSpec, alias: str, value: np.ndarray) -> np.ndarray:
    spec = signature.inputs[alias]
    want = dtypes.base(spec.dtype)
    got = dtypes.from_numpy(value.dtype)
    if got != want:
        raise InvalidArgument(
            f"Expects arg '{alias}' to be {dtypes.short_name(want)} but "
            f"{dtypes.short_name(got)} is provided. Input '{alias}' of signature "
            f"'{signature.key}' is {shapes.tensor_text(spec)}; the request sent "
            f"{dtypes.name(got)} {shapes.shape_text(value.shape)}."
        )
    if spec.shape is not None and not _shape_ok(spec.shape, value, signature.enforces_shapes):
        rule = "" if signature.enforces_shapes else f": {value.size} values cannot fill that shape"
        raise InvalidArgument(
            f"Input '{alias}' of signature '{signature.key}' has shape "
            f"{shapes.shape_text(value.shape)} but the signature expects "
            f"{shapes.tensor_text(spec)} (-1 = any size){rule}."
        )
    return value if value.flags.c_contiguous else np.ascontiguousarray(value)


def _shape_ok(expected: tuple[int, ...], value: np.ndarray, exact: bool) -> bool:
    """Exact: same rank and fixed dimensions; else enough values to fill ``expected``."""
    return shapes.matches(expected, value.shape) if exact else shapes.can_fill(expected, value.size)


def _sent_text(inputs: Mapping[str, np.ndarray]) -> str:
    if not inputs:
        return "no inputs"
    return ", ".join(
        f"{name}: {dtypes.name(dtypes.from_numpy(inputs[name].dtype))} "
        f"{shapes.shape_text(inputs[name].shape)}"
        for name in sorted(inputs)
    )


def output_keys(spec: SignatureSpec, output_filter: Sequence[str]) -> list[str]:
    """The aliases to fetch: all (sorted) or the validated ``output_filter``."""
    if not output_filter:
        return sorted(spec.outputs)
    seen: set[str] = set()
    for alias in output_filter:
        if alias not in spec.outputs:
            raise InvalidArgument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be in"
                f" the set {_set(spec.outputs)}."
            )
        if alias in seen:
            raise InvalidArgument(f"duplicate output tensor alias: {alias}")
        seen.add(alias)
    return list(output_filter)


def _set(names: object) -> str:
    return "{" + ",".join(sorted(str(n) for n in names)) + "}"  # type: ignore[attr-defined]
