"""TF Serving's REST JSON codec (``util/json_tensor.{h,cc}``), built for speed.

Request side: :func:`loads` parses a body, :func:`parse_predict` validates the
predict envelope, :func:`decode_inputs` turns ``instances``/``inputs`` into
numpy arrays typed by the signature, :func:`parse_examples` builds the
``Input`` proto of classify/regress. Response side: :func:`encode_predict`,
:func:`encode_classify`, :func:`encode_regress`, :func:`encode_error`.
Every failure is a :class:`~tensorserve.errors.ServingError` whose message
follows TF Serving's wording.

Decoding strategy: a well-formed numeric payload is converted by one
``np.array(payload)`` call; the inferred dtype (kind ``f``/``i``/``u``/``b``)
and a vectorised range check decide whether the result is acceptable. Anything
else (ragged lists, strings, objects, nulls, wrong kinds, overflow) falls back
to an exact walk that reproduces TF Serving's rules and messages. Known
leniency of the fast path: a boolean mixed with numbers in a numeric tensor
(``[1.0, true]``) is read as 1/0, and integers above 2**24 (float) or 2**53
(double) mixed with fractional numbers are rounded instead of rejected; an
all-boolean payload for a numeric input is rejected like TF Serving.

Deliberate differences from TF Serving: int8/int16/uint8/uint16 values outside
the dtype's range are rejected (TF wraps them); uint16 is supported; an
unsupported input dtype is Unimplemented in both formats (TF turns it into
InvalidArgument in row format); invalid UTF-8 in the body is rejected (TF
passes it through); JSON output is compact; floats print as the shortest text
that round-trips the float32/float64 value (TF: ``%g``, else 9/17 digits);
a non-UTF-8 string in an output not named ``*_bytes`` is emitted as
``{"b64": ...}`` (TF emits invalid JSON); values quoted in messages are compact
and truncated; decode errors end with the input name and dtype. As in TF,
unknown keys of a columnar ``inputs`` object are ignored.
"""

from __future__ import annotations

import binascii
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import orjson

from tensorserve import dtypes, shapes
from tensorserve.errors import InvalidArgument, Unimplemented
from tensorserve.protocols.rest.json_common import (
    INT64_MAX,
    INT64_MIN,
    UINT64_MAX,
    BadValue,
    is_b64,
    json_type,
    require_object,
    snippet,
)
from tensorserve.servable import SignatureSpec

_UTF8_BOM: Final = b"\xef\xbb\xbf"
_MAX_RANK: Final = 64  # numpy's limit (TF allows 254)
_BIG_EXPONENT: Final = re.compile(rb"[eE][+-]?0*[1-9][0-9]{2}")  # may overflow a double
_FLOAT32_MAX: Final = 3.4028234663852886e38  # np.finfo(np.float32).max
# Largest integer TF Serving accepts for float/double without "loss of precision".
_LOSSLESS_INT: Final[dict[int, int]] = {dtypes.DT_FLOAT: 2**24 - 1, dtypes.DT_DOUBLE: 2**53 - 1}
# Integer ranges: (TF Serving's accepted range, the dtype's own range).
_INT32_RANGE: Final = (-(2**31), 2**31 - 1)
_INT_RANGES: Final[dict[int, tuple[tuple[int, int], tuple[int, int]]]] = {
    dtypes.DT_INT8: (_INT32_RANGE, (-128, 127)),
    dtypes.DT_INT16: (_INT32_RANGE, (-(2**15), 2**15 - 1)),
    dtypes.DT_INT32: (_INT32_RANGE, _INT32_RANGE),
    dtypes.DT_UINT8: (_INT32_RANGE, (0, 255)),
    dtypes.DT_UINT16: ((0, 2**32 - 1), (0, 2**16 - 1)),
    dtypes.DT_UINT32: ((0, 2**32 - 1), (0, 2**32 - 1)),
    dtypes.DT_INT64: ((INT64_MIN, INT64_MAX), (INT64_MIN, INT64_MAX)),
    dtypes.DT_UINT64: ((0, UINT64_MAX), (0, UINT64_MAX)),
}
_FLOAT_CODES: Final = frozenset({dtypes.DT_FLOAT, dtypes.DT_DOUBLE})
_SUPPORTED: Final = frozenset({*_INT_RANGES, *_FLOAT_CODES, dtypes.DT_BOOL, dtypes.DT_STRING})
_WRAPPED: Final = "INVALID_ARGUMENT: "
_MULTI_ROW_INPUTS: Final = (
    "instances is a plain list, but expecting list of objects as multiple input tensors "
    "required as per tensorinfo_map"
)
_MULTI_COLUMN_INPUTS: Final = (
    "inputs is a plain value/list, but expecting an object as multiple input tensors "
    "required as per tensorinfo_map"
)


