"""Property tests of every decoder that reads what a client sends: whatever arrives, each
either decodes to what a reference reading gives or raises the project's InvalidArgument
(a 400 / INVALID_ARGUMENT with a message), never another exception.

References: TensorFlow's own ``tf.make_ndarray`` / ``tf.make_tensor_proto`` for TensorProtos,
plain ``json`` for TF Serving's REST JSON, and the encoders for the OIP codec.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import orjson
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fuzz.targets import SIGNATURE  # the fuzz target's signature: float, int64, string
from tensorserve import dtypes
from tensorserve.config.batching import BatchingConfigError, parse_batching_parameters
from tensorserve.config.model_config import ModelConfigError, parse_model_server_config
from tensorserve.errors import InvalidArgument, ServingError
from tensorserve.protocols.oip import tensors as oip
from tensorserve.protocols.rest import json_decode, json_examples
from tensorserve.protocols.rest import oip as oip_rest
from tensorserve.servable import SignatureSpec, TensorSpec
from tensorserve.service import tensors

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NUMERIC_OIP = [d for d in oip.TO_DT if d not in ("BYTES", "BF16")]
JSON_SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5)
)  # fmt: skip
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=20,
)  # fmt: skip
SHAPES = st.lists(st.integers(0, 4), max_size=3)


def _only_invalid_argument(call: Any) -> Any:
    try:
        return call()
    except InvalidArgument as exc:
        assert exc.message
        return None


# ---- Open Inference Protocol codec ----------------------------------------------------------
@FAST
@given(st.sampled_from(NUMERIC_OIP).flatmap(
    lambda d: st.tuples(st.just(d), hnp.arrays(oip.numpy_type("x", d), hnp.array_shapes(
        min_dims=0, max_dims=3, max_side=4)))))  # fmt: skip
def test_oip_numeric_tensors_round_trip_in_binary_and_json(case: tuple[str, np.ndarray]) -> None:
    datatype, array = case
    back = oip.from_binary("x", datatype, array.shape, memoryview(oip.to_binary(array)))
    np.testing.assert_array_equal(back, array)
    text = orjson.dumps({"data": oip_rest._data(array)}, option=orjson.OPT_SERIALIZE_NUMPY)
    decoded = oip.from_json("x", datatype, array.shape, json_decode.loads(text)["data"])
    np.testing.assert_array_equal(decoded, array)  # NaN and infinities survive as tokens
    assert decoded.dtype == array.dtype


@FAST
@given(st.lists(st.binary(max_size=6), max_size=5))
def test_oip_bytes_round_trip_in_binary(values: list[bytes]) -> None:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    back = oip.from_binary("s", "BYTES", (len(values),), memoryview(oip.to_binary(array)))
    assert back.tolist() == values


@FAST
@given(st.sampled_from([*oip.TO_DT, "FP8", ""]), SHAPES, JSON_VALUES)
def test_oip_json_data_decodes_to_its_shape_or_is_refused(
    datatype: str, shape: list[int], data: Any
) -> None:
    out = _only_invalid_argument(lambda: oip.from_json("x", datatype, shape, data))
    if out is not None:
        assert out.shape == tuple(shape)
        assert out.dtype == oip.numpy_type("x", datatype)


@FAST
@given(st.sampled_from(list(oip.TO_DT)), SHAPES, st.binary(max_size=40))
def test_oip_binary_data_decodes_to_its_shape_or_is_refused(
    datatype: str, shape: list[int], raw: bytes
) -> None:
    out = _only_invalid_argument(lambda: oip.from_binary("x", datatype, shape, memoryview(raw)))
    if out is not None:
        assert out.shape == tuple(shape)


@FAST
@given(st.lists(st.integers(-(2**40), 2**40), max_size=6), st.sampled_from(NUMERIC_OIP))
def test_oip_integers_outside_a_datatype_are_refused_not_wrapped(
    values: list[int], datatype: str
) -> None:
    out = _only_invalid_argument(lambda: oip.from_json("x", datatype, [len(values)], values))
    if out is not None and out.dtype.kind in "iu":  # accepted only when exact
        assert out.tolist() == values


# ---- TensorProto <-> numpy against TensorFlow -------------------------------------------------
DT_FIELDS = {
    dtypes.DT_FLOAT: "float_val", dtypes.DT_DOUBLE: "double_val", dtypes.DT_INT32: "int_val",
    dtypes.DT_INT64: "int64_val", dtypes.DT_BOOL: "bool_val", dtypes.DT_STRING: "string_val",
    dtypes.DT_UINT8: "int_val", dtypes.DT_INT8: "int_val", dtypes.DT_INT16: "int_val",
    dtypes.DT_UINT32: "uint32_val", dtypes.DT_UINT64: "uint64_val", dtypes.DT_HALF: "half_val",
}  # fmt: skip


@st.composite
def tensor_protos(draw: st.DrawFn) -> Any:
    proto = tf.make_tensor_proto(np.zeros(0, np.float32))
    proto.Clear()
    proto.dtype = draw(st.sampled_from([*sorted(DT_FIELDS), dtypes.DT_QINT8, 99]))
    for size in draw(st.lists(st.integers(-3, 6), max_size=3)):
        proto.tensor_shape.dim.add(size=size)
    if draw(st.booleans()):
        proto.tensor_shape.unknown_rank = True
    if draw(st.booleans()):
        proto.tensor_content = draw(st.binary(max_size=48))
    field = DT_FIELDS.get(proto.dtype, "float_val")
    values: Any
    if field == "string_val":
        values = draw(st.lists(st.binary(max_size=4), max_size=6))
    elif field in ("float_val", "double_val"):
        values = draw(st.lists(st.floats(width=32), max_size=6))
    elif field == "bool_val":
        values = draw(st.lists(st.booleans(), max_size=6))
    elif field == "half_val":
        values = draw(st.lists(st.integers(0, 2**16 - 1), max_size=6))
    else:
        values = draw(st.lists(st.integers(0, 100), max_size=6))
    getattr(proto, field).extend(values)
    return proto


@FAST
@given(tensor_protos())
def test_tensor_protos_decode_as_tensorflow_does_or_are_refused(proto: Any) -> None:
    ours = _only_invalid_argument(lambda: tensors.to_numpy(proto))
    if ours is None:
        return
    expected = tf.make_ndarray(proto)
    assert ours.shape == expected.shape
    if ours.dtype == object:  # TensorFlow gives str for an empty scalar string; bytes here
        as_bytes = np.vectorize(lambda v: v.encode() if isinstance(v, str) else v, otypes=[object])
        assert ours.tolist() == as_bytes(expected).tolist()
    else:
        np.testing.assert_array_equal(ours, expected)


@FAST
@given(st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_,
                        np.float16, np.int8, np.uint16]).flatmap(
    lambda t: hnp.arrays(t, hnp.array_shapes(min_dims=0, max_dims=3, max_side=3))),
    st.booleans())  # fmt: skip
def test_numpy_to_tensor_proto_matches_tensorflow(array: np.ndarray, as_content: bool) -> None:
    proto = tensors.from_numpy(array, as_content=as_content)
    np.testing.assert_array_equal(tf.make_ndarray(proto), array)
    np.testing.assert_array_equal(tensors.to_numpy(proto), array)


# ---- TF Serving REST JSON -------------------------------------------------------------------
SINGLE = SignatureSpec(
    "serving_default",
    "tensorflow/serving/predict",
    {"x": TensorSpec("x:0", dtypes.DT_FLOAT, (-1,))},
    {"y": TensorSpec("y:0", dtypes.DT_FLOAT, (-1,))},
)


@FAST
@given(st.binary(max_size=64) | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
def test_rest_bodies_parse_or_are_refused(body: bytes) -> None:
    _only_invalid_argument(lambda: json_decode.loads(body))


@FAST
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "instances": JSON_VALUES, "inputs": JSON_VALUES, "signature_name": JSON_SCALARS,
            "b64": st.just([{"b64": "aGk="}, {"b64": "!!"}]),
        },
    ),
    st.sampled_from([SIGNATURE, SINGLE]),
)  # fmt: skip
def test_rest_predict_bodies_decode_or_are_refused(doc: dict[str, Any], sig: SignatureSpec) -> None:
    body = _only_invalid_argument(lambda: json_decode.parse_predict(doc))
    if body is None:
        return
    inputs = _only_invalid_argument(lambda: json_decode.decode_inputs(body, sig))
    if inputs is not None:
        assert set(inputs) <= set(sig.inputs)
        for name, array in inputs.items():
            assert array.dtype == dtypes.to_numpy(sig.inputs[name].dtype)


@FAST
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=8))
def test_rest_rows_decode_to_the_values_a_plain_json_reading_gives(values: list[float]) -> None:
    body = json.dumps({"instances": values}).encode()
    decoded = json_decode.decode_inputs(json_decode.parse_predict(json_decode.loads(body)), SINGLE)
    expected = np.array(json.loads(body)["instances"], dtype=np.float32).reshape(len(values))
    np.testing.assert_array_equal(decoded["x"], expected)


@FAST
@given(JSON_VALUES)
def test_classify_and_regress_bodies_build_examples_or_are_refused(doc: Any) -> None:
    _only_invalid_argument(lambda: json_examples.parse_examples(doc))


# ---- configuration files --------------------------------------------------------------------
CONFIG_WORDS = st.sampled_from(
    [
        "model_config_list", "config", "{", "}", "name:", "base_path:", '"m"', '"/x"',
        "model_platform:", '"tensorflow"', "model_version_policy", "latest", "num_versions:",
        "3", "-1", "specific", "versions:", "version_labels", "key:", "value:", '"a"',
        "max_batch_size", "batch_timeout_micros", "allowed_batch_sizes:", "8", "2",
        "num_batch_threads", "max_enqueued_batches", "0",
    ]
)  # fmt: skip


@FAST
@given(st.lists(CONFIG_WORDS, max_size=25).map(" ".join) | st.text(max_size=40))
def test_config_files_parse_or_fail_with_a_config_error(text: str) -> None:
    from google.protobuf import text_format

    for parse, errors in (
        (parse_model_server_config, (ModelConfigError, text_format.ParseError)),
        (parse_batching_parameters, (BatchingConfigError, text_format.ParseError)),
    ):
        try:
            parse(text)
        except errors as exc:
            assert str(exc)
        except ServingError as exc:  # pragma: no cover - config errors are not ServingErrors
            pytest.fail(f"{parse.__name__} raised {exc!r}")


def test_the_reference_json_and_orjson_agree_on_float32_text() -> None:
    """orjson writes float32 outputs in their shortest form; it reads back exactly."""
    values = np.array([0.1, 1 / 3, 3.4e38, 1e-45, -0.0], dtype=np.float32)
    text = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)
    assert np.array(json.loads(text), dtype=np.float32).tobytes() == values.tobytes()
    assert all(math.isfinite(v) for v in json.loads(text))


@pytest.mark.parametrize("shape", [[0, 2**62, 2**62], [1] * 65])
def test_shapes_numpy_cannot_hold_are_refused_not_crashed(shape: list[int]) -> None:
    """Found by fuzzing: a zero dimension hid an overflowing product, and numpy holds at
    most 64 dimensions; both raised numpy's ValueError (a 500) before."""
    with pytest.raises(InvalidArgument):
        oip.from_json("x", "FP32", shape, [])
    proto = tensors.from_numpy(np.zeros(0, np.float32))
    proto.tensor_shape.Clear()
    for size in shape:
        proto.tensor_shape.dim.add(size=size)
    with pytest.raises(InvalidArgument):
        tensors.to_numpy(proto)
