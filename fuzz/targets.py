"""The decoders a client reaches, as fuzz targets: each takes raw bytes and must either
decode them or raise the project's InvalidArgument (a 400 / INVALID_ARGUMENT with a
message). Any other exception is a crash that libFuzzer reports with the input."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable

import numpy as np
import orjson
from google.protobuf import text_format
from google.protobuf.message import DecodeError
from tensorflow.core.framework import tensor_pb2

from tensorserve import dtypes
from tensorserve.config.model_config import ModelConfigError, parse_model_server_config
from tensorserve.core.ids import ServableRequest
from tensorserve.errors import InvalidArgument
from tensorserve.protocols.oip import tensors as oip
from tensorserve.protocols.rest import json_decode, json_examples
from tensorserve.protocols.rest import oip as oip_rest
from tensorserve.servable import SignatureSpec, TensorSpec
from tensorserve.service import tensors

SIGNATURE = SignatureSpec(
    "serving_default",
    "tensorflow/serving/predict",
    {"a": TensorSpec("a:0", dtypes.DT_FLOAT, (-1, 2)),
     "b": TensorSpec("b:0", dtypes.DT_INT64, (-1,)),
     "s": TensorSpec("s:0", dtypes.DT_STRING, (-1,))},
    {"y": TensorSpec("y:0", dtypes.DT_FLOAT, (-1,))},
)  # fmt: skip
DATATYPES = list(oip.TO_DT)


def _split(data: bytes) -> tuple[str, list[int], bytes]:
    """A datatype and a small shape from the first bytes, the rest as payload."""
    if len(data) < 2:
        return "FP32", [0], b""
    datatype = DATATYPES[data[0] % len(DATATYPES)]
    rank = data[1] % 4
    shape = [b % 6 for b in data[2 : 2 + rank]]
    return datatype, shape, data[2 + rank :]


def oip_json(data: bytes) -> None:
    datatype, shape, payload = _split(data)
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return
    array = oip.from_json("x", datatype, shape, value)
    assert array.shape == tuple(shape)


def oip_binary(data: bytes) -> None:
    datatype, shape, payload = _split(data)
    array = oip.from_binary("x", datatype, shape, memoryview(payload))
    assert array.shape == tuple(shape)
    if datatype != "BYTES":
        assert oip.to_binary(array) == payload


def oip_request(data: bytes) -> None:
    """A whole ``/v2/.../infer`` body; the first two bytes say where its JSON header ends."""
    if len(data) < 2:
        return
    split = int.from_bytes(data[:2], "little") % (len(data) - 1)
    body = data[2:]
    headers = {oip_rest.HEADER_LENGTH: str(split).encode()} if data[0] & 1 else {}
    oip_rest.decode_request(ServableRequest("m"), headers, body)


def rest_predict(data: bytes) -> None:
    doc = json_decode.loads(data)
    body = json_decode.parse_predict(doc)
    inputs = json_decode.decode_inputs(body, SIGNATURE)
    for name, array in inputs.items():
        assert array.dtype == dtypes.to_numpy(SIGNATURE.inputs[name].dtype)


def rest_examples(data: bytes) -> None:
    json_examples.parse_examples(json_decode.loads(data))


def tensor_proto(data: bytes) -> None:
    proto = tensor_pb2.TensorProto()
    try:
        proto.ParseFromString(data)
    except DecodeError:
        return
    array = tensors.to_numpy(proto)
    assert isinstance(array, np.ndarray)


def model_config(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    with contextlib.suppress(ModelConfigError, text_format.ParseError):
        parse_model_server_config(text)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "oip_json": oip_json,
    "oip_binary": oip_binary,
    "oip_request": oip_request,
    "rest_predict": rest_predict,
    "rest_examples": rest_examples,
    "tensor_proto": tensor_proto,
    "model_config": model_config,
}


def run_one(target: Callable[[bytes], None], data: bytes) -> None:
    """One input: InvalidArgument is the expected refusal; anything else propagates."""
    try:
        target(data)
    except InvalidArgument as exc:
        assert exc.message


def seeds() -> dict[str, list[bytes]]:
    """The committed seed corpus (``python -m fuzz.run --write-seeds`` writes it)."""
    x = np.arange(6, dtype=np.float32)
    oip_body = orjson.dumps({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32",
                                         "data": x.tolist()}]})  # fmt: skip
    header = orjson.dumps({"inputs": [{"name": "x", "shape": [6], "datatype": "FP32",
                                       "parameters": {"binary_data_size": 24}}]})  # fmt: skip
    return {
        "oip_json": [bytes([10, 2, 2, 3]) + orjson.dumps(x.tolist()),
                     bytes([13, 1, 2]) + b'["a", "b"]', bytes([0, 1, 2]) + b"[true, false]"],
        "oip_binary": [bytes([10, 1, 6]) + x.tobytes(),
                       bytes([13, 1, 2]) + b"\x01\x00\x00\x00a\x00\x00\x00\x00"],
        "oip_request": [b"\x00\x00" + oip_body,
                        len(header).to_bytes(2, "little")[:1] + b"\x01" + header + x.tobytes()],
        "rest_predict": [json.dumps({"instances": [{"a": [1, 2], "b": 3, "s": "x"}]}).encode(),
                         json.dumps({"inputs": {"a": [[1, 2]], "b": [1],
                                                "s": [{"b64": "aGk="}]}}).encode(),
                         b'{"instances": [{"a": [NaN, Infinity], "b": 1, "s": "y"}]}'],
        "rest_examples": [json.dumps({"examples": [{"f": [1.0, 2.0], "s": "t", "i": 3}]}).encode(),
                          json.dumps({"context": {"c": 1}, "examples": [{}]}).encode()],
        "tensor_proto": [tensors.from_numpy(x.reshape(2, 3)).SerializeToString(),
                         tensors.from_numpy(x, as_content=True).SerializeToString(),
                         tensors.from_numpy(np.array([b"a", b"bc"], dtype=object))
                         .SerializeToString()],
        "model_config": [b'model_config_list { config { name: "m" base_path: "/m" '
                         b'model_platform: "tensorflow" model_version_policy { latest { '
                         b"num_versions: 2 } } } }"],
    }  # fmt: skip