# --------------------------------------------------------------------------- parsing


def loads(body: bytes) -> Any:
    """Parse a request body; accepts TF Serving's bare ``NaN``/``Infinity`` tokens.

    Raises InvalidArgument (never anything else) for empty, malformed, too
    deep, non-UTF-8 or out-of-range input. A leading UTF-8 BOM is skipped.
    """
    if not body:
        raise InvalidArgument("JSON Parse error: The document is empty")
    if body.startswith(_UTF8_BOM):
        body = body[len(_UTF8_BOM) :]
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        if b"NaN" in body or b"Infinity" in body:
            return _loads_with_constants(body)
        raise _parse_error(_orjson_reason(err.msg), err.pos) from None


_REASONS: Final = {
    "input data is empty": "The document is empty.",
    "number is infinity when parsed as double": "Number too big to be stored in double.",
    "unexpected character, expected a JSON value": "Invalid value.",
}


def _orjson_reason(msg: str) -> str:
    """orjson's message, in rapidjson's words where TF Serving users know them."""
    return _REASONS.get(msg, msg)


_CONSTANT_OR_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*"|-?Infinity|NaN')


def _mask_constant(match: re.Match[bytes]) -> bytes:
    token = match.group(0)
    return token if token.startswith(b'"') else b"0" + b" " * (len(token) - 1)


def _loads_with_constants(body: bytes) -> Any:
    """Slow parser accepting ``NaN``, ``Infinity`` and ``-Infinity`` (non-RFC).

    orjson first checks the body with each bare constant masked by a number of the
    same length, so every other error keeps orjson's message and byte offset.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _parse_error("Invalid encoding in string.", err.start) from None
    try:
        orjson.loads(_CONSTANT_OR_STRING.sub(_mask_constant, body))
    except orjson.JSONDecodeError as err:
        raise _parse_error(_orjson_reason(err.msg), err.pos) from None
    parse_float = _finite_float if _BIG_EXPONENT.search(body) else None
    try:
        return json.loads(text, parse_float=parse_float)
    except json.JSONDecodeError as err:
        offset = len(text[: err.pos].encode("utf-8", "surrogatepass"))
        raise _parse_error(err.msg, offset) from None
    except RecursionError:
        raise InvalidArgument("JSON Parse error: document nesting is too deep") from None
    except ValueError as err:  # e.g. integers longer than Python's digit limit
        raise InvalidArgument(f"JSON Parse error: {err}") from None


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise InvalidArgument("JSON Parse error: Number too big to be stored in double.")
    return value


def _parse_error(reason: str, offset: int) -> InvalidArgument:
    return InvalidArgument(f"JSON Parse error: {reason} at offset: {offset}")


@dataclass(frozen=True, slots=True)
class PredictBody:
    """A validated predict request body.

    ``signature_name`` is "" when absent; ``columnar`` is True for ``inputs``
    and False for ``instances``; ``payload`` is that key's value (a non-empty
    list for ``instances``).
    """

    signature_name: str
    columnar: bool
    payload: Any


def parse_predict(doc: Any) -> PredictBody:
    """Validate the predict envelope as TF Serving does; InvalidArgument if malformed."""
    obj = require_object(doc)
    signature = signature_name(obj)
    has_instances, has_inputs = "instances" in obj, "inputs" in obj
    if has_instances and has_inputs:
        raise InvalidArgument(
            f"JSON Value: {snippet(obj)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist "
        )
    if has_inputs:
        return PredictBody(signature, True, obj["inputs"])
    if not has_instances:
        raise InvalidArgument("Missing 'inputs' or 'instances' key")
    instances = obj["instances"]
    if type(instances) is not list:
        raise InvalidArgument(
            f"JSON Value: {snippet(obj)} Excepting 'instances' to be an list/array"
        )
    if not instances:
        raise InvalidArgument(f"JSON Value: {snippet(obj)} No values in 'instances' array")
    return PredictBody(signature, False, instances)


def signature_name(obj: dict[str, Any]) -> str:
    name = obj.get("signature_name", "")
    if type(name) is not str:
        raise InvalidArgument(
            f"JSON Value: {snippet(obj)} not formatted correctly. "
            "'signature_name' key must be a string value."
        )
    return name


# --------------------------------------------------------------------------- decoding


def decode_inputs(body: PredictBody, signature: SignatureSpec) -> dict[str, np.ndarray]:
    """Convert the payload into one array per signature input (signature order).

    Numeric arrays are C-contiguous with the exact numpy dtype of the input's
    TF dtype; DT_STRING inputs are object arrays of ``bytes``. Shapes come
    from nesting and are not checked against the signature. Raises
    InvalidArgument for malformed values, Unimplemented for dtypes TF
    Serving's JSON layer cannot convert.
    """
    inputs = {name: dtypes.base(spec.dtype) for name, spec in signature.inputs.items()}
    if not inputs:
        shown = signature.key or "DEFAULT"
        raise InvalidArgument(f"Failed to get input map for signature: {shown}")
    _check_supported(inputs)
    try:
        if body.columnar:
            return _decode_columns(body.payload, inputs)
        return _decode_rows(body.payload, inputs)
    except RecursionError:
        raise InvalidArgument("JSON value is nested too deeply") from None
    except _NameMismatch as exc:  # TF Serving's text, then what the signature takes
        takes = shapes.inputs_text(signature.inputs)
        raise InvalidArgument(f"{exc.message} Signature '{signature.key}' takes {takes}.") from None


class _NameMismatch(InvalidArgument):
    """An input name the signature does not have, or one it needs that is missing."""


def _check_supported(inputs: Mapping[str, int]) -> None:
    for name, code in inputs.items():
        if code not in _SUPPORTED:
            raise Unimplemented(
                f"Conversion of JSON Value to type: {dtypes.short_name(code)} is not supported "
                f"(input: '{name}')"
            )


def _decode_columns(payload: Any, inputs: Mapping[str, int]) -> dict[str, np.ndarray]:
    if type(payload) is not dict or is_b64(payload):
        if len(inputs) > 1:
            raise InvalidArgument(_MULTI_COLUMN_INPUTS)
        ((name, code),) = inputs.items()
        return {name: _tensor(payload, name, code)}
    result: dict[str, np.ndarray] = {}
    for name, code in inputs.items():
        if name not in payload:
            raise _NameMismatch(f"Missing named input: {name} in 'inputs' object.")
        result[name] = _tensor(payload[name], name, code)
    return result


def _tensor(value: Any, name: str, code: int) -> np.ndarray:
    """One tensor from one JSON value: fast path, else the exact walk's error."""
    fast = _quick(value, code)
    if fast is not None:
        return fast
    leaves: list[Any] = []
    try:
        shape = _walk(value, code, leaves)
    except BadValue as err:
        raise InvalidArgument(_with_context(err.message, name, code)) from None
    return _assemble(leaves, shape, code)


