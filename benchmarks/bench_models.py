"""Benchmark models, request payloads, reference outputs and the in-process floors.

Two SavedModels are built (deterministically) under the bench directory:

* ``mlp``: the seed model, ``Input(784) -> Dense(128, relu) -> Dense(10, softmax)``, saved with
  ``tf.saved_model.save(model, base/N)``; version N uses seed N so versions answer differently.
* ``wide``: a wide Dense stack with about 75M float32 parameters (~300 MB of weights),
  ``Input(2048) -> Dense(4096, relu) x5 -> Dense(10)``, for the memory scenario: a model whose
  weights dominate the server's memory, so that a second copy (or none) shows in the PSS sum.
* ``big``: a weightless model taking float32 ``[None, 224, 224, 3]`` and returning ``images * 0.5``
  with the same shape. Returning a same-size tensor stresses decode *and* encode (≈4.8 MB of
  float32 each way for 8 images); ``* 0.5`` is exact in float32 so a JSON round trip can be
  checked exactly.

TensorFlow is imported lazily: the load generators and the report code do not need it.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

MLP_NAME = "mlp"
BIG_NAME = "big"
WIDE_NAME = "wide"
WIDE_IN = 2048
WIDE_UNITS = 4096
WIDE_LAYERS = 5  # 2048*4096 + 4*4096*4096 + 4096*10 weights (+ biases): about 75.5M float32
BIG_SHAPE = (8, 224, 224, 3)
SIGNATURE = "serving_default"


@dataclass(frozen=True)
class Signature:
    """Input/output keys of a SavedModel's serving signature (read from the loaded model)."""

    input_key: str
    output_key: str


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def build_mlp(base: Path, version: int) -> Path:
    """Save the seed MLP (weights seeded by ``version``) to ``base/version``; idempotent."""
    target = base / str(version)
    if (target / "saved_model.pb").exists():
        return target
    tf = _tf()
    tf.keras.utils.set_random_seed(1000 + version)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((784,), name="input_example"),
            tf.keras.layers.Dense(128, activation="relu"),
            tf.keras.layers.Dense(10, activation="softmax"),
        ]
    )
    tmp = base / f".tmp-{version}-{os.getpid()}"
    tf.saved_model.save(model, str(tmp))
    tmp.rename(target)
    return target


def build_wide(base: Path, version: int = 1) -> Path:
    """Save the ~300 MB wide Dense stack to ``base/version``; idempotent."""
    target = base / str(version)
    if (target / "saved_model.pb").exists():
        return target
    tf = _tf()
    tf.keras.utils.set_random_seed(2000 + version)
    layers: list[Any] = [tf.keras.Input((WIDE_IN,), name="features")]
    for _ in range(WIDE_LAYERS):
        # Small weights keep the activations finite through five wide layers.
        init = tf.keras.initializers.RandomNormal(stddev=0.01)
        layers.append(tf.keras.layers.Dense(WIDE_UNITS, activation="relu", kernel_initializer=init))
    layers.append(tf.keras.layers.Dense(10))
    model = tf.keras.Sequential(layers)
    tmp = base / f".tmp-{version}-{os.getpid()}"
    tf.saved_model.save(model, str(tmp))
    tmp.rename(target)
    return target


def wide_params() -> int:
    n = WIDE_IN * WIDE_UNITS + WIDE_UNITS
    n += (WIDE_LAYERS - 1) * (WIDE_UNITS * WIDE_UNITS + WIDE_UNITS)
    return n + WIDE_UNITS * 10 + 10


def wide_input(rows: int = 1) -> np.ndarray:
    return np.random.default_rng(13).random((rows, WIDE_IN), dtype=np.float32)


def build_big(base: Path, version: int = 1) -> Path:
    """Save the large-payload model (``images * 0.5``) to ``base/version``; idempotent."""
    target = base / str(version)
    if (target / "saved_model.pb").exists():
        return target
    tf = _tf()

    class Scale(tf.Module):  # type: ignore[name-defined]
        @tf.function(
            input_signature=[tf.TensorSpec([None, 224, 224, 3], tf.float32, name="images")]
        )
        def serve(self, images: Any) -> dict[str, Any]:
            return {"scaled": images * 0.5}

    module = Scale()
    tmp = base / f".tmp-{version}-{os.getpid()}"
    tf.saved_model.save(module, str(tmp), signatures={SIGNATURE: module.serve})
    tmp.rename(target)
    return target


