"""TensorProto <-> numpy: round trips, TensorFlow parity and the safety checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2

from tensorserve import dtypes
from tensorserve.errors import InvalidArgument
from tensorserve.service import tensors
from tensorserve.service.tensors import from_numpy, to_numpy

SAMPLES: dict[str, np.ndarray] = {
    "float": np.array([[1.5, -2.0, np.inf], [0.0, 3.25, -0.0]], np.float32),
    "double": np.array([1e300, -2.5, np.nan], np.float64),
    "int32": np.array([[-(2**31), 0, 2**31 - 1]], np.int32),
    "uint8": np.array([0, 7, 255], np.uint8),
    "int16": np.array([-(2**15), 2**15 - 1], np.int16),
    "int8": np.array([[-128], [127]], np.int8),
    "uint16": np.array([0, 65535], np.uint16),
    "int64": np.array([-(2**63), 2**63 - 1, 5], np.int64),
    "uint32": np.array([0, 2**32 - 1], np.uint32),
    "uint64": np.array([0, 2**64 - 1], np.uint64),
    "bool": np.array([[True, False, True]]),
    "half": np.array([1.0, -2.5, 65504.0], np.float16),
    "bfloat16": np.array([1.0, -2.5, 3e38], ml_dtypes.bfloat16),
    "complex64": np.array([1 + 2j, -3.5 - 0.5j], np.complex64),
    "complex128": np.array([[1e200 + 2j], [-3 - 4j]], np.complex128),
    "string": np.array([[b"a", b""], [b"\x00\xff", "é".encode()]], dtype=object),
    "scalar": np.array(7.5, np.float32),
    "empty": np.zeros((0, 3), np.int32),
    "empty_string": np.empty((2, 0), dtype=object),
}


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.dtype == expected.dtype
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected)


def cpp_decode(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """TensorFlow's C++ ``Tensor::FromProto`` (via ``tf.io.parse_tensor``)."""
    decoded = tf.io.parse_tensor(proto.SerializeToString(), out_type=tf.as_dtype(proto.dtype))
    value: np.ndarray = decoded.numpy()
    if value.dtype.kind == "S" or (value.dtype == object and value.size == 0):
        value = value.astype(object)
    return value


def typed(dtype: int, shape: list[int], **fields: Any) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype, **fields)
    proto.tensor_shape.SetInParent()
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


# -- round trips and parity -------------------------------------------------------------------


@pytest.mark.parametrize("as_content", [False, True], ids=["field", "content"])
@pytest.mark.parametrize("name", SAMPLES)
def test_round_trip(name: str, as_content: bool) -> None:
    array = SAMPLES[name]
    assert_same(to_numpy(from_numpy(array, as_content=as_content)), array)


@pytest.mark.parametrize("as_content", [False, True], ids=["field", "content"])
@pytest.mark.parametrize("name", SAMPLES)
def test_tensorflow_cpp_decodes_what_we_encode(name: str, as_content: bool) -> None:
    array = SAMPLES[name]
    assert_same(cpp_decode(from_numpy(array, as_content=as_content)), array)


@pytest.mark.parametrize("name", [n for n in SAMPLES if SAMPLES[n].dtype != object])
def test_content_bytes_equal_tensorflow_as_proto_tensor_content(name: str) -> None:
    # SerializeTensor is AsProtoTensorContent for every dtype except DT_STRING.
    array = SAMPLES[name]
    expected = tf.io.serialize_tensor(tf.constant(array)).numpy()
    assert from_numpy(array, as_content=True).SerializeToString() == expected


def test_string_content_uses_tensorflow_string_list_encoding() -> None:
    # AsProtoTensorContent (TF Serving's --enable_serialization_as_tensor_content): varint32
    # lengths first, then the bytes (port::EncodeStringList).
    proto = from_numpy(np.array([b"ab", b"", b"c" * 200], dtype=object), as_content=True)
    assert proto.tensor_content == b"\x02\x00\xc8\x01" + b"ab" + b"c" * 200
    assert not proto.string_val


@pytest.mark.parametrize("name", [n for n in SAMPLES if SAMPLES[n].dtype != object])
def test_make_ndarray_reads_our_typed_fields(name: str) -> None:
    array = SAMPLES[name]
    assert_same(tf.make_ndarray(from_numpy(array)), array)