def _with_context(message: str, name: str, code: int) -> str:
    return f"{message} (input: '{name}', expected dtype: {dtypes.short_name(code)})"


def _decode_rows(instances: list[Any], inputs: Mapping[str, int]) -> dict[str, np.ndarray]:
    first = instances[0]
    if len(inputs) > 1 and not _is_named_object(first):
        raise InvalidArgument(_MULTI_ROW_INPUTS)
    fast = _fast_rows(instances, inputs, _is_named_object(first))
    return fast if fast is not None else _exact_rows(instances, inputs)


def _fast_rows(
    instances: list[Any], inputs: Mapping[str, int], named: bool
) -> dict[str, np.ndarray] | None:
    """Stack rows with numpy when every row is well formed; None means "walk"."""
    if not named:
        ((name, code),) = inputs.items()
        arr = _quick(instances, code)
        return None if arr is None else {name: arr}
    names = frozenset(inputs)
    for elem in instances:
        if type(elem) is not dict or elem.keys() != names or is_b64(elem):
            return None
    result: dict[str, np.ndarray] = {}
    for name, code in inputs.items():
        arr = _quick([elem[name] for elem in instances], code)
        if arr is None:
            return None
        result[name] = arr
    return result


@dataclass(slots=True)
class _Column:
    """Leaves of one input gathered across ``instances`` elements."""

    code: int
    leaves: list[Any]
    shape: tuple[int, ...] | None = None
    size: int = 0


def _exact_rows(instances: list[Any], inputs: Mapping[str, int]) -> dict[str, np.ndarray]:
    """TF Serving's row-format algorithm, element by element, with its messages."""
    columns = {name: _Column(code, []) for name, code in inputs.items()}
    named = _is_named_object(instances[0])
    for index, elem in enumerate(instances):
        if named:
            _add_named_row(columns, elem, index)
        elif _is_named_object(elem):
            raise InvalidArgument(
                f"Expecting value/list but got object at item {index} of input list"
            )
        else:
            ((name, column),) = columns.items()
            _add_row_item(column, elem, index, name, named=False)
    return {
        name: _assemble(col.leaves, (len(instances), *(col.shape or ())), col.code)
        for name, col in columns.items()
    }