def load_signature(path: Path) -> tuple[Any, Signature]:
    """Load ``path``'s serving signature; return the concrete function and its keys."""
    tf = _tf()
    loaded = tf.saved_model.load(str(path))
    fn = loaded.signatures[SIGNATURE]
    _, kwargs = fn.structured_input_signature
    input_key = next(iter(kwargs))
    output_key = next(iter(fn.structured_outputs))
    fn._bench_keepalive = loaded  # keep the trackable objects alive with the function
    return fn, Signature(input_key=input_key, output_key=output_key)


def signature_keys(path: Path) -> Signature:
    return load_signature(path)[1]


def mlp_input(rows: int = 1) -> np.ndarray:
    return np.random.default_rng(7).random((rows, 784), dtype=np.float32)


def big_input() -> np.ndarray:
    return np.random.default_rng(11).random(BIG_SHAPE, dtype=np.float32)


def run_signature(path: Path, x: np.ndarray) -> np.ndarray:
    """The model's own answer for ``x`` (the reference every server is checked against)."""
    tf = _tf()
    fn, sig = load_signature(path)
    out = fn(**{sig.input_key: tf.constant(x)})[sig.output_key]
    return np.asarray(out.numpy())


# ---------------------------------------------------------------------------------------------
# Request bodies for every protocol.


def tfs_rest_body(x: np.ndarray) -> bytes:
    """TF Serving REST row format: ``{"instances": [...]}`` (one input, so rows are bare lists)."""
    return orjson.dumps({"instances": x}, option=orjson.OPT_SERIALIZE_NUMPY)


def v2_rest_body(x: np.ndarray, input_name: str) -> bytes:
    """Open Inference Protocol (KServe V2) JSON body, as MLServer expects it."""
    return orjson.dumps(
        {
            "inputs": [
                {
                    "name": input_name,
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "data": x.reshape(-1),
                }
            ]
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


OIP_HEADER_LENGTH = "Inference-Header-Content-Length"


def oip_binary_body(x: np.ndarray, input_name: str, output_name: str) -> tuple[bytes, int]:
    """Open Inference Protocol REST body with Triton's binary tensor extension.

    A JSON header (the input declares ``binary_data_size``, the output asks for
    ``binary_data``) followed by the raw little-endian tensor bytes; returns ``(body, length of
    the JSON header)``, the value of the ``Inference-Header-Content-Length`` request header.
    """
    raw = np.ascontiguousarray(x, dtype="<f4").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": input_name,
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": output_name, "parameters": {"binary_data": True}}],
        }
    )
    return header + raw, len(header)


def oip_infer_request(model: str, input_name: str, x: np.ndarray) -> Any:
    """An OIP gRPC ``ModelInferRequest`` carrying ``x`` in ``raw_input_contents``."""
    from tritonclient.grpc import service_pb2

    req = service_pb2.ModelInferRequest(model_name=model)
    tensor = req.inputs.add()
    tensor.name = input_name
    tensor.datatype = "FP32"
    tensor.shape.extend(x.shape)
    req.raw_input_contents.append(np.ascontiguousarray(x, dtype="<f4").tobytes())
    return req


_OIP_DTYPES = {"FP32": "<f4", "FP64": "<f8", "INT32": "<i4", "INT64": "<i8"}


def answer_from_oip_grpc(resp: Any) -> np.ndarray:
    """The first output of a ``ModelInferResponse`` (raw_output_contents or typed contents)."""
    out = resp.outputs[0]
    shape = list(out.shape)
    if resp.raw_output_contents:
        dtype = _OIP_DTYPES[out.datatype]
        return np.frombuffer(resp.raw_output_contents[0], dtype=dtype).reshape(shape)
    field = {"FP32": "fp32_contents", "FP64": "fp64_contents"}[out.datatype]
    return np.asarray(getattr(out.contents, field), dtype=np.float64).reshape(shape)


def answer_from_oip_binary(body: bytes, header_length: int | None) -> np.ndarray:
    """The first output of an OIP REST answer: binary (JSON header + raw bytes) or plain JSON."""
    if header_length is None:  # the server answered JSON only
        return answer_from_json(body, "v2")
    doc = json.loads(body[:header_length])
    out = doc["outputs"][0]
    size = out.get("parameters", {}).get("binary_data_size")
    if size is None:
        return np.asarray(out["data"], dtype=np.float64).reshape(out["shape"])
    raw = body[header_length : header_length + size]  # the first output's bytes come first
    return np.frombuffer(raw, dtype=_OIP_DTYPES[out["datatype"]]).reshape(out["shape"])