@pytest.mark.parametrize("name", SAMPLES)
def test_decodes_make_tensor_proto(name: str) -> None:
    array = SAMPLES[name]
    values = array.tolist() if array.dtype == object else array
    proto = tf.make_tensor_proto(values, dtype=tf.as_dtype(array.dtype), shape=array.shape)
    assert_same(to_numpy(proto), array)


@pytest.mark.parametrize(
    ("dtype", "fields", "shape"),
    [
        (dtypes.DT_FLOAT, {"float_val": [1.0, 2.5]}, [2, 3]),
        (dtypes.DT_INT32, {"int_val": [4]}, [3]),
        (dtypes.DT_UINT8, {"int_val": [1, 2, 3]}, [2, 2]),
        (dtypes.DT_INT64, {"int64_val": [-1, 9]}, [5]),
        (dtypes.DT_BOOL, {"bool_val": [False, True]}, [3]),
        (dtypes.DT_HALF, {"half_val": [15360]}, [2]),
        (dtypes.DT_BFLOAT16, {"half_val": [16256, 16384]}, [3]),
        (dtypes.DT_COMPLEX64, {"scomplex_val": [1.0, 2.0, 3.0, 4.0]}, [3]),
        (dtypes.DT_COMPLEX128, {"dcomplex_val": [1.0, -1.0]}, [2, 1]),
        (dtypes.DT_UINT64, {"uint64_val": [2**64 - 1]}, [2]),
        (dtypes.DT_STRING, {"string_val": [b"x", b"yz"]}, [2, 2]),
        (dtypes.DT_FLOAT, {}, [2, 2]),
        (dtypes.DT_INT16, {}, [3]),
        (dtypes.DT_COMPLEX64, {}, [2]),
        (dtypes.DT_BFLOAT16, {}, [2]),
        (dtypes.DT_STRING, {}, [3]),
        (dtypes.DT_DOUBLE, {}, []),
    ],
)
def test_repeat_last_value_and_zero_fill_match_tensorflow(
    dtype: int, fields: dict[str, list[Any]], shape: list[int]
) -> None:
    proto = typed(dtype, shape, **fields)
    expected = cpp_decode(proto)
    assert_same(to_numpy(proto), expected)
    if dtype != dtypes.DT_STRING:
        assert_same(tf.make_ndarray(proto), expected)


def test_integer_narrowing_wraps_like_tensorflow() -> None:
    proto = typed(dtypes.DT_UINT8, [3], int_val=[300, -1, 255])
    assert_same(to_numpy(proto), cpp_decode(proto))
    assert to_numpy(proto).tolist() == [44, 255, 255]


def test_tensor_content_wins_over_typed_values() -> None:
    proto = from_numpy(np.array([1.0, 2.0], np.float32), as_content=True)
    proto.float_val.extend([7.0, 8.0])
    assert to_numpy(proto).tolist() == [1.0, 2.0]


def test_decodes_string_tensor_content_like_tensorflow() -> None:
    content = b"\x02\x00\xac\x02\x01" + b"ab" + b"c" * 300 + b"d"
    proto = typed(dtypes.DT_STRING, [2, 2], tensor_content=content)
    assert_same(to_numpy(proto), cpp_decode(proto))
    assert to_numpy(proto).tolist() == [[b"ab", b""], [b"c" * 300, b"d"]]


def test_content_arrays_are_read_only_views_typed_arrays_are_writable() -> None:
    array = np.arange(4, dtype=np.float32)
    assert not to_numpy(from_numpy(array, as_content=True)).flags.writeable
    assert to_numpy(from_numpy(array)).flags.writeable


# -- encoding details -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "field", "expected"),
    [
        (np.array([1.0, -2.0], np.float16), "half_val", [15360, 49152]),
        (np.array([1.0], ml_dtypes.bfloat16), "half_val", [16256]),
        (np.array([-1, 5], np.int8), "int_val", [-1, 5]),
        (np.array([65535], np.uint16), "int_val", [65535]),
        (np.array([255], np.uint8), "int_val", [255]),
        (np.array([2**32 - 1], np.uint32), "uint32_val", [2**32 - 1]),
        (np.array([2**64 - 1], np.uint64), "uint64_val", [2**64 - 1]),
        (np.array([1 + 2j], np.complex64), "scomplex_val", [1.0, 2.0]),
        (np.array([3 - 4j], np.complex128), "dcomplex_val", [3.0, -4.0]),
        (np.array([True, False]), "bool_val", [True, False]),
        (np.array([0.5, 2.0], np.float32), "float_val", [0.5, 2.0]),
        (np.array([0.25], np.float64), "double_val", [0.25]),
        (np.array(["é", b"\xff"], dtype=object), "string_val", ["é".encode(), b"\xff"]),
        (np.array(["ab", "c"]), "string_val", [b"ab", b"c"]),
        (np.array([b"ab", b"c"]), "string_val", [b"ab", b"c"]),
    ],
)
def test_typed_field_encoding(array: np.ndarray, field: str, expected: list[Any]) -> None:
    proto = from_numpy(array)
    assert list(getattr(proto, field)) == expected
    assert not proto.tensor_content


