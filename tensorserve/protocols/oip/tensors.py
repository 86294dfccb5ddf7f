"""OIP tensors <-> numpy: datatypes, JSON ``data``, binary bytes, typed gRPC ``contents``.

Contracts: every decoder returns an array of exactly ``shape`` and the datatype's numpy
type (``object`` arrays of ``bytes`` for BYTES) or raises ``InvalidArgument`` naming the
tensor, what was wrong and what was expected. Binary decoding is zero-copy
(``np.frombuffer``) for fixed-size types; BYTES elements travel as a 4-byte little-endian
length followed by the bytes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from tensorserve import dtypes
from tensorserve.errors import InvalidArgument

TO_DT: Final[dict[str, int]] = {
    "BOOL": dtypes.DT_BOOL,
    "UINT8": dtypes.DT_UINT8,
    "UINT16": dtypes.DT_UINT16,
    "UINT32": dtypes.DT_UINT32,
    "UINT64": dtypes.DT_UINT64,
    "INT8": dtypes.DT_INT8,
    "INT16": dtypes.DT_INT16,
    "INT32": dtypes.DT_INT32,
    "INT64": dtypes.DT_INT64,
    "FP16": dtypes.DT_HALF,
    "FP32": dtypes.DT_FLOAT,
    "FP64": dtypes.DT_DOUBLE,
    "BF16": dtypes.DT_BFLOAT16,
    "BYTES": dtypes.DT_STRING,
}
FROM_DT: Final[dict[int, str]] = {code: name for name, code in TO_DT.items()}
DATATYPES: Final = ", ".join(TO_DT)
_LENGTH = struct.Struct("<I")
_MAX_RANK = 64  # numpy's limit
_MAX_ELEMENTS = (2**63 - 1) // 16  # so that the bytes of the widest element type fit


def datatype_of(dt: int) -> str:
    """The OIP datatype of a TensorFlow dtype code (``"INVALID"`` when OIP has none)."""
    return FROM_DT.get(dtypes.base(dt), "INVALID")


def numpy_type(name: str, datatype: str) -> np.dtype[Any]:
    """numpy dtype of an OIP datatype; InvalidArgument for an unknown one."""
    code = TO_DT.get(datatype)
    if code is None:
        raise InvalidArgument(
            f"Input '{name}' has unknown datatype '{datatype}'; expected one of {DATATYPES}"
        )
    found = dtypes.to_numpy(code)
    assert found is not None
    return found


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    """A list of non-negative integers whose elements an array can hold, as a tuple."""
    if not isinstance(shape, list | tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InvalidArgument(
            f"Input '{name}' has shape {shape!r}; expected a list of non-negative integers"
        )
    if len(shape) > _MAX_RANK or math.prod(d or 1 for d in shape) > _MAX_ELEMENTS:
        raise InvalidArgument(
            f"Input '{name}' has shape {list(shape)}; at most {_MAX_RANK} dimensions and "
            f"{_MAX_ELEMENTS} elements (counting a 0 dimension as 1) are allowed"
        )
    return tuple(shape)


def _count(shape: Sequence[int]) -> int:
    return math.prod(shape)


# ---- JSON ---------------------------------------------------------------------------------
def from_json(name: str, datatype: str, shape: Sequence[int], data: Any) -> np.ndarray:
    """``data`` (a flat or nested list, row-major) as an array of ``shape``."""
    np_type = numpy_type(name, datatype)
    if not isinstance(data, list):
        data = [data]
    try:
        if datatype == "BYTES":
            flat = _flatten(data)
            array = np.empty(len(flat), dtype=object)
            array[:] = [_as_bytes(name, v) for v in flat]
        elif datatype == "BOOL":
            array = np.asarray(data)
            if array.dtype != np.bool_ and array.size:
                raise InvalidArgument(
                    f"Input '{name}' of datatype BOOL holds {array.dtype.name} values; "
                    "expected true or false"
                )
            array = array.astype(np.bool_, copy=False)
        else:
            array = _numbers(name, datatype, data, np_type)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(
            f"Input '{name}' data cannot be read as {datatype}: {exc}; expected a flat or "
            f"nested list of {_count(shape)} {datatype} values"
        ) from None
    return _reshape(name, array.reshape(-1), shape)


def _numbers(name: str, datatype: str, data: list[Any], np_type: np.dtype[Any]) -> np.ndarray:
    if np_type.kind in "fV":  # V: ml_dtypes.bfloat16
        try:
            with np.errstate(over="raise"):
                return _floats(name, datatype, data, np_type)
        except FloatingPointError:
            raise InvalidArgument(
                f"Input '{name}' holds a value outside {datatype}'s range"
            ) from None
    generic = _generic(name, datatype, data)
    if generic.dtype.kind == "f" and not np.all(np.trunc(generic) == generic):
        raise InvalidArgument(
            f"Input '{name}' of datatype {datatype} holds fractional numbers; expected integers"
        )
    try:
        return np.array(data, dtype=np_type)  # exact for integers beyond float64's precision
    except OverflowError:
        info = np.iinfo(np_type)
        raise InvalidArgument(
            f"Input '{name}' holds a value outside {datatype}'s range [{info.min}, {info.max}]"
        ) from None


def _floats(name: str, datatype: str, data: list[Any], np_type: np.dtype[Any]) -> np.ndarray:
    if data and isinstance(_first(data), float | int):
        try:  # the common case in one pass; anything odd is diagnosed below
            return np.array(data, dtype=np_type)
        except (ValueError, TypeError):
            pass
    return _generic(name, datatype, data).astype(np_type, copy=False)


def _generic(name: str, datatype: str, data: list[Any]) -> np.ndarray:
    generic = np.asarray(data)
    if generic.dtype.kind not in "biuf" and generic.size:
        raise InvalidArgument(
            f"Input '{name}' of datatype {datatype} holds {_kind(generic)}; expected numbers"
        )
    return generic


def _first(data: list[Any]) -> Any:
    while isinstance(data, list) and data:
        data = data[0]
    return data


def _kind(array: np.ndarray) -> str:
    if array.dtype == object:
        return "lists of different lengths or mixed values"
    return "strings" if array.dtype.kind in "SU" else f"{array.dtype.name} values"


def _flatten(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _as_bytes(name: str, value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytes):
        return value
    raise InvalidArgument(
        f"Input '{name}' of datatype BYTES holds {type(value).__name__} {value!r}; expected strings"
    )


def _reshape(name: str, flat: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    check_shape(name, list(shape))
    if flat.size != _count(shape):
        raise InvalidArgument(
            f"Input '{name}' has {flat.size} elements but shape {list(shape)} needs {_count(shape)}"
        )
    return flat.reshape(shape)


def to_json(array: np.ndarray) -> list[Any] | np.ndarray:
    """The flat row-major ``data`` of an output: a list of UTF-8 strings for BYTES, else a
    contiguous numeric array for ``orjson.OPT_SERIALIZE_NUMPY`` (which writes each float in
    its shortest round-tripping form; bfloat16, which orjson does not know, as float32)."""
    flat = array.reshape(-1)
    if flat.dtype == object or flat.dtype.kind in "SU":
        return [_text(v) for v in flat]
    if flat.dtype.kind == "V":  # ml_dtypes.bfloat16
        flat = flat.astype(np.float32)
    return np.ascontiguousarray(flat)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise InvalidArgument(
                "An output holds bytes that are not UTF-8 text and cannot travel in JSON; "
                'request it with "parameters": {"binary_data": true}'
            ) from None
    return str(value)


# ---- binary -------------------------------------------------------------------------------
def from_binary(name: str, datatype: str, shape: Sequence[int], raw: memoryview) -> np.ndarray:
    """Raw little-endian bytes (or length-prefixed BYTES elements) as an array of ``shape``."""
    np_type = numpy_type(name, datatype)
    count = _count(check_shape(name, list(shape)))
    if datatype == "BYTES":
        return _reshape(name, _unpack_bytes(name, raw, count), shape)
    expected = count * np_type.itemsize
    if len(raw) != expected:
        raise InvalidArgument(
            f"Input '{name}' has {len(raw)} bytes of binary data but shape {list(shape)} of "
            f"{datatype} needs {expected}"
        )
    return np.frombuffer(raw, dtype=_little(np_type)).reshape(shape)


def _unpack_bytes(name: str, raw: memoryview, count: int) -> np.ndarray:
    out = np.empty(count, dtype=object)
    offset, end = 0, len(raw)
    for i in range(count):
        if offset + 4 > end:
            raise InvalidArgument(
                f"Input '{name}' BYTES data ends after {i} of {count} elements; expected each "
                "element as a 4-byte little-endian length followed by that many bytes"
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > end:
            raise InvalidArgument(
                f"Input '{name}' BYTES element {i} declares {length} bytes but only "
                f"{end - offset} remain"
            )
        out[i] = bytes(raw[offset : offset + length])
        offset += length
    if offset != end:
        raise InvalidArgument(
            f"Input '{name}' has {end - offset} bytes left over after its {count} BYTES elements"
        )
    return out


def to_binary(array: np.ndarray) -> bytes:
    """An output's raw bytes: little-endian values, or length-prefixed BYTES elements."""
    if array.dtype == object or array.dtype.kind in "SU":
        parts: list[bytes] = []
        for value in array.reshape(-1):
            data = value if isinstance(value, bytes) else str(value).encode()
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    little = array.astype(_little(array.dtype), copy=False)
    return np.ascontiguousarray(little).tobytes()