def predict_request(model: str, input_key: str, x: np.ndarray) -> Any:
    """A ``PredictRequest`` carrying ``x`` as ``tensor_content``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2

    req = predict_pb2.PredictRequest()
    req.model_spec.name = model
    req.model_spec.signature_name = SIGNATURE
    proto = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in x.shape]
        ),
        tensor_content=np.ascontiguousarray(x, dtype="<f4").tobytes(),
    )
    req.inputs[input_key].CopyFrom(proto)
    return req


def grpc_frame(message: bytes) -> bytes:
    """gRPC length-prefixed message: flag byte 0 (uncompressed) + 4-byte big-endian length."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def tensor_from_proto(proto: Any) -> np.ndarray:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return np.asarray(tf.make_ndarray(proto))


def close(a: np.ndarray, b: np.ndarray) -> bool:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-5, atol=1e-6))


def answer_from_json(body: bytes, protocol: str) -> np.ndarray:
    """Extract the prediction array from a REST response body (TFS V1 or OIP V2)."""
    doc = json.loads(body)
    if protocol == "v2":
        out = doc["outputs"][0]
        return np.asarray(out["data"], dtype=np.float64).reshape(out["shape"])
    preds = doc["predictions"]
    if isinstance(preds, dict):  # columnar / named outputs
        preds = next(iter(preds.values()))
    if preds and isinstance(preds[0], dict):  # row format with named outputs
        preds = [next(iter(r.values())) for r in preds]
    return np.asarray(preds, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# In-process floors.


@dataclass(frozen=True)
class FloorResult:
    label: str
    rows: int
    p50_ms: float
    p99_ms: float
    calls_per_s: float

    @property
    def rows_per_s(self) -> float:
        return self.calls_per_s * self.rows


def measure_floor(path: Path, x: np.ndarray, label: str, seconds: float) -> FloorResult:
    """Direct signature calls (numpy in, numpy out) in a tight single-threaded loop."""
    tf = _tf()
    fn, sig = load_signature(path)
    for _ in range(50):
        fn(**{sig.input_key: tf.constant(x)})[sig.output_key].numpy()
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn(**{sig.input_key: tf.constant(x)})[sig.output_key].numpy()
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if t1 >= deadline:
            break
    elapsed = time.perf_counter() - start
    times.sort()
    return FloorResult(
        label=label,
        rows=x.shape[0],
        p50_ms=statistics.median(times) * 1e3,
        p99_ms=times[min(len(times) - 1, int(len(times) * 0.99))] * 1e3,
        calls_per_s=len(times) / elapsed,
    )


@dataclass(frozen=True)
class CodecBound:
    """orjson + numpy alone on the large REST payload: decode request, encode response."""

    request_bytes: int
    response_bytes: int
    decode_ms: float
    encode_ms: float

    @property
    def total_mb(self) -> float:
        return (self.request_bytes + self.response_bytes) / 1e6

    @property
    def mb_per_s(self) -> float:
        return self.total_mb / ((self.decode_ms + self.encode_ms) / 1e3)


def measure_codec_bound(x: np.ndarray, out: np.ndarray, repeats: int) -> CodecBound:
    """The fastest a JSON REST server built on orjson + numpy could decode+encode this payload.

    decode = ``orjson.loads`` + ``np.asarray(..., float32)``; encode = ``orjson.dumps`` of
    ``{"predictions": out}`` with ``OPT_SERIALIZE_NUMPY`` (numpy's buffer, no ``tolist``).
    """
    body = tfs_rest_body(x)
    resp = orjson.dumps({"predictions": out}, option=orjson.OPT_SERIALIZE_NUMPY)
    decode: list[float] = []
    encode: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        arr = np.asarray(orjson.loads(body)["instances"], dtype=np.float32)
        t1 = time.perf_counter()
        orjson.dumps({"predictions": out}, option=orjson.OPT_SERIALIZE_NUMPY)
        t2 = time.perf_counter()
        decode.append(t1 - t0)
        encode.append(t2 - t1)
    assert arr.shape == x.shape
    return CodecBound(
        request_bytes=len(body),
        response_bytes=len(resp),
        decode_ms=min(decode) * 1e3,
        encode_ms=min(encode) * 1e3,
    )