def _add_named_row(columns: dict[str, _Column], elem: Any, index: int) -> None:
    if not _is_named_object(elem):
        raise InvalidArgument(f"Expecting object but got list at item {index} of input list")
    for key, value in elem.items():
        column = columns.get(key)
        if column is None:
            raise _NameMismatch(
                f"Failed to process element: {index} key: {key} of 'instances' list. "
                f"Error: {_WRAPPED}JSON object: does not have named input: {key}"
            )
        _add_row_item(column, value, index, key, named=True)
    if elem.keys() != columns.keys():
        raise _NameMismatch(
            f"Failed to process element: {index} of 'instances' list. JSON object: "
            f"{snippet(elem)} must only have keys: {','.join(sorted(columns))}"
        )


def _add_row_item(column: _Column, value: Any, index: int, name: str, named: bool) -> None:
    start = len(column.leaves)
    try:
        shape = _walk(value, column.code, column.leaves)
        _check_row_shape(column, shape, len(column.leaves) - start)
    except BadValue as err:
        key = f" key: {name}" if named else ""
        raise InvalidArgument(
            f"Failed to process element: {index}{key} of 'instances' list. Error: "
            f"{_WRAPPED}{_with_context(err.message, name, column.code)}"
        ) from None


def _check_row_shape(column: _Column, shape: tuple[int, ...], size: int) -> None:
    if column.shape is None:
        column.shape, column.size = shape, size
    elif size != column.size:
        raise BadValue(f"Expecting tensor size: {column.size} but got: {size}")
    elif shape != column.shape:
        raise BadValue(f"Expecting shape {_shape_text(column.shape)} but got: {_shape_text(shape)}")


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(dim) for dim in shape) + "]"


def _is_named_object(value: Any) -> bool:
    return type(value) is dict and not is_b64(value)


# ----------------------------------------------------------------- fast numeric path


def _quick(value: Any, code: int) -> np.ndarray | None:
    """The tensor if ``value`` is well formed (numpy for numbers); None means "walk"."""
    if code != dtypes.DT_STRING:
        return _fast_numeric(value, code)
    leaves: list[Any] = []
    try:
        shape = _walk(value, code, leaves)
    except BadValue:
        return None
    return _assemble(leaves, shape, code)


def _fast_numeric(value: Any, code: int) -> np.ndarray | None:
    """Convert with one numpy call when the inferred dtype proves the payload valid."""
    try:
        raw = np.array(value)
    except (ValueError, TypeError, OverflowError, RecursionError):
        return None
    target = dtypes.NUMPY[code]
    kind = raw.dtype.kind
    if raw.size == 0:
        return np.zeros(raw.shape, target) if kind in "fiub" else None
    if code in _FLOAT_CODES:
        return _fast_float(raw, code, target)
    if code == dtypes.DT_BOOL:
        return raw if kind == "b" else None
    if kind in "iu" and _within(raw, _INT_RANGES[code][1]):
        return raw.astype(target, order="C", copy=False)
    return None


def _fast_float(raw: np.ndarray, code: int, target: np.dtype[Any]) -> np.ndarray | None:
    kind = raw.dtype.kind
    if kind in "iu":
        limit = _LOSSLESS_INT[code]
        return raw.astype(target, order="C") if _within(raw, (-limit, limit)) else None
    if kind != "f":
        return None
    try:
        with np.errstate(over="raise"):  # finite doubles beyond float32 range: walk
            return raw.astype(target, order="C", copy=False)
    except FloatingPointError:
        return None


def _within(raw: np.ndarray, bounds: tuple[int, int]) -> bool:
    return bool(int(raw.min()) >= bounds[0] and int(raw.max()) <= bounds[1])


# ------------------------------------------------------------------ exact slow path


def _walk(value: Any, code: int, leaves: list[Any]) -> tuple[int, ...]:
    """Append ``value``'s converted leaves to ``leaves``; return its shape.

    Shape comes from the first element at each level (TF's rule); every list
    must then match it. Raises BadValue with TF Serving's message.
    """
    shape = _dense_shape(value)
    if len(shape) > _MAX_RANK:
        raise BadValue(f"JSON value nests lists {len(shape)} deep; the maximum is {_MAX_RANK}")
    _fill(value, 0, shape, _LEAF_CONVERTERS[code], leaves)
    return shape


def _dense_shape(value: Any) -> tuple[int, ...]:
    shape: list[int] = []
    while type(value) is list:
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(shape)


