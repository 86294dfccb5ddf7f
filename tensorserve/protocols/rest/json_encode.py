"""Response side of the REST JSON codec: predict outputs, classify/regress results and
error bodies, as TF Serving writes them (compact; see ``json_decode.py`` for the differences)."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import orjson
from tensorflow_serving.apis import classification_pb2, regression_pb2

from tensorserve import dtypes
from tensorserve.errors import InvalidArgument
from tensorserve.protocols.rest.json_common import (
    float_token,
)

_NUMPY_OPT: Final = orjson.OPT_SERIALIZE_NUMPY


# --------------------------------------------------------------------------- encoding


def encode_predict(outputs: Mapping[str, np.ndarray], columnar: bool) -> bytes:
    """Predict response: ``{"outputs": ...}`` (columnar) or ``{"predictions": ...}`` (row).

    Row format needs every output to have rank >= 1 and the same dim 0.
    Keys keep the mapping's order. Raises InvalidArgument for an empty map,
    inconsistent batch sizes or unsupported output dtypes.
    """
    if not outputs:
        raise InvalidArgument("Cannot convert empty tensor map to JSON")
    tensors = {name: _output_array(name, value) for name, value in outputs.items()}
    if columnar:
        parts = {name: _tensor_json(name, arr) for name, arr in tensors.items()}
        body: Any = next(iter(parts.values())) if len(parts) == 1 else parts
        return _dumps({"outputs": body})
    batch = _batch_size(tensors)
    if len(tensors) == 1:
        ((name, arr),) = tensors.items()
        return _dumps({"predictions": _tensor_json(name, arr)})
    rows = {name: _row_values(name, arr) for name, arr in tensors.items()}
    predictions = [{name: rows[name][i] for name in rows} for i in range(batch)]
    return _dumps({"predictions": predictions})


def _output_array(name: str, value: np.ndarray) -> np.ndarray:
    """C-contiguous, native-endian view/copy of an output; InvalidArgument if not writable."""
    arr = np.asarray(value)
    kind = arr.dtype.kind
    if kind in "OSU":
        return arr
    if kind not in "iub" and not (kind == "f" and arr.dtype.itemsize in (4, 8)):
        code = dtypes.from_numpy(arr.dtype)
        raise InvalidArgument(
            f"Failed to write JSON value for tensor type: {dtypes.short_name(code)} "
            f"(output: '{name}')"
        )
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def _batch_size(tensors: Mapping[str, np.ndarray]) -> int:
    batch = -1
    for name, arr in tensors.items():
        if arr.ndim == 0:
            raise InvalidArgument(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and arr.shape[0] != batch:
            raise InvalidArgument(
                f"Tensor name: {name} has inconsistent batch size: {arr.shape[0]} "
                f"expecting: {batch}"
            )
        batch = arr.shape[0]
    return batch


def _tensor_json(name: str, arr: np.ndarray) -> Any:
    """Something orjson serialises as the tensor's nested-list JSON."""
    if arr.dtype.kind in "OSU":
        return _string_json(arr, name.endswith("_bytes"))
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        return orjson.Fragment(nonfinite_text(arr))
    return arr if arr.ndim else arr[()]


def _row_values(name: str, arr: np.ndarray) -> list[Any] | np.ndarray:
    """Per-batch-row JSON values of one output (row format, several outputs)."""
    if arr.dtype.kind in "OSU":
        nested = _string_json(arr, name.endswith("_bytes"))
        assert isinstance(nested, list)
        return nested
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        return [orjson.Fragment(nonfinite_text(arr[i])) for i in range(arr.shape[0])]
    return arr


def nonfinite_text(arr: np.ndarray) -> bytes:
    """JSON text of a float array with bare NaN/Infinity/-Infinity tokens.

    orjson writes non-finite floats as null, so zeros stand in for them and
    the matching comma-separated tokens (one per element, C order) are
    patched afterwards.
    """
    arr = np.asarray(arr)
    finite = np.isfinite(arr)
    if arr.ndim == 0:
        return _dumps(arr[()]) if finite else float_token(float(arr))
    tokens = _dumps(np.where(finite, arr, 0)).split(b",")
    for index in np.flatnonzero(~finite).tolist():
        token = tokens[index]
        head = len(token) - len(token.lstrip(b"["))
        tail = len(token.rstrip(b"]"))
        tokens[index] = token[:head] + float_token(float(arr.flat[index])) + token[tail:]
    return b",".join(tokens)


def _string_json(arr: np.ndarray, as_bytes: bool) -> Any:
    convert = _b64_json if as_bytes else _text_json
    flat = np.empty(arr.size, dtype=object)
    flat[:] = [convert(item) for item in arr.ravel().tolist()]
    return flat.reshape(arr.shape).tolist()


def _text_json(item: Any) -> Any:
    """A string element as JSON text; non-UTF-8 bytes fall back to ``{"b64": ...}``."""
    if type(item) is str:
        return item
    raw = _as_bytes(item)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(raw).decode("ascii")}


def _b64_json(item: Any) -> dict[str, str]:
    raw = item.encode("utf-8") if type(item) is str else _as_bytes(item)
    return {"b64": base64.b64encode(raw).decode("ascii")}


def _as_bytes(item: Any) -> bytes:
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    raise InvalidArgument(
        f"Failed to write JSON value for tensor type: string (element of type "
        f"{type(item).__name__})"
    )


def encode_classify(result: classification_pb2.ClassificationResult) -> bytes:
    """``{"results": [[[label, score], ...] per example]}``; scores are float32 text."""
    if not result.classifications:
        raise InvalidArgument("Cannot convert empty ClassificationResults to JSON")
    results = [
        [[cls.label, _float32_json(cls.score)] for cls in item.classes]
        for item in result.classifications
    ]
    return _dumps({"results": results})


def encode_regress(result: regression_pb2.RegressionResult) -> bytes:
    """``{"results": [value, ...]}``; values are float32 text."""
    if not result.regressions:
        raise InvalidArgument("Cannot convert empty RegressionResults to JSON")
    values = np.array([item.value for item in result.regressions], dtype=np.float32)
    return _dumps({"results": _tensor_json("results", values)})


def _float32_json(value: float) -> Any:
    if math.isfinite(value):
        return np.float32(value)
    return orjson.Fragment(float_token(value))


def encode_error(message: str) -> bytes:
    """``{"error": message}``; never raises (lone surrogates are escaped)."""
    try:
        return orjson.dumps({"error": message})
    except TypeError:
        return json.dumps({"error": message}).encode("ascii")


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=_NUMPY_OPT)
    except TypeError as err:  # e.g. a str with lone surrogates
        raise InvalidArgument(f"Failed to write JSON response: {err}") from None