def test_typed_encoding_is_row_major_for_non_contiguous_arrays() -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3).T
    proto = from_numpy(array)
    assert [d.size for d in proto.tensor_shape.dim] == [3, 2]
    assert list(proto.float_val) == [0, 3, 1, 4, 2, 5]


def test_scalar_carries_an_empty_shape() -> None:
    proto = from_numpy(np.array(1, np.int32))
    assert proto.HasField("tensor_shape")
    assert not proto.tensor_shape.dim


def test_explicit_dtype_casts() -> None:
    proto = from_numpy(np.array([1.5, 2.5]), dtypes.DT_HALF)
    assert proto.dtype == dtypes.DT_HALF
    assert_same(to_numpy(proto), np.array([1.5, 2.5], np.float16))


def test_field_numbers_match_tensor_proto() -> None:
    by_name = tensor_pb2.TensorProto.DESCRIPTOR.fields_by_name
    for spec in tensors._FIELDS.values():
        assert by_name[spec.name].number == spec.number


# -- safety -----------------------------------------------------------------------------------


def _shape_proto(proto: tensor_pb2.TensorProto, shape: list[int]) -> tensor_pb2.TensorProto:
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    return proto


def _unknown_rank() -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtypes.DT_FLOAT, float_val=[1.0])
    proto.tensor_shape.unknown_rank = True
    return proto


