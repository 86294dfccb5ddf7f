"""Tests for the REST JSON codec: TF Serving's util/json_tensor rules and messages."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import orjson
import pytest
from google.protobuf import text_format
from tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2

from tensorserve import dtypes
from tensorserve.errors import InvalidArgument, ServingError, Unimplemented
from tensorserve.protocols.rest import json_decode, json_encode, json_examples
from tensorserve.servable import SignatureSpec, TensorSpec

F32, F64 = dtypes.DT_FLOAT, dtypes.DT_DOUBLE
I8, I16, I32, I64 = dtypes.DT_INT8, dtypes.DT_INT16, dtypes.DT_INT32, dtypes.DT_INT64
U8, U16, U32, U64 = dtypes.DT_UINT8, dtypes.DT_UINT16, dtypes.DT_UINT32, dtypes.DT_UINT64
BOOL, STR = dtypes.DT_BOOL, dtypes.DT_STRING


def _sig(**inputs: int) -> SignatureSpec:
    specs = {name: TensorSpec(f"{name}:0", code, None) for name, code in inputs.items()}
    return SignatureSpec("serving_default", "tensorflow/serving/predict", specs, {})


def _decode(body: bytes, **inputs: int) -> dict[str, np.ndarray]:
    return json_decode.decode_inputs(
        json_decode.parse_predict(json_decode.loads(body)), _sig(**inputs)
    )


def _decode_error(body: bytes, **inputs: int) -> ServingError:
    with pytest.raises(ServingError) as info:
        _decode(body, **inputs)
    return info.value


def _example_input(text: str) -> input_pb2.Input:
    return text_format.Parse(text, input_pb2.Input())


# ------------------------------------------------------------------------------ loads


def test_loads_parses_rfc_json() -> None:
    assert json_decode.loads(b'{"instances": [1, 2.5, "a", true, null]}') == {
        "instances": [1, 2.5, "a", True, None]
    }


def test_loads_accepts_bare_nan_and_infinity_tokens() -> None:
    doc = json_decode.loads(b'{"a": [NaN, Infinity, -Infinity, 1.5]}')
    nan, pos_inf, neg_inf, plain = doc["a"]
    assert math.isnan(nan) and pos_inf == math.inf and neg_inf == -math.inf and plain == 1.5


def test_loads_skips_utf8_bom() -> None:
    assert json_decode.loads(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}


def test_loads_reads_integers_beyond_uint64_as_doubles() -> None:
    assert json_decode.loads(b"[18446744073709551616]") == [18446744073709551616.0]


def test_loads_empty_body_message_matches_tf_serving() -> None:
    with pytest.raises(InvalidArgument) as info:
        json_decode.loads(b"")
    assert str(info.value) == "JSON Parse error: The document is empty"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"   ", "JSON Parse error: The document is empty. at offset: 0"),
        (b"[1,]", "JSON Parse error: trailing comma is not allowed at offset: 2"),
        (b"[1] x", "JSON Parse error: unexpected content after document at offset: 4"),
        (
            b'["\xc3\xa9", x]',
            "JSON Parse error: Invalid value. at offset: 6",
        ),
        (b"[NaN, x]", "JSON Parse error: Invalid value. at offset: 6"),
        # orjson counts characters here, as on the fast path ("é" is one).
        (b'["\xc3\xa9", NaN, x]', "JSON Parse error: Invalid value. at offset: 11"),
        (b'[NaN, "\xff"]', "JSON Parse error: Invalid encoding in string. at offset: 7"),
    ],
    ids=[
        "blank",
        "trailing-comma",
        "extra-data",
        "byte-offset",
        "fallback",
        "fallback-bytes",
        "utf8",
    ],
)
def test_loads_parse_errors_report_reason_and_byte_offset(body: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        json_decode.loads(body)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b"[" * 100_000 + b"NaN",
        b'["\xff\xfe"]',
        b"[1e400]",
        b"[NaN, 1e400]",
        b"[" + b"9" * 5000 + b"]",
        b"[NaN, " + b"9" * 5000 + b"]",
        b"\x00",
        b'{"a": "\\ud800"}',
    ],
    ids=[
        "deep",
        "deep-fallback",
        "bad-utf8",
        "huge-double",
        "huge-double-fallback",
        "huge-int",
        "huge-int-fallback",
        "nul",
        "lone-surrogate",
    ],
)
def test_loads_raises_only_invalid_argument_on_hostile_input(body: bytes) -> None:
    with pytest.raises(InvalidArgument, match=r"^JSON Parse error: "):
        json_decode.loads(body)


# ---------------------------------------------------------------------- parse_predict


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"instances": [1]}, json_decode.PredictBody("", False, [1])),
        ({"signature_name": "s", "instances": [[1]]}, json_decode.PredictBody("s", False, [[1]])),
        ({"inputs": 5}, json_decode.PredictBody("", True, 5)),
        ({"inputs": {"a": [1]}, "other": 1}, json_decode.PredictBody("", True, {"a": [1]})),
        ({"inputs": []}, json_decode.PredictBody("", True, [])),
    ],
)
def test_parse_predict_accepts(doc: Any, expected: json_decode.PredictBody) -> None:
    assert json_decode.parse_predict(doc) == expected


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([1], "JSON Value: [1] Is not object"),
        ("x", 'JSON Value: "x" Is not object'),
        (
            {"signature_name": 5, "instances": [1]},
            'JSON Value: {"signature_name":5,"instances":[1]} not formatted correctly. '
            "'signature_name' key must be a string value.",
        ),
        (
            {"instances": [1], "inputs": [1]},
            'JSON Value: {"instances":[1],"inputs":[1]} Not formatted correctly expecting only '
            "one of 'inputs' or 'instances' keys to exist ",
        ),
        ({"signature_name": "s"}, "Missing 'inputs' or 'instances' key"),
        (
            {"instances": {"a": 1}},
            """JSON Value: {"instances":{"a":1}} Excepting 'instances' to be an list/array""",
        ),
        ({"instances": []}, """JSON Value: {"instances":[]} No values in 'instances' array"""),
    ],
    ids=["list", "string", "signature", "both", "neither", "not-list", "empty"],
)
def test_parse_predict_rejects_with_tf_messages(doc: Any, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        json_decode.parse_predict(doc)
    assert str(info.value) == message


def test_parse_predict_truncates_quoted_documents() -> None:
    doc = {"instances": {"a": list(range(100_000))}}
    with pytest.raises(InvalidArgument) as info:
        json_decode.parse_predict(doc)
    message = str(info.value)
    assert message.startswith('JSON Value: {"instances":{"a":[0,1,2,')
    assert message.endswith("... Excepting 'instances' to be an list/array")
    assert len(message) < 300


# ------------------------------------------------------------------ decode: successes


def _check(result: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert list(result) == list(expected)
    for name, want in expected.items():
        got = result[name]
        assert got.dtype == want.dtype, name
        assert got.shape == want.shape, name
        if got.dtype != object:
            assert got.flags.c_contiguous, name
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("body", "inputs", "expected"),
    [
        (
            b'{"instances": [[1,2],[3,4],[5,6]]}',
            {"default": I32},
            {"default": np.array([[1, 2], [3, 4], [5, 6]], np.int32)},
        ),
        (
            b'{"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]}',
            {"default": F32},
            {"default": np.array([1, 2, 3, 4, 5.003, 0.007, 0], np.float32)},
        ),
        (
            b'{"instances": [1.0, 2, 3, 4, 0.662, 0, 0.0]}',
            {"default": F64},
            {"default": np.array([1, 2, 3, 4, 0.662, 0, 0], np.float64)},
        ),
        (
            b'{"signature_name": "predict_images", "instances": [[1,2]]}',
            {"default": I32},
            {"default": np.array([[1, 2]], np.int32)},
        ),
        (
            b'{"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]}',
            {"default": STR},
            {"default": np.array([b"hello", b"world"], object)},
        ),
        (
            b'{"instances": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}',
            {"default": STR},
            {"default": np.array([[b"hello"], [b"world"]], object)},
        ),
        (
            b'{"instances": [{"default": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}]}',
            {"default": STR},
            {"default": np.array([[[b"hello"], [b"world"]]], object)},
        ),
        (
            b'{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]]}}',
            {"int_tensor": I32},
            {"int_tensor": np.array([[[1, 2], [3, 4], [5, 6]]], np.int32)},
        ),
        (
            b'{"inputs": [[[1,2],[3,4],[5,6]]]}',
            {"int_tensor": I32},
            {"int_tensor": np.array([[[1, 2], [3, 4], [5, 6]]], np.int32)},
        ),
        (
            b'{"inputs": {"i": [[1,2]], "s": ["foo", "bar"], "b": {"b64": "aGVsbG8="}}}',
            {"i": I32, "s": STR, "b": STR},
            {
                "i": np.array([[1, 2]], np.int32),
                "s": np.array([b"foo", b"bar"], object),
                "b": np.array(b"hello", object),
            },
        ),
        (b'{"inputs": 5}', {"x": F32}, {"x": np.array(5, np.float32)}),
        (b'{"inputs": []}', {"x": I32}, {"x": np.zeros((0,), np.int32)}),
        (b'{"instances": [[], []]}', {"x": STR}, {"x": np.empty((2, 0), object)}),
        (b'{"instances": [[]]}', {"x": BOOL}, {"x": np.zeros((1, 0), np.bool_)}),
        (b'{"instances": [{"x": [1, 2]}]}', {"x": I64}, {"x": np.array([[1, 2]], np.int64)}),
        (
            b'{"inputs": {"x": [1], "unknown": "ignored like TF Serving"}}',
            {"x": U8},
            {"x": np.array([1], np.uint8)},
        ),
    ],
    ids=[
        "row-int32",
        "row-mixed-float",
        "row-mixed-double",
        "signature-name",
        "b64-scalars",
        "b64-lists",
        "b64-named",
        "columnar-named",
        "columnar-unnamed",
        "columnar-multi",
        "columnar-scalar",
        "columnar-empty",
        "row-empty-strings",
        "row-empty-bool",
        "row-named-single",
        "columnar-extra-key",
    ],
)
def test_decode_inputs_matches_tf_serving(
    body: bytes, inputs: dict[str, int], expected: dict[str, np.ndarray]
) -> None:
    _check(_decode(body, **inputs), expected)


def test_decode_multiple_named_rows_with_non_finite_floats() -> None:
    body = b"""{"instances": [
        {"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"],
         "float_tensor": [1.0, NaN], "dbl_tensor": [NaN]},
        {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz", "bat"],
         "float_tensor": [2.0, Infinity], "dbl_tensor": [2.0]}]}"""
    result = _decode(body, int_tensor=I32, str_tensor=STR, float_tensor=F32, dbl_tensor=F64)
    _check(
        result,
        {
            "int_tensor": np.array([[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]], np.int32),
            "str_tensor": np.array([[b"foo", b"bar"], [b"baz", b"bat"]], object),
            "float_tensor": np.array([[1.0, np.nan], [2.0, np.inf]], np.float32),
            "dbl_tensor": np.array([[np.nan], [2.0]], np.float64),
        },
    )


@pytest.mark.parametrize(
    ("code", "values", "dtype"),
    [
        (I8, [-128, 0, 127], np.int8),
        (I16, [-32768, 32767], np.int16),
        (I32, [-(2**31), 2**31 - 1], np.int32),
        (I64, [-(2**63), 2**63 - 1], np.int64),
        (U8, [0, 255], np.uint8),
        (U16, [0, 65535], np.uint16),
        (U32, [0, 2**32 - 1], np.uint32),
        (U64, [0, 2**64 - 1], np.uint64),
        (BOOL, [True, False], np.bool_),
        (F32, [0.1, -2.5, 16777215, -16777215, 3.4e38], np.float32),
        (F64, [0.1, 1e300, 9007199254740991], np.float64),
    ],
)
def test_decode_each_dtype_at_its_limits(code: int, values: list[Any], dtype: type) -> None:
    body = orjson.dumps({"inputs": [values, values]})
    _check(_decode(body, x=code), {"x": np.array([values, values], dtype)})


def test_decode_strings_are_utf8_bytes() -> None:
    result = _decode('{"inputs": [["héllo", "✓"]]}'.encode(), x=STR)
    _check(result, {"x": np.array([["héllo".encode(), "✓".encode()]], object)})


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("aGVsbG8=", b"hello"),
        ("aGVsbG8", b"hello"),
        ("aGVs bG8=", b"hello"),
        ("", b""),
        ("+/8=", b"\xfb\xff"),
    ],
    ids=["padded", "unpadded", "whitespace", "empty", "std-alphabet"],
)
def test_decode_base64_follows_absl_leniency(encoded: str, decoded: bytes) -> None:
    result = _decode(orjson.dumps({"inputs": {"b64": encoded}}), x=STR)
    assert result["x"].shape == () and result["x"][()] == decoded


def test_decode_reference_dtype_uses_base_type() -> None:
    result = _decode(b'{"inputs": [1.5]}', x=F32 + dtypes.REF_OFFSET)
    _check(result, {"x": np.array([1.5], np.float32)})


def test_decode_integers_beyond_uint64_are_doubles_for_float_inputs() -> None:
    # rapidjson reads them as doubles; orjson does the same.
    result = _decode(b'{"inputs": [18446744073709551616, -9223372036854775809]}', x=F64)
    _check(result, {"x": np.array([2.0**64, -(2.0**63)], np.float64)})


def test_decode_exact_path_accepts_python_big_ints_like_the_fast_path() -> None:
    # Documents built outside orjson (or by the NaN fallback parser) may hold big ints.
    body = json_decode.PredictBody("", True, [[1.5, 2**70], [float("nan"), -(2**70)]])
    result = json_decode.decode_inputs(body, _sig(x=F32))
    _check(result, {"x": np.array([[1.5, 2.0**70], [np.nan, -(2.0**70)]], np.float32)})


def test_decode_large_batch_is_one_contiguous_array() -> None:
    rows = np.random.default_rng(0).random((64, 784), dtype=np.float32)
    body = orjson.dumps({"instances": rows}, option=orjson.OPT_SERIALIZE_NUMPY)
    _check(_decode(body, x=F32), {"x": rows})


def test_decode_named_rows_mixing_numeric_and_string_inputs() -> None:
    body = b"""{"instances": [{"image": [[0.5, 1]], "key": "a"},
                              {"image": [[2, 3.5]], "key": {"b64": "Yg=="}}]}"""
    _check(
        _decode(body, image=F32, key=STR),
        {
            "image": np.array([[[0.5, 1]], [[2, 3.5]]], np.float32),
            "key": np.array([b"a", b"b"], object),
        },
    )
    error = _decode_error(body.replace(b'{"b64": "Yg=="}', b"5"), image=F32, key=STR)
    assert str(error) == (
        "Failed to process element: 1 key: key of 'instances' list. Error: INVALID_ARGUMENT: "
        "JSON Value: 5 Type: Number is not of expected type: string "
        "(input: 'key', expected dtype: string)"
    )


def test_decode_fast_path_leniency_mixed_bool_is_documented() -> None:
    # Documented trade-off: a boolean among numbers is read as 1/0 on the numpy path.
    _check(_decode(b'{"inputs": [1.5, true]}', x=F32), {"x": np.array([1.5, 1.0], np.float32)})


# --------------------------------------------------------------------- decode: errors


_IN = "(input: 'x', expected dtype: {})"


def _row(index: int, message: str) -> str:
    prefix = f"Failed to process element: {index} of 'instances' list. Error: INVALID_ARGUMENT: "
    return prefix + message


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            b'{"instances": [[1,2],[3,4],[5,6,7]]}',
            I32,
            _row(2, "Expecting tensor size: 2 but got: 3 " + _IN.format("int32")),
        ),
        (
            b'{"instances": [[1,2],[3,4],[[5,6]]]}',
            I32,
            _row(2, "Expecting shape [2] but got: [1,2] " + _IN.format("int32")),
        ),
        (
            b'{"instances": [1, [1]]}',
            I32,
            _row(1, "Expecting shape [] but got: [1] " + _IN.format("int32")),
        ),
        (
            b'{"instances": [[1,2],["a", "b"]]}',
            I32,
            _row(
                1,
                'JSON Value: "a" Type: String is not of expected type: int32 '
                + _IN.format("int32"),
            ),
        ),
        (
            b'{"instances": [1.7976931348623157e+308]}',
            F32,
            _row(
                0,
                "Cannot convert JSON value: 1.7976931348623157e+308 to float without loss of "
                "precision. " + _IN.format("float"),
            ),
        ),
        (
            b'{"instances": [16777217]}',
            F32,
            _row(
                0,
                "Cannot convert JSON value: 16777217 to float without loss of precision. "
                + _IN.format("float"),
            ),
        ),
        (
            b'{"instances": [9007199254740993]}',
            F64,
            _row(
                0,
                "Cannot convert JSON value: 9007199254740993 to double without loss of "
                "precision. " + _IN.format("double"),
            ),
        ),
        (
            b'{"inputs": [1, 1.0]}',
            I32,
            "JSON Value: 1.0 Type: Number is not of expected type: int32 " + _IN.format("int32"),
        ),
        (
            b'{"inputs": [true]}',
            F32,
            "JSON Value: true Type: True is not of expected type: float " + _IN.format("float"),
        ),
        (
            b'{"inputs": [false, false]}',
            I64,
            "JSON Value: false Type: False is not of expected type: int64 " + _IN.format("int64"),
        ),
        (
            b'{"inputs": ["1.5"]}',
            F32,
            'JSON Value: "1.5" Type: String is not of expected type: float ' + _IN.format("float"),
        ),
        (
            b'{"inputs": [1.0, null]}',
            F64,
            "JSON Value: null Type: Null is not of expected type: double " + _IN.format("double"),
        ),
        (
            b'{"inputs": [{"a": 1}]}',
            F32,
            'JSON Value: {"a":1} Type: Object is not of expected type: float '
            + _IN.format("float"),
        ),
        (
            b'{"inputs": [{"b64": "AAAA"}]}',
            I8,
            'JSON Value: {"b64":"AAAA"} Type: Object is not of expected type: int8 '
            + _IN.format("int8"),
        ),
        (
            b'{"inputs": [2147483648]}',
            I32,
            "JSON Value: 2147483648 Type: Number is not of expected type: int32 "
            + _IN.format("int32"),
        ),
        (
            b'{"inputs": [300]}',
            U8,
            "JSON Value: 300 Type: Number is out of range for expected type: uint8 "
            + _IN.format("uint8"),
        ),
        (
            b'{"inputs": [-129]}',
            I8,
            "JSON Value: -129 Type: Number is out of range for expected type: int8 "
            + _IN.format("int8"),
        ),
        (
            b'{"inputs": [70000]}',
            U16,
            "JSON Value: 70000 Type: Number is out of range for expected type: uint16 "
            + _IN.format("uint16"),
        ),
        (
            b'{"inputs": [-1]}',
            U32,
            "JSON Value: -1 Type: Number is not of expected type: uint32 " + _IN.format("uint32"),
        ),
        (
            b'{"inputs": [9223372036854775808]}',
            I64,
            "JSON Value: 9223372036854775808 Type: Number is not of expected type: int64 "
            + _IN.format("int64"),
        ),
        (
            b'{"inputs": [-1]}',
            U64,
            "JSON Value: -1 Type: Number is not of expected type: uint64 " + _IN.format("uint64"),
        ),
        (
            b'{"inputs": [NaN]}',
            I32,
            "JSON Value: NaN Type: Number is not of expected type: int32 " + _IN.format("int32"),
        ),
        (
            b'{"inputs": [true, 1]}',
            BOOL,
            "JSON Value: 1 Type: Number is not of expected type: bool " + _IN.format("bool"),
        ),
        (
            b'{"inputs": ["a", 5]}',
            STR,
            "JSON Value: 5 Type: Number is not of expected type: string " + _IN.format("string"),
        ),
        (
            b'{"inputs": [{"b64": 5}]}',
            STR,
            'JSON Value: {"b64":5} not formatted correctly for base64 data ' + _IN.format("string"),
        ),
        (
            b'{"inputs": [{"b64": "aGVsbG8=", "x": 1}]}',
            STR,
            'JSON Value: {"b64":"aGVsbG8=","x":1} not formatted correctly for base64 data '
            + _IN.format("string"),
        ),
        (
            b'{"inputs": {"b64": "_-8="}}',
            STR,
            "Unable to base64 decode " + _IN.format("string"),
        ),
        (
            b'{"inputs": {"b64": "aGVsbG8==="}}',
            STR,
            "Unable to base64 decode " + _IN.format("string"),
        ),
        (b'{"inputs": {"b64": "a"}}', STR, "Unable to base64 decode " + _IN.format("string")),
        (
            b'{"inputs": {"b64": "aGVs----bG8="}}',
            STR,
            "Unable to base64 decode " + _IN.format("string"),
        ),
        (
            b'{"inputs": {"b64": "h\xc3\xa9"}}',
            STR,
            "Unable to base64 decode " + _IN.format("string"),
        ),
        (
            b'{"inputs": [[1,2],3]}',
            F32,
            "JSON Value: 3 found at incorrect level: 2 in the JSON DOM. Expected at level: 2 "
            + _IN.format("float"),
        ),
        (
            b'{"inputs": [[1,2],[3,[4]]]}',
            F32,
            "Encountered list at unexpected level: 2 expected < 2 " + _IN.format("float"),
        ),
        (
            b'{"inputs": [["a","b"],["c"]]}',
            STR,
            "Encountered list at unexpected size: 1 at level: 1 expected size: 2 "
            + _IN.format("string"),
        ),
        (
            b'{"inputs": [[], [1]]}',
            F32,
            "Encountered list at unexpected size: 1 at level: 1 expected size: 0 "
            + _IN.format("float"),
        ),
    ],
)
def test_decode_rejects_bad_values_with_tf_messages(body: bytes, code: int, message: str) -> None:
    error = _decode_error(body, x=code)
    assert isinstance(error, InvalidArgument)
    assert str(error) == message


def test_decode_rejects_all_bool_payload_for_numbers() -> None:
    error = _decode_error(b'{"instances": [[true, false]]}', x=F32)
    assert "JSON Value: true Type: True is not of expected type: float" in str(error)


def test_decode_rejects_float32_overflow_next_to_non_finite_tokens() -> None:
    error = _decode_error(b'{"inputs": [NaN, 1e39]}', x=F32)
    assert "Cannot convert JSON value: 1e+39 to float without loss of precision." in str(error)


_MULTI = {"int_tensor": I32, "str_tensor": STR}
_MULTI_TAKES = (
    "Signature 'serving_default' takes int_tensor: DT_INT32 (any shape), "
    "str_tensor: DT_STRING (any shape)."
)


@pytest.mark.parametrize(
    ("body", "inputs", "message"),
    [
        (
            b"""{"instances": [{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"]},
                {"int_tensor": [[[7,8],[9,0],[1,2]]], "str_tensor": ["baz", "bat"]}]}""",
            _MULTI,
            "Failed to process element: 1 key: int_tensor of 'instances' list. Error: "
            "INVALID_ARGUMENT: Expecting shape [3,2] but got: [1,3,2] "
            "(input: 'int_tensor', expected dtype: int32)",
        ),
        (
            b"""{"instances": [{"int_tensor": [[1,2],[3,4],[5,6],[7,8]], "str_tensor": ["a"]},
                {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["b"]}]}""",
            _MULTI,
            "Failed to process element: 1 key: int_tensor of 'instances' list. Error: "
            "INVALID_ARGUMENT: Expecting tensor size: 8 but got: 6 "
            "(input: 'int_tensor', expected dtype: int32)",
        ),
        (
            b"""{"instances": [{"int_tensor": [1], "str_tensor": ["foo"]}, [1, 20, 30]]}""",
            _MULTI,
            "Expecting object but got list at item 1 of input list",
        ),
        (
            b"""{"instances": [["baz", "bar"], {"str_tensor": ["baz", "bat"]}]}""",
            {"str_tensor": STR},
            "Expecting value/list but got object at item 1 of input list",
        ),
        (
            b"""{"instances": [{"int_tensor": [1], "str_tensor": "a"}, {"int_tensor": [2]}]}""",
            _MULTI,
            """Failed to process element: 1 of 'instances' list. JSON object: {"int_tensor":[2]} """
            f"must only have keys: int_tensor,str_tensor {_MULTI_TAKES}",
        ),
        (
            b"""{"instances": [{"int_tensor": [1], "str_tensor": "a", "extra": 1}]}""",
            _MULTI,
            "Failed to process element: 0 key: extra of 'instances' list. Error: "
            f"INVALID_ARGUMENT: JSON object: does not have named input: extra {_MULTI_TAKES}",
        ),
        (
            b"""{"instances": [[1, 2]]}""",
            _MULTI,
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map",
        ),
        (
            b"""{"instances": [{"b64": "aGVsbG8="}]}""",
            _MULTI,
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map",
        ),
        (
            b"""{"inputs": [1, 2]}""",
            _MULTI,
            "inputs is a plain value/list, but expecting an object as multiple input tensors "
            "required as per tensorinfo_map",
        ),
        (
            b"""{"inputs": {"int_tensor": [1]}}""",
            _MULTI,
            f"Missing named input: str_tensor in 'inputs' object. {_MULTI_TAKES}",
        ),
        (
            b"""{"inputs": {"y": [1]}}""",
            {"x": F32},
            "Missing named input: x in 'inputs' object. "
            "Signature 'serving_default' takes x: DT_FLOAT (any shape).",
        ),
        (
            b"""{"instances": [{"x": 1}, {"x": "a"}]}""",
            {"x": F32},
            "Failed to process element: 1 key: x of 'instances' list. Error: INVALID_ARGUMENT: "
            """JSON Value: "a" Type: String is not of expected type: float """
            "(input: 'x', expected dtype: float)",
        ),
        (b"""{"inputs": [1]}""", {}, "Failed to get input map for signature: serving_default"),
    ],
    ids=[
        "named-shape",
        "named-size",
        "object-then-list",
        "list-then-object",
        "missing-key",
        "extra-key",
        "plain-list-multi",
        "b64-list-multi",
        "columnar-plain-multi",
        "columnar-missing",
        "columnar-single-missing",
        "named-bad-value",
        "no-inputs",
    ],
)
def test_decode_rejects_bad_structure_with_tf_messages(
    body: bytes, inputs: dict[str, int], message: str
) -> None:
    error = _decode_error(body, **inputs)
    assert isinstance(error, InvalidArgument)
    assert str(error) == message


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (dtypes.DT_HALF, "half"),
        (dtypes.DT_BFLOAT16, "bfloat16"),
        (dtypes.DT_COMPLEX64, "complex64"),
        (dtypes.DT_RESOURCE, "resource"),
        (dtypes.DT_INVALID, "invalid"),
    ],
)
def test_decode_unsupported_dtypes_are_unimplemented(code: int, name: str) -> None:
    for body in (b'{"inputs": [1.0]}', b'{"instances": [1.0]}'):
        error = _decode_error(body, x=code)
        assert isinstance(error, Unimplemented)
        assert (
            str(error) == f"Conversion of JSON Value to type: {name} is not supported (input: 'x')"
        )


def test_decode_rejects_deep_documents_from_loads() -> None:
    body = b'{"inputs": ' + b"[" * 1000 + b"1" + b"]" * 1000 + b"}"
    with pytest.raises(InvalidArgument, match="nests lists 1000 deep; the maximum is 64"):
        _decode(body, x=F32)


def test_decode_rejects_nesting_deeper_than_numpy_supports() -> None:
    value: Any = 1.0
    for _ in range(5000):
        value = [value]
    with pytest.raises(InvalidArgument, match="nests lists 5000 deep"):
        json_decode.decode_inputs(json_decode.PredictBody("", True, value), _sig(x=F32))


# ----------------------------------------------------------------------- encode_predict


def _f32(*values: float) -> np.ndarray:
    return np.array(values, np.float32)


@pytest.mark.parametrize(
    ("outputs", "columnar", "expected"),
    [
        ({"y": _f32(3.0, 3.5, 4.0)}, False, b'{"predictions":[3.0,3.5,4.0]}'),
        ({"y": _f32(3.0, 3.5, 4.0)}, True, b'{"outputs":[3.0,3.5,4.0]}'),
        (
            {"t": np.array([[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]], np.int32)},
            False,
            b'{"predictions":[[[1,2],[3,4],[5,6]],[[7,8],[9,0],[1,2]]]}',
        ),
        ({"t": np.arange(1, 6, dtype=np.int32)}, True, b'{"outputs":[1,2,3,4,5]}'),
        (
            {"str_tensor_bytes": np.array([[b"hello", b"world"], [b"tf", b"serving"]], object)},
            False,
            b'{"predictions":[[{"b64":"aGVsbG8="},{"b64":"d29ybGQ="}],'
            b'[{"b64":"dGY="},{"b64":"c2VydmluZw=="}]]}',
        ),
        (
            {"f": np.array([[np.nan, np.inf], [3, -np.inf]], np.float32)},
            False,
            b'{"predictions":[[NaN,Infinity],[3.0,-Infinity]]}',
        ),
        ({"f": np.array(np.nan, np.float64)}, True, b'{"outputs":NaN}'),
        ({"f": np.array(2.5, np.float64)}, True, b'{"outputs":2.5}'),
        ({"f": np.array(7, np.int64)}, True, b'{"outputs":7}'),
        ({"t": np.zeros((0, 2), np.int32)}, False, b'{"predictions":[]}'),
        (
            {"s": np.zeros((0, 1, 2), object), "f": np.zeros((0, 3, 4), np.float32)},
            False,
            b'{"predictions":[]}',
        ),
        ({"f": _f32(0.1, 0.2, 1 / 3)}, True, b'{"outputs":[0.1,0.2,0.33333334]}'),
        ({"d": np.array([0.1, 1 / 3], np.float64)}, True, b'{"outputs":[0.1,0.3333333333333333]}'),
        (
            {"i": np.array([-128, 127], np.int8), "u": np.array([0, 2**64 - 1], np.uint64)},
            True,
            b'{"outputs":{"i":[-128,127],"u":[0,18446744073709551615]}}',
        ),
        ({"b": np.array([True, False])}, False, b'{"predictions":[true,false]}'),
        (
            {"s": np.array(["h\u00e9llo".encode(), b"\xff\xfe"], object)},
            True,
            '{"outputs":["h\u00e9llo",{"b64":"//4="}]}'.encode(),
        ),
        ({"s": np.array(["a", "b"])}, True, b'{"outputs":["a","b"]}'),
        ({"s_bytes": np.array([b"a", b"b"])}, True, b'{"outputs":[{"b64":"YQ=="},{"b64":"Yg=="}]}'),
        ({"s": np.array(b"x", object)}, True, b'{"outputs":"x"}'),
        ({"f": np.array([1, 2], ">f4")}, True, b'{"outputs":[1.0,2.0]}'),
        ({"f": np.arange(6, dtype=np.float32)[::2]}, True, b'{"outputs":[0.0,2.0,4.0]}'),
    ],
    ids=[
        "row",
        "columnar",
        "row-3d",
        "columnar-int",
        "bytes-suffix",
        "non-finite",
        "scalar-nan",
        "scalar-float",
        "scalar-int",
        "zero-batch",
        "zero-batch-multi",
        "float32-shortest",
        "float64-shortest",
        "int-limits",
        "bool",
        "non-utf8-string",
        "unicode-array",
        "bytes-array",
        "scalar-string",
        "big-endian",
        "strided",
    ],
)
def test_encode_predict(outputs: dict[str, np.ndarray], columnar: bool, expected: bytes) -> None:
    assert json_encode.encode_predict(outputs, columnar) == expected


def test_encode_predict_six_digit_precision_values_round_trip_as_float32() -> None:
    values = _f32(9000000, 999999, 0.5, 0.0003, 0.00003, 555557.5).reshape(2, 3)
    text = json_encode.encode_predict({"float_tensor": values}, columnar=False)
    assert text == b'{"predictions":[[9000000.0,999999.0,0.5],[0.0003,0.00003,555557.5]]}'
    np.testing.assert_array_equal(np.array(orjson.loads(text)["predictions"], np.float32), values)


def _multi_outputs() -> dict[str, np.ndarray]:
    return {
        "double_scalar_tensor": np.array([8.0, 9.0], np.float64),
        "float_tensor": np.array([[1.0], [2.0]], np.float32),
        "int_tensor": np.array([[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]], np.int32),
        "str_tensor": np.array([[b"foo", b"bar"], [b"baz", b"bat"]], object),
        "str_tensor_bytes": np.array([[b"hello", b"world"], [b"tf", b"serving"]], object),
    }


def test_encode_predict_multiple_outputs_row_format() -> None:
    doc = orjson.loads(json_encode.encode_predict(_multi_outputs(), columnar=False))
    assert doc == {
        "predictions": [
            {
                "double_scalar_tensor": 8.0,
                "float_tensor": [1.0],
                "int_tensor": [[1, 2], [3, 4], [5, 6]],
                "str_tensor": ["foo", "bar"],
                "str_tensor_bytes": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
            },
            {
                "double_scalar_tensor": 9.0,
                "float_tensor": [2.0],
                "int_tensor": [[7, 8], [9, 0], [1, 2]],
                "str_tensor": ["baz", "bat"],
                "str_tensor_bytes": [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}],
            },
        ]
    }
    assert list(doc["predictions"][0]) == list(_multi_outputs())


def test_encode_predict_multiple_outputs_columnar_format_keeps_order() -> None:
    outputs = dict(reversed(list(_multi_outputs().items())))
    doc = orjson.loads(json_encode.encode_predict(outputs, columnar=True))
    assert list(doc["outputs"]) == list(outputs)
    assert doc["outputs"]["str_tensor"] == [["foo", "bar"], ["baz", "bat"]]
    assert doc["outputs"]["int_tensor"] == [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]]


def test_encode_predict_non_finite_in_multi_output_rows() -> None:
    outputs = {"a": np.array([np.nan, 1.0], np.float32), "b": np.array([[np.inf], [2.0]])}
    assert (
        json_encode.encode_predict(outputs, columnar=False)
        == b'{"predictions":[{"a":NaN,"b":[Infinity]},{"a":1.0,"b":[2.0]}]}'
    )


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({}, "Cannot convert empty tensor map to JSON"),
        ({"tensor": np.array(1, np.int32)}, "Tensor name: tensor has no shape information "),
        (
            {"int_tensor": np.zeros((2, 3), np.int32), "str_tensor": np.zeros((1, 3), object)},
            "Tensor name: str_tensor has inconsistent batch size: 1 expecting: 2",
        ),
        (
            {"int_tensor": np.zeros((0, 2), np.int32), "str_tensor": np.zeros((1, 2), object)},
            "Tensor name: str_tensor has inconsistent batch size: 1 expecting: 0",
        ),
        (
            {"tensor": np.array([1, 2], np.complex64)},
            "Failed to write JSON value for tensor type: complex64 (output: 'tensor')",
        ),
        (
            {"tensor": np.array([1, 2], np.float16)},
            "Failed to write JSON value for tensor type: half (output: 'tensor')",
        ),
        (
            {"tensor": np.array([1, 2], object)},
            "Failed to write JSON value for tensor type: string (element of type int)",
        ),
    ],
    ids=["empty", "scalar", "inconsistent", "zero-vs-one", "complex", "half", "object-ints"],
)
def test_encode_predict_row_errors(outputs: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        json_encode.encode_predict(outputs, columnar=False)
    assert str(info.value) == message


def test_encode_predict_columnar_allows_scalars_and_mixed_batches() -> None:
    outputs: dict[str, np.ndarray] = {"a": np.array(1.5, np.float32), "b": np.zeros(3, np.int64)}
    assert (
        json_encode.encode_predict(outputs, columnar=True) == b'{"outputs":{"a":1.5,"b":[0,0,0]}}'
    )


def test_encode_then_loads_round_trips_float32_exactly() -> None:
    values = np.random.default_rng(1).standard_normal((16, 33)).astype(np.float32) * 1e6
    values[3, 4], values[5, 6], values[7, 8] = np.nan, np.inf, -np.inf
    doc = json_decode.loads(json_encode.encode_predict({"y": values}, columnar=True))
    np.testing.assert_array_equal(np.array(doc["outputs"], np.float32), values)


# --------------------------------------------------------------------- parse_examples


def test_parse_examples_without_context() -> None:
    signature, request_input = json_examples.parse_examples(
        json_decode.loads(
            b"""{"examples": [{"names": ["foo", "bar"], "ratings": [8.0, 9.0], "age": 20},
                              {"names": ["baz"], "ratings": 6.0}]}"""
        )
    )
    expected = _example_input(
        """example_list {
             examples { features {
               feature { key: "names" value { bytes_list { value: "foo" value: "bar" } } }
               feature { key: "ratings" value { float_list { value: 8.0 value: 9.0 } } }
               feature { key: "age" value { int64_list { value: 20 } } } } }
             examples { features {
               feature { key: "names" value { bytes_list { value: "baz" } } }
               feature { key: "ratings" value { float_list { value: 6.0 } } } } } }"""
    )
    assert signature == ""
    assert request_input == expected


def test_parse_examples_with_context_and_signature() -> None:
    signature, request_input = json_examples.parse_examples(
        json_decode.loads(
            b"""{"signature_name": "custom_signature",
                 "context": {"query": "pizza", "location": ["sfo"]},
                 "examples": [
                   {"names": ["baz", {"b64": "aGVsbG8="}], "ratings": [8.5, -Infinity],
                    "intboolmix": [1, true, false], "empty": []},
                   {"names": "bar", "big": 18446744073709551616}]}"""
        )
    )
    assert signature == "custom_signature"
    assert request_input.WhichOneof("kind") == "example_list_with_context"
    data = request_input.example_list_with_context
    context = data.context.features.feature
    assert list(context["query"].bytes_list.value) == [b"pizza"]
    assert list(context["location"].bytes_list.value) == [b"sfo"]
    first, second = (example.features.feature for example in data.examples)
    assert list(first["names"].bytes_list.value) == [b"baz", b"hello"]
    assert list(first["ratings"].float_list.value) == [8.5, -math.inf]
    assert list(first["intboolmix"].int64_list.value) == [1, 1, 0]
    assert first["empty"].WhichOneof("kind") is None
    assert list(second["names"].bytes_list.value) == [b"bar"]
    assert list(second["big"].float_list.value) == [float(2**64)]


def test_parse_examples_empty_context_still_selects_context_list() -> None:
    _, request_input = json_examples.parse_examples({"context": {}, "examples": [{"x": 2.0}]})
    assert request_input.WhichOneof("kind") == "example_list_with_context"
    assert request_input.example_list_with_context.HasField("context")


def test_parse_examples_nan_float_feature() -> None:
    _, request_input = json_examples.parse_examples(
        json_decode.loads(b'{"examples": [{"x": [NaN, 1.5]}]}')
    )
    values = request_input.example_list.examples[0].features.feature["x"].float_list.value
    assert math.isnan(values[0]) and values[1] == 1.5


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"examples": [{"names": ["foo"]}], "signature_name": ["hello"]},
            """JSON Value: {"examples":[{"names":["foo"]}],"signature_name":["hello"]} not """
            "formatted correctly. 'signature_name' key must be a string value.",
        ),
        ({"context": [{"names": ["foo"]}]}, "Example must be JSON object but got JSON Array"),
        (
            {"examples": {"names": ["foo", "bar"]}},
            """JSON Value: {"examples":{"names":["foo","bar"]}} Expecting 'examples' value to be """
            "an list/array",
        ),
        ({"examples": [[{"names": ["foo"]}]]}, "Example must be JSON object but got JSON Array"),
        ({"examples": [5]}, "Example must be JSON object but got JSON Number"),
        (
            {"examples": [{"names": [10, None]}]},
            "Feature: names has element with unexpected JSON type: Null",
        ),
        (
            {"examples": [{"names": [10, 10.0]}]},
            "Unexpected element type in feature: names expecting type: int64",
        ),
        (
            {"examples": [{"names": [1.5, "a"]}]},
            "Unexpected element type in feature: names expecting type: float",
        ),
        (
            {"examples": [{"names": ["a", True]}]},
            "Unexpected element type in feature: names expecting type: bytes",
        ),
        (
            {"examples": [{"names": [10, {"test": 10}]}]},
            "Feature: names has element with unexpected JSON type: Object",
        ),
        (
            {"examples": [{"names": [[10], 20]}]},
            "Feature: names has element with unexpected JSON type: Array",
        ),
        (
            {"examples": [{"names": [20, 18446744073709551603]}]},
            "Feature: names has uint64 element. Only int64 is supported.",
        ),
        (
            {"examples": [{"names": 1.7976931348623157e308}]},
            "Cannot convert JSON value: 1.7976931348623157e+308 to float without loss of "
            "precision. (feature: 'names')",
        ),
        (
            {"examples": [{"names": {"b64": "_-8="}}]},
            "Unable to base64 decode (feature: 'names')",
        ),
        (
            {"signature_name": "s"},
            """JSON Value: {"signature_name":"s"} When method is classify, key 'examples' is """
            "expected and was not found",
        ),
        ({"examples": []}, """JSON Value: {"examples":[]} 'examples' value is an empty array"""),
        ([{"x": 1}], """JSON Value: [{"x":1}] Is not object"""),
    ],
    ids=[
        "signature",
        "context-list",
        "examples-object",
        "nested-list",
        "example-number",
        "null",
        "int-then-float",
        "float-then-bytes",
        "bytes-then-bool",
        "object",
        "array",
        "uint64",
        "lossy",
        "bad-b64",
        "missing",
        "empty",
        "not-object",
    ],
)
def test_parse_examples_rejects_with_tf_messages(doc: Any, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        json_examples.parse_examples(doc)
    assert str(info.value) == message


# ------------------------------------------------------------- classify/regress/error


def test_encode_classify_matches_half_plus_two_answer() -> None:
    result = classification_pb2.ClassificationResult()
    result.classifications.add().classes.add(label="", score=3.0)
    assert json_encode.encode_classify(result) == b'{"results":[[["",3.0]]]}'


def test_encode_classify_prints_float32_scores_shortest() -> None:
    result = text_format.Parse(
        """classifications { classes { label: "car" score: 0.2 }
                             classes { label: "bike" score: 0.7 }
                             classes { label: "bus" score: 0.1 } }
           classifications { classes { label: "car" score: 0.7 }
                             classes { label: "bike" score: nan }
                             classes { label: "bus" score: -inf } }""",
        classification_pb2.ClassificationResult(),
    )
    assert json_encode.encode_classify(result) == (
        b'{"results":[[["car",0.2],["bike",0.7],["bus",0.1]],'
        b'[["car",0.7],["bike",NaN],["bus",-Infinity]]]}'
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([3.0], b'{"results":[3.0]}'),
        ([0.2, 0.9, 1.0], b'{"results":[0.2,0.9,1.0]}'),
        (
            [0.2, math.inf, 1.0, -math.inf, math.nan],
            b'{"results":[0.2,Infinity,1.0,-Infinity,NaN]}',
        ),
    ],
)
def test_encode_regress(values: list[float], expected: bytes) -> None:
    result = regression_pb2.RegressionResult()
    for value in values:
        result.regressions.add(value=value)
    assert json_encode.encode_regress(result) == expected


def test_encode_empty_results_are_rejected() -> None:
    with pytest.raises(
        InvalidArgument, match=r"^Cannot convert empty ClassificationResults to JSON$"
    ):
        json_encode.encode_classify(classification_pb2.ClassificationResult())
    with pytest.raises(InvalidArgument, match=r"^Cannot convert empty RegressionResults to JSON$"):
        json_encode.encode_regress(regression_pb2.RegressionResult())


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('Bad key: "key"', b'{"error":"Bad key: \\"key\\""}'),
        ("Bad key: 'key'", b'{"error":"Bad key: \'key\'"}'),
        ("h\u00e9", '{"error":"h\u00e9"}'.encode()),
        ("lone \ud800", b'{"error": "lone \\ud800"}'),
    ],
)
def test_encode_error(message: str, expected: bytes) -> None:
    body = json_encode.encode_error(message)
    assert body == expected
    assert json.loads(body) == {"error": message}
