"""``TensorProto`` <-> numpy with TensorFlow's ``Tensor::FromProto`` / ``AsProto*`` semantics.

Decoding (:func:`to_numpy`) follows ``tensorflow/core/framework/tensor.cc``: a non-empty
``tensor_content`` wins (raw little-endian, row-major; for DT_STRING TensorFlow's string-list
encoding: one varint32 length per element, then the bytes); otherwise the typed ``*_val`` field
of the dtype is used, with the last value repeated when there are fewer values than elements
and zeros when there are none. It is stricter than TensorFlow where a payload cannot describe
the declared shape: every declared shape is checked against the payload before anything is
allocated, so a small request can never make the server allocate a huge array by accident.

Encoding (:func:`from_numpy`) produces ``Tensor::AsProtoField`` (typed fields, TF Serving's
default response encoding) or ``Tensor::AsProtoTensorContent`` (``--enable_serialization_as_
tensor_content``) protos.

Supported dtypes: float, double, int8/16/32/64, uint8/16/32/64, bool, half, bfloat16 (as
``ml_dtypes.bfloat16``), complex64/128 and string (numpy ``object`` arrays of ``bytes``).
Quantized, resource, variant and reference dtypes are rejected with ``InvalidArgument``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

from tensorserve import dtypes
from tensorserve.errors import InvalidArgument

MAX_RANK: Final = 64
"""numpy's limit on dimensions (TensorFlow's ``TensorShape::MaxDimensions()`` is 254; a tensor
between the two cannot be decoded here, so it is refused as too deep, never an error)."""

MAX_ELEMENTS: Final = 2**63 - 1
"""A shape whose element count overflows int64 is invalid, as in ``TensorShape::IsValid``."""

MAX_EXPANDED_ELEMENTS: Final = 2**26  # 256 MiB of float32 from "repeat the last value"
"""Default cap on the element count a typed field may be expanded to by repeating its last value
(or zero-filling). Payloads that hold every element themselves are not capped."""


@dataclass(frozen=True, slots=True)
class _Field:
    """How one dtype travels in ``TensorProto``'s typed fields."""

    name: str  # the repeated field, e.g. "float_val"
    number: int  # its field number in tensor.proto
    wire: np.dtype[np.generic]  # numpy dtype of the field's values
    packed: bool = False  # fixed-width values: encoded as raw packed bytes (fast path)
    per_element: int = 1  # field values per tensor element (2 for complex: real, imag)


_INT_VAL: Final = _Field("int_val", 7, np.dtype(np.int32))
_HALF_VAL: Final = _Field("half_val", 13, np.dtype(np.int32))

# Field numbers equal tensorflow/core/framework/tensor.proto (checked by the unit tests).
_FIELDS: Final[dict[int, _Field]] = {
    dtypes.DT_FLOAT: _Field("float_val", 5, np.dtype(np.float32), packed=True),
    dtypes.DT_DOUBLE: _Field("double_val", 6, np.dtype(np.float64), packed=True),
    dtypes.DT_INT32: _INT_VAL,
    dtypes.DT_UINT8: _INT_VAL,
    dtypes.DT_INT16: _INT_VAL,
    dtypes.DT_INT8: _INT_VAL,
    dtypes.DT_UINT16: _INT_VAL,
    dtypes.DT_STRING: _Field("string_val", 8, np.dtype(object)),
    dtypes.DT_COMPLEX64: _Field(
        "scomplex_val", 9, np.dtype(np.float32), packed=True, per_element=2
    ),
    dtypes.DT_INT64: _Field("int64_val", 10, np.dtype(np.int64)),
    dtypes.DT_BOOL: _Field("bool_val", 11, np.dtype(np.bool_), packed=True),
    dtypes.DT_COMPLEX128: _Field(
        "dcomplex_val", 12, np.dtype(np.float64), packed=True, per_element=2
    ),
    dtypes.DT_HALF: _HALF_VAL,
    dtypes.DT_BFLOAT16: _HALF_VAL,
    dtypes.DT_UINT32: _Field("uint32_val", 16, np.dtype(np.uint32)),
    dtypes.DT_UINT64: _Field("uint64_val", 17, np.dtype(np.uint64)),
}