BAD_PROTOS: dict[str, tuple[Callable[[], tensor_pb2.TensorProto], str]] = {
    "negative_dim": (
        lambda: typed(dtypes.DT_FLOAT, [2, -1], float_val=[1.0]),
        "dim 1 is -1; expected a size >= 0",
    ),
    "int64_overflow": (
        lambda: typed(dtypes.DT_FLOAT, [2**32, 2**32], float_val=[1.0]),
        "[4294967296,4294967296] has too many elements",
    ),
    "overflow_before_zero_dim": (
        lambda: typed(dtypes.DT_FLOAT, [2**62, 4, 0]),
        "has too many elements",
    ),
    "unknown_rank": (_unknown_rank, "unknown_rank"),
    "too_many_dims": (lambda: typed(dtypes.DT_FLOAT, [1] * 65), "65 dimensions; at most 64"),
    "zero_dim_hides_overflow": (
        lambda: typed(dtypes.DT_FLOAT, [0, 2**62, 2**62]),
        "has too many elements",
    ),
    "content_too_short": (
        lambda: typed(dtypes.DT_FLOAT, [2, 3], tensor_content=b"\0" * 20),
        "tensor_content has 20 bytes but shape [2,3] of DT_FLOAT needs 24 (6 elements of 4 bytes)",
    ),
    "content_too_long": (
        lambda: typed(dtypes.DT_INT64, [1], tensor_content=b"\0" * 9),
        "has 9 bytes but shape [1] of DT_INT64 needs 8",
    ),
    "content_for_huge_shape": (
        lambda: typed(dtypes.DT_DOUBLE, [2**40, 2**18], tensor_content=b"\0" * 8),
        "needs 2305843009213693952",
    ),
    "content_for_empty_shape": (
        lambda: typed(dtypes.DT_FLOAT, [0], tensor_content=b"\0" * 4),
        "has 4 bytes but shape [0] of DT_FLOAT needs 0",
    ),
    "too_many_values": (
        lambda: typed(dtypes.DT_FLOAT, [2], float_val=[1.0, 2.0, 3.0]),
        "float_val has 3 values but shape [2] holds only 2 elements",
    ),
    "values_for_empty_shape": (
        lambda: typed(dtypes.DT_STRING, [0], string_val=[b"a"]),
        "string_val has 1 values but shape [0] holds only 0 elements",
    ),
    "too_many_complex_values": (
        lambda: typed(dtypes.DT_COMPLEX64, [1], scomplex_val=[1.0, 2.0, 3.0, 4.0]),
        "scomplex_val has 2 values but shape [1] holds only 1 elements",
    ),
    "odd_complex_values": (
        lambda: typed(dtypes.DT_COMPLEX128, [2], dcomplex_val=[1.0, 2.0, 3.0]),
        "dcomplex_val has 3 values; expected (real, imaginary) pairs",
    ),
    "repeat_above_cap": (
        lambda: typed(dtypes.DT_FLOAT, [2**26 + 1], float_val=[1.0]),
        "float_val has 1 values to expand to shape [67108865]: 67108865 elements exceed "
        "the limit of 67108864",
    ),
    "zero_fill_above_cap": (
        lambda: typed(dtypes.DT_STRING, [2**20, 2**12]),
        "string_val has 0 values to expand",
    ),
    "dtype_invalid": (lambda: typed(dtypes.DT_INVALID, [1]), "dtype is not set (DT_INVALID)"),
    "dtype_resource": (lambda: typed(dtypes.DT_RESOURCE, [1]), "DT_RESOURCE is not supported"),
    "dtype_variant": (lambda: typed(dtypes.DT_VARIANT, [1]), "DT_VARIANT is not supported"),
    "dtype_ref": (
        lambda: typed(dtypes.DT_FLOAT + dtypes.REF_OFFSET, [1], float_val=[1.0]),
        "DT_FLOAT_REF is not supported",
    ),
    "dtype_quantized": (lambda: typed(dtypes.DT_QINT8, [1]), "DT_QINT8 is not supported"),
    "dtype_unknown": (lambda: typed(99, [1]), "dtype DT_99 is not supported"),
    "string_content_truncated_varint": (
        lambda: typed(dtypes.DT_STRING, [2], tensor_content=b"\x01\x80"),
        "is not a valid DT_STRING encoding of 2 elements",
    ),
    "string_content_length_mismatch": (
        lambda: typed(dtypes.DT_STRING, [2], tensor_content=b"\x01\x02abcd"),
        "(6 bytes) is not a valid DT_STRING encoding of 2 elements",
    ),
    "string_content_too_few_bytes_for_count": (
        lambda: typed(dtypes.DT_STRING, [2**40], tensor_content=b"\x00"),
        "is not a valid DT_STRING encoding of 1099511627776 elements",
    ),
    "string_content_overlong_varint": (
        lambda: typed(dtypes.DT_STRING, [1], tensor_content=b"\x80\x80\x80\x80\x80\x00"),
        "is not a valid DT_STRING encoding",
    ),
}


@pytest.mark.parametrize("case", BAD_PROTOS)
def test_invalid_protos_are_rejected(case: str) -> None:
    make, message = BAD_PROTOS[case]
    with pytest.raises(InvalidArgument) as info:
        to_numpy(make())
    assert message in info.value.message


def test_expansion_cap_is_configurable() -> None:
    proto = typed(dtypes.DT_INT32, [5], int_val=[1])
    assert to_numpy(proto, max_expanded_elements=5).tolist() == [1] * 5
    with pytest.raises(InvalidArgument, match="5 elements exceed the limit of 4"):
        to_numpy(proto, max_expanded_elements=4)
    exact = typed(dtypes.DT_INT32, [5], int_val=[1, 2, 3, 4, 5])
    assert to_numpy(exact, max_expanded_elements=1).tolist() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("array", "dtype", "message"),
    [
        (np.array([1, "a"], dtype=object), None, "Cannot encode a int element as DT_STRING"),
        (np.array(["1.5"]), dtypes.DT_FLOAT, "numpy <U3 array as a DT_FLOAT TensorProto"),
        (np.array(["1"], dtype=object), dtypes.DT_INT64, "object array as a DT_INT64"),
        (np.array([1], "datetime64[s]"), None, "datetime64[s] array as a DT_INVALID"),
        (np.array([1.0]), dtypes.DT_RESOURCE, "float64 array as a DT_RESOURCE"),
        (np.array([1.0]), dtypes.DT_QINT32, "as a DT_QINT32"),
    ],
)
def test_unencodable_arrays_are_rejected(
    array: np.ndarray, dtype: int | None, message: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        from_numpy(array, dtype)
    assert message in info.value.message