def _little(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The little-endian form of a numeric dtype (ml_dtypes' bfloat16 has no byte order
    of its own to set and is stored in the machine's, little-endian on every target)."""
    return dtype if dtype.kind == "V" or dtype.itemsize == 1 else dtype.newbyteorder("<")


# ---- gRPC typed contents --------------------------------------------------------------------
CONTENTS_FIELD: Final[dict[str, str]] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def from_contents(name: str, datatype: str, shape: Sequence[int], contents: Any) -> np.ndarray:
    """A gRPC ``InferTensorContents`` (the field the datatype uses) as an array."""
    np_type = numpy_type(name, datatype)
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise InvalidArgument(
            f"Input '{name}' of datatype {datatype} must travel in raw_input_contents "
            "(InferTensorContents has no field for it)"
        )
    values = getattr(contents, field)
    if datatype == "BYTES":
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
    else:
        array = np.asarray(values, dtype=np_type)  # range was checked by the wire type
    return _reshape(name, array, shape)


def fill_contents(array: np.ndarray, datatype: str, contents: Any) -> bool:
    """Write an output into typed ``contents``; False when the datatype has no field."""
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        return False
    flat = array.reshape(-1)
    if datatype == "BYTES":
        getattr(contents, field).extend(
            v if isinstance(v, bytes) else str(v).encode() for v in flat
        )
    else:
        getattr(contents, field).extend(flat.tolist())
    return True