def to_numpy(
    proto: tensor_pb2.TensorProto, *, max_expanded_elements: int = MAX_EXPANDED_ELEMENTS
) -> np.ndarray:
    """Decode ``proto`` into a C-contiguous array of its dtype and shape.

    DT_STRING yields an ``object`` array of ``bytes``. Arrays decoded from ``tensor_content``
    are read-only views of the proto's bytes (``np.frombuffer``); copy before writing.
    Raises ``InvalidArgument`` naming the problem for unsupported dtypes, invalid shapes, a
    ``tensor_content`` whose size does not match the shape, more typed values than elements,
    or an expansion (repeat-last-value / zero-fill) beyond ``max_expanded_elements``.
    """
    code = proto.dtype
    target = _numpy_dtype(code)
    shape = _shape(proto.tensor_shape)
    count = _num_elements(shape)
    content = proto.tensor_content
    if content:
        return _from_content(content, code, target, shape, count)
    return _from_field(proto, code, shape, count, max_expanded_elements)


def inputs_to_numpy(protos: Mapping[str, tensor_pb2.TensorProto]) -> dict[str, np.ndarray]:
    """Named input tensors; a parse error names the input, as TF Serving's does."""
    arrays: dict[str, np.ndarray] = {}
    for alias, proto in protos.items():
        try:
            arrays[alias] = to_numpy(proto)
        except InvalidArgument as exc:
            raise InvalidArgument(f"tensor parsing error: {alias}: {exc.message}") from exc
    return arrays


def from_numpy(
    array: np.ndarray, dtype: int | None = None, *, as_content: bool = False
) -> tensor_pb2.TensorProto:
    """Encode ``array`` as a ``TensorProto`` of ``dtype`` (default: derived from the array).

    ``as_content=False`` fills the typed ``*_val`` field (``Tensor::AsProtoField``);
    ``as_content=True`` fills ``tensor_content`` (``Tensor::AsProtoTensorContent``; DT_STRING
    then uses TensorFlow's varint string-list encoding, exactly as TF Serving does).
    Numeric arrays are cast to ``dtype``'s numpy type; for DT_STRING, ``bytes`` elements are
    kept and ``str`` elements encoded as UTF-8. Raises ``InvalidArgument`` for dtypes that
    cannot be encoded.
    """
    proto = tensor_pb2.TensorProto()
    fill(proto, array, dtype, as_content=as_content)
    return proto


def fill(
    proto: tensor_pb2.TensorProto,
    array: np.ndarray,
    dtype: int | None = None,
    *,
    as_content: bool = False,
) -> None:
    """:func:`from_numpy` into an existing, empty ``proto`` (e.g. a response map entry), so a
    large tensor is not copied once more."""
    code = dtypes.from_numpy(array.dtype) if dtype is None else dtype
    values = _coerce(array, code)
    proto.dtype = code  # type: ignore[assignment]
    _set_shape(proto.tensor_shape, values.shape)
    if as_content:
        proto.tensor_content = _content(values, code)
    else:
        _fill_field(proto, values, code)


def format_shape(shape: tuple[int, ...]) -> str:
    """``TensorShape::DebugString`` style: ``[2,3]``, ``[]`` for scalars."""
    return "[" + ",".join(map(str, shape)) + "]"


# -- decoding ---------------------------------------------------------------------------------


def _dtype_name(code: int) -> str:
    """``DT_FLOAT``, ``DT_FLOAT_REF``, ``DT_INVALID``, ``DT_99``..."""
    return dtypes.name(code) + ("_REF" if code > dtypes.REF_OFFSET else "")


def _numpy_dtype(code: int) -> np.dtype[np.generic]:
    """numpy dtype for a decodable ``code``; ``InvalidArgument`` otherwise."""
    if code == dtypes.DT_INVALID:
        raise InvalidArgument("TensorProto dtype is not set (DT_INVALID)")
    target = dtypes.NUMPY.get(code) if code in _FIELDS else None
    if target is None:
        raise InvalidArgument(f"TensorProto dtype {_dtype_name(code)} is not supported")
    return target