def _fill(
    value: Any,
    level: int,
    shape: tuple[int, ...],
    convert: Callable[[Any], Any],
    leaves: list[Any],
) -> None:
    rank = len(shape)
    if type(value) is not list:
        if level != rank:
            raise BadValue(
                f"JSON Value: {snippet(value)} found at incorrect level: {level + 1} "
                f"in the JSON DOM. Expected at level: {rank}"
            )
        leaves.append(convert(value))
        return
    if level >= rank:
        raise BadValue(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise BadValue(
            f"Encountered list at unexpected size: {len(value)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    for item in value:
        _fill(item, level + 1, shape, convert, leaves)


def _assemble(leaves: list[Any], shape: tuple[int, ...], code: int) -> np.ndarray:
    if code == dtypes.DT_STRING:
        flat = np.empty(len(leaves), dtype=object)
        flat[:] = leaves
        return flat.reshape(shape)
    return np.array(leaves, dtype=dtypes.NUMPY[code]).reshape(shape)


def _type_error(value: Any, code: int) -> BadValue:
    return BadValue(
        f"JSON Value: {snippet(value)} Type: {json_type(value)} is not of expected type: "
        f"{dtypes.short_name(code)}"
    )


def _lossy_error(value: Any, target: str) -> BadValue:
    return BadValue(
        f"Cannot convert JSON value: {snippet(value)} to {target} without loss of precision."
    )


def as_double(value: int) -> float:
    """An integer beyond 64 bits, read as a double like rapidjson does."""
    try:
        return float(value)
    except OverflowError:
        raise BadValue("Number too big to be stored in double.") from None


def leaf_real(value: Any, code: int) -> float | int:
    """float/double leaf: any number except where TF reports loss of precision."""
    kind = type(value)
    if kind is int:
        if INT64_MIN <= value <= UINT64_MAX:
            if abs(value) > _LOSSLESS_INT[code]:
                raise _lossy_error(value, dtypes.short_name(code))
            return int(value)
        value = as_double(value)
    elif kind is not float:
        raise _type_error(value, code)
    if code == dtypes.DT_FLOAT and math.isfinite(value) and abs(value) > _FLOAT32_MAX:
        raise _lossy_error(value, "float")
    return float(value)


def _leaf_int(value: Any, code: int) -> int:
    """Integer leaf: a JSON integer inside TF's range and the dtype's own range."""
    if type(value) is not int:
        raise _type_error(value, code)
    (tf_low, tf_high), (low, high) = _INT_RANGES[code]
    if not tf_low <= value <= tf_high:
        raise _type_error(value, code)
    if not low <= value <= high:
        raise BadValue(
            f"JSON Value: {value} Type: Number is out of range for expected type: "
            f"{dtypes.short_name(code)}"
        )
    return value


def _leaf_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise _type_error(value, dtypes.DT_BOOL)
    return value


def leaf_string(value: Any) -> bytes:
    """DT_STRING leaf: a JSON string (UTF-8 bytes) or a ``{"b64": ...}`` object."""
    if type(value) is str:
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadValue(f"JSON Value: {snippet(value)} is not valid UTF-8") from None
    if type(value) is dict:
        if not is_b64(value):
            raise BadValue(f"JSON Value: {snippet(value)} not formatted correctly for base64 data")
        return _b64decode(value["b64"])
    raise _type_error(value, dtypes.DT_STRING)


def _leaf_for(code: int) -> Callable[[Any], Any]:
    if code in _FLOAT_CODES:
        return lambda value: leaf_real(value, code)
    if code in _INT_RANGES:
        return lambda value: _leaf_int(value, code)
    return _leaf_bool if code == dtypes.DT_BOOL else leaf_string


_LEAF_CONVERTERS: Final[dict[int, Callable[[Any], Any]]] = {
    code: _leaf_for(code) for code in _SUPPORTED
}


def _b64decode(text: str) -> bytes:
    """Standard-alphabet base64 with absl's leniency: padding optional, spaces skipped."""
    try:
        data = b"".join(text.encode("ascii").split())
    except UnicodeEncodeError:
        raise BadValue("Unable to base64 decode") from None
    core = data.rstrip(b"=")
    missing = -len(core) % 4
    padding = len(data) - len(core)
    if missing == 3 or padding not in (0, missing):
        raise BadValue("Unable to base64 decode")
    try:
        return binascii.a2b_base64(core + b"=" * missing, strict_mode=True)
    except (binascii.Error, ValueError):
        raise BadValue("Unable to base64 decode") from None