def _shape(shape_proto: tensor_shape_pb2.TensorShapeProto) -> tuple[int, ...]:
    """Dims of a ``TensorShapeProto`` that must describe a fully defined shape."""
    if shape_proto.unknown_rank:
        raise InvalidArgument("TensorProto tensor_shape has unknown_rank set; expected known dims")
    shape = tuple(d.size for d in shape_proto.dim)
    if len(shape) > MAX_RANK:
        raise InvalidArgument(
            f"TensorProto tensor_shape has {len(shape)} dimensions; at most {MAX_RANK} allowed "
            "(numpy's limit)"
        )
    for index, size in enumerate(shape):
        if size < 0:
            raise InvalidArgument(
                f"TensorProto tensor_shape dim {index} is {size}; expected a size >= 0"
            )
    return shape


def _num_elements(shape: tuple[int, ...]) -> int:
    """Element count; overflowing int64 along the way is invalid (``TensorShape::IsValid``),
    also behind a zero dimension (numpy cannot describe such an array, even empty)."""
    count = 1
    for size in shape:
        count *= size or 1
        if count > MAX_ELEMENTS // 16:  # 16: the widest element, so the byte size fits too
            raise InvalidArgument(
                f"TensorProto tensor_shape {format_shape(shape)} has too many elements "
                f"(more than {MAX_ELEMENTS // 16})"
            )
    return 0 if 0 in shape else count


def _from_content(
    content: bytes, code: int, target: np.dtype[np.generic], shape: tuple[int, ...], count: int
) -> np.ndarray:
    """Decode a non-empty ``tensor_content``."""
    if code == dtypes.DT_STRING:
        return _decode_string_list(content, count).reshape(shape)
    expected = count * target.itemsize
    if len(content) != expected:
        raise InvalidArgument(
            f"TensorProto tensor_content has {len(content)} bytes but shape "
            f"{format_shape(shape)} of {_dtype_name(code)} needs {expected} "
            f"({count} elements of {target.itemsize} bytes)"
        )
    return np.frombuffer(content, dtype=target.newbyteorder("<")).reshape(shape)


def _read_varint32(data: bytes, pos: int) -> tuple[int, int]:
    """One varint of at most 5 bytes at ``pos`` -> (value, next pos); ValueError if truncated."""
    value = 0
    for shift in range(0, 35, 7):
        byte = data[pos]  # IndexError when truncated
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
    raise ValueError("varint32 longer than 5 bytes")


def _decode_string_list(content: bytes, count: int) -> np.ndarray:
    """``port::DecodeStringList``: ``count`` varint32 lengths, then the concatenated bytes."""
    invalid = InvalidArgument(
        f"TensorProto tensor_content ({len(content)} bytes) is not a valid DT_STRING encoding "
        f"of {count} elements (a varint32 length per element, then the bytes)"
    )
    if count > len(content):  # each element needs at least its one-byte length
        raise invalid
    lengths: list[int] = []
    pos = 0
    try:
        for _ in range(count):
            length, pos = _read_varint32(content, pos)
            lengths.append(length)
    except (IndexError, ValueError):
        raise invalid from None
    if pos + sum(lengths) != len(content):
        raise invalid
    out = np.empty(count, dtype=object)
    for index, length in enumerate(lengths):
        out[index] = content[pos : pos + length]
        pos += length
    return out


def _from_field(
    proto: tensor_pb2.TensorProto, code: int, shape: tuple[int, ...], count: int, cap: int
) -> np.ndarray:
    """Decode the typed field of ``code``, repeating its last value up to ``count``."""
    spec = _FIELDS[code]
    field = getattr(proto, spec.name)
    if len(field) % spec.per_element:
        raise InvalidArgument(
            f"TensorProto {spec.name} has {len(field)} values; expected (real, imaginary) pairs"
        )
    available = len(field) // spec.per_element
    if available > count:
        raise InvalidArgument(
            f"TensorProto {spec.name} has {available} values but shape {format_shape(shape)} "
            f"holds only {count} elements"
        )
    if available < count and count > cap:
        raise InvalidArgument(
            f"TensorProto {spec.name} has {available} values to expand to shape "
            f"{format_shape(shape)}: {count} elements exceed the limit of {cap}"
        )
    if code == dtypes.DT_STRING:
        values = _object_array(list(field))
    else:
        values = _from_wire(np.asarray(field, dtype=spec.wire), code)
    return _expand(values, count).reshape(shape)


def _from_wire(values: np.ndarray, code: int) -> np.ndarray:
    """Typed-field values -> elements of ``code`` (integer narrowing wraps, as in C++)."""
    target = dtypes.NUMPY[code]
    if code in (dtypes.DT_HALF, dtypes.DT_BFLOAT16):
        return values.astype(np.uint16).view(target)  # bit patterns
    if target.kind == "c":
        return values.view(target)  # (real, imag) pairs
    return values.astype(target, copy=False)


def _object_array(items: list[bytes]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _expand(values: np.ndarray, count: int) -> np.ndarray:
    """``FromProtoField``: repeat the last value up to ``count``; no values -> zero/empty."""
    available = len(values)
    if available == count:
        return values
    if available == 0:
        if values.dtype == object:
            return np.full(count, b"", dtype=object)
        return np.zeros(count, dtype=values.dtype)
    out = np.empty(count, dtype=values.dtype)
    out[:available] = values
    out[available:] = values[-1]
    return out


# -- encoding ---------------------------------------------------------------------------------


def _coerce(array: np.ndarray, code: int) -> np.ndarray:
    """C-contiguous array of ``code``'s numpy type (object array of bytes for DT_STRING)."""
    target = dtypes.NUMPY.get(code) if code in _FIELDS else None
    if target is None or (code != dtypes.DT_STRING and array.dtype.kind in "OSU"):
        raise InvalidArgument(
            f"Cannot encode a numpy {array.dtype} array as a {_dtype_name(code)} TensorProto"
        )
    if code == dtypes.DT_STRING:
        return _object_array([_to_bytes(item) for item in array.ravel().tolist()]).reshape(
            array.shape
        )
    return np.asarray(array, dtype=target, order="C")


def _to_bytes(item: object) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    raise InvalidArgument(f"Cannot encode a {type(item).__name__} element as DT_STRING")


def _set_shape(shape_proto: tensor_shape_pb2.TensorShapeProto, shape: tuple[int, ...]) -> None:
    shape_proto.SetInParent()  # scalars still carry an (empty) shape, as in TensorFlow
    for size in shape:
        shape_proto.dim.add(size=size)


def _content(values: np.ndarray, code: int) -> bytes:
    """``AsProtoTensorContent`` bytes of a coerced array."""
    if code == dtypes.DT_STRING:
        return _encode_string_list(values.ravel().tolist())
    return values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes()


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _encode_string_list(items: list[bytes]) -> bytes:
    """``port::EncodeStringList``: a varint32 length per element, then the bytes."""
    return b"".join([_varint(len(item)) for item in items]) + b"".join(items)


def _fill_field(proto: tensor_pb2.TensorProto, values: np.ndarray, code: int) -> None:
    """``AsProtoField``: append every element to the typed field of ``code``."""
    spec = _FIELDS[code]
    flat = values.ravel()
    if code in (dtypes.DT_HALF, dtypes.DT_BFLOAT16):
        flat = flat.view(np.uint16)
    elif flat.dtype.kind == "c":
        flat = flat.view(spec.wire)
    if spec.packed:
        _merge_packed(
            proto, spec.number, flat.astype(spec.wire.newbyteorder("<"), copy=False).tobytes()
        )
    else:
        getattr(proto, spec.name).extend(flat.tolist())


def _merge_packed(proto: tensor_pb2.TensorProto, number: int, payload: bytes) -> None:
    """Append fixed-width values as one packed wire-format record (no per-element Python)."""
    if payload:
        proto.MergeFromString(_varint(number << 3 | 2) + _varint(len(payload)) + payload)
