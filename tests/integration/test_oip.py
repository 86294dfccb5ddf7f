"""The Open Inference Protocol through clients nobody here wrote: ``tritonclient.http`` and
``tritonclient.grpc``, against a real server (two protocol workers over one model process),
plus raw HTTP for what those clients do not send (malformed bodies, labels)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from tritonclient.utils import InferenceServerException

from tests.harness import Server, model_config, start_server

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

ALL_TYPES = {  # all_types' input names and their OIP datatypes
    "f32": "FP32", "f64": "FP64", "i8": "INT8", "i16": "INT16", "i32": "INT32",
    "i64": "INT64", "u8": "UINT8", "u16": "UINT16", "u32": "UINT32", "u64": "UINT64",
    "b": "BOOL", "s": "BYTES",
}  # fmt: skip
NUMPY = {
    "FP32": np.float32, "FP64": np.float64, "INT8": np.int8, "INT16": np.int16,
    "INT32": np.int32, "INT64": np.int64, "UINT8": np.uint8, "UINT16": np.uint16,
    "UINT32": np.uint32, "UINT64": np.uint64, "BOOL": np.bool_, "BYTES": np.object_,
}  # fmt: skip


@pytest.fixture(scope="module")
def oip_server(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("oip")
    repository = root / "repository"
    shutil.copytree(models_dir / "half_plus_two", repository / "extra")
    hp2 = 'model_version_policy { all {} } version_labels { key: "stable" value: 1 }'
    names = ("mlp", "strings", "multi", "all_types", "halves")
    config = root / "models.config"
    config.write_text(
        model_config(
            [("half_plus_two", str(models_dir / "half_plus_two"), hp2)]
            + [(n, str(models_dir / n), "") for n in names]
        )
    )
    srv = start_server(
        [
            f"--model_config_file={config}",
            "--num_workers=2",
            "--enable_model_management=true",
            f"--model_repository={repository}",
        ]
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def rest(oip_server: Server) -> Iterator[thttp.InferenceServerClient]:
    client = thttp.InferenceServerClient(f"127.0.0.1:{oip_server.rest_port}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def grpc_client(oip_server: Server) -> Iterator[tgrpc.InferenceServerClient]:
    client = tgrpc.InferenceServerClient(oip_server.grpc_target)
    yield client
    client.close()


@pytest.fixture(scope="module")
def raw(oip_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=oip_server.rest, timeout=30) as client:
        yield client


def _error(call: Any) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


# ---- server and model metadata ------------------------------------------------------------
def test_server_live_ready_and_metadata(
    rest: thttp.InferenceServerClient, grpc_client: tgrpc.InferenceServerClient
) -> None:
    assert rest.is_server_live() and rest.is_server_ready()
    assert grpc_client.is_server_live() and grpc_client.is_server_ready()
    for meta in (rest.get_server_metadata(), grpc_client.get_server_metadata(as_json=True)):
        assert meta["name"] == "tensorserve"
        assert {"binary_tensor_data", "statistics", "model_repository"} <= set(meta["extensions"])


def test_model_metadata_comes_from_the_signature(
    rest: thttp.InferenceServerClient, grpc_client: tgrpc.InferenceServerClient
) -> None:
    meta = rest.get_model_metadata("mlp")
    assert meta["platform"] == "tensorflow_savedmodel" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "input_example", "datatype": "FP32", "shape": [-1, 784]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    over_grpc = grpc_client.get_model_metadata("mlp", as_json=True)
    assert over_grpc["inputs"][0]["shape"] == ["-1", "784"]  # int64 as JSON strings
    types = {t["name"]: t["datatype"] for t in rest.get_model_metadata("all_types")["inputs"]}
    assert types == ALL_TYPES
    halves = {t["name"]: t["datatype"] for t in rest.get_model_metadata("halves")["inputs"]}
    assert halves == {"f16": "FP16", "bf16": "BF16"}
    assert rest.get_model_metadata("half_plus_two")["versions"] == ["1", "2"]


def test_model_readiness_by_version_and_label(
    rest: thttp.InferenceServerClient, grpc_client: tgrpc.InferenceServerClient
) -> None:
    assert rest.is_model_ready("half_plus_two", "2")
    assert rest.is_model_ready("half_plus_two", "stable")
    assert grpc_client.is_model_ready("half_plus_two", "1")
    assert not rest.is_model_ready("nope")
    err = _error(lambda: grpc_client.is_model_ready("nope"))
    assert err.status() == "StatusCode.NOT_FOUND" and "nope" in err.message()


# ---- infer ----------------------------------------------------------------------------------
def _mlp_batch() -> np.ndarray:
    return np.random.default_rng(7).random((3, 784), dtype=np.float32)


@pytest.mark.parametrize("binary_in", [False, True])
@pytest.mark.parametrize("binary_out", [False, True])
def test_http_infer_json_and_binary(
    rest: thttp.InferenceServerClient, binary_in: bool, binary_out: bool
) -> None:
    x = _mlp_batch()
    tensor = thttp.InferInput("input_example", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary_in)
    out = thttp.InferRequestedOutput("probabilities", binary_data=binary_out)
    result = rest.infer("mlp", [tensor], outputs=[out], request_id="req-7")
    probs = result.as_numpy("probabilities")
    assert probs.shape == (3, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    response = result.get_response()
    assert response["id"] == "req-7" and response["model_version"] == "1"


@pytest.mark.parametrize("binary", [False, True])
def test_every_datatype_round_trips_over_http(
    rest: thttp.InferenceServerClient, binary: bool
) -> None:
    inputs, sent = [], {}
    for name, datatype in ALL_TYPES.items():
        if datatype == "BYTES":
            value = np.array([b"caf\xc3\xa9", b"x"], dtype=np.object_)
        elif datatype == "BOOL":
            value = np.array([True, False])
        else:
            info = np.iinfo(NUMPY[datatype]) if datatype[0] in "IU" else None
            high = info.max if info is not None else 1.5
            value = np.array([0, high], dtype=NUMPY[datatype])
        tensor = thttp.InferInput(name, [2], datatype)
        tensor.set_data_from_numpy(value, binary_data=binary)
        inputs.append(tensor)
        sent[name] = value
    outputs = [thttp.InferRequestedOutput(n, binary_data=binary) for n in ALL_TYPES]
    result = rest.infer("all_types", inputs, outputs=outputs)
    for name, value in sent.items():
        got = result.as_numpy(name)
        if ALL_TYPES[name] == "BYTES" and not binary:
            got = np.array([v if isinstance(v, bytes) else str(v).encode() for v in got])
        assert got.tolist() == value.tolist(), name
        assert result.get_output(name)["datatype"] == ALL_TYPES[name]


def test_every_datatype_round_trips_over_grpc(grpc_client: tgrpc.InferenceServerClient) -> None:
    inputs, sent = [], {}
    for name, datatype in ALL_TYPES.items():
        if datatype == "BYTES":
            value = np.array([b"\x00\xffbin", b""], dtype=np.object_)
        elif datatype == "BOOL":
            value = np.array([False, True])
        else:
            value = np.array([1, 2], dtype=NUMPY[datatype])
        tensor = tgrpc.InferInput(name, [2], datatype)
        tensor.set_data_from_numpy(value)  # tritonclient sends raw_input_contents
        inputs.append(tensor)
        sent[name] = value
    result = grpc_client.infer("all_types", inputs)
    for name, value in sent.items():
        assert result.as_numpy(name).tolist() == value.tolist(), name


CONTENTS = {
    "BOOL": "bool_contents", "BYTES": "bytes_contents", "FP32": "fp32_contents",
    "FP64": "fp64_contents", "INT64": "int64_contents", "UINT64": "uint64_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
}  # fmt: skip


def test_typed_contents_are_answered_in_typed_contents(oip_server: Server) -> None:
    """A request with typed ``contents`` (no raw bytes) gets typed ``contents`` back."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    request = service_pb2.ModelInferRequest(model_name="all_types")
    sent = {}
    for name, datatype in ALL_TYPES.items():
        values: list[Any] = (
            [b"a", b"\xff"] if datatype == "BYTES"
            else [True, False] if datatype == "BOOL" else [3, 4]
        )  # fmt: skip
        tensor = request.inputs.add(name=name, datatype=datatype, shape=[2])
        getattr(tensor.contents, CONTENTS[datatype]).extend(values)
        sent[name] = values
    with grpc.insecure_channel(oip_server.grpc_target) as channel:
        reply = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
        assert not reply.raw_output_contents
        for out in reply.outputs:
            assert list(getattr(out.contents, CONTENTS[out.datatype])) == sent[out.name]
            assert list(out.shape) == [2]
        bad = service_pb2.ModelInferRequest(model_name="half_plus_two")
        bad.inputs.add(name="x", datatype="FP32", shape=[3]).contents.fp32_contents.extend([1.0])
        with pytest.raises(grpc.RpcError) as info:
            service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(bad)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "needs 3" in str(info.value.details())


def test_fp16_and_bf16(
    rest: thttp.InferenceServerClient,
    grpc_client: tgrpc.InferenceServerClient,
    raw: httpx.Client,
) -> None:
    import ml_dtypes

    f16 = np.array([0.5, -2.0, 1024.0], dtype=np.float16)
    bf16 = np.array([1.5, -3.0, 256.0], dtype=ml_dtypes.bfloat16)
    a = thttp.InferInput("f16", [3], "FP16")
    a.set_data_from_numpy(f16, binary_data=True)
    b = thttp.InferInput("bf16", [3], "BF16")
    b.set_data_from_numpy(bf16, binary_data=True)  # tritonclient sends BF16 only as binary
    outs = [thttp.InferRequestedOutput(n, binary_data=True) for n in ("f16", "bf16")]
    result = rest.infer("halves", [a, b], outputs=outs)
    assert result.as_numpy("f16").tolist() == f16.tolist()
    assert result.as_numpy("bf16").astype(np.float32).tolist() == [1.5, -3.0, 256.0]
    body = {"inputs": [
        {"name": "f16", "shape": [3], "datatype": "FP16", "data": [0.5, -2.0, 1024.0]},
        {"name": "bf16", "shape": [3], "datatype": "BF16", "data": [1.5, -3.0, 256.0]},
    ]}  # fmt: skip
    as_json = raw.post("/v2/models/halves/infer", json=body)
    assert {o["name"]: o["data"] for o in as_json.json()["outputs"]} == {
        "f16": [0.5, -2.0, 1024.0], "bf16": [1.5, -3.0, 256.0]}  # fmt: skip
    a = tgrpc.InferInput("f16", [3], "FP16")
    a.set_data_from_numpy(f16)
    b = tgrpc.InferInput("bf16", [3], "BF16")
    b.set_data_from_numpy(bf16)
    answer = grpc_client.infer("halves", [a, b])
    assert answer.as_numpy("f16").tolist() == f16.tolist()
    assert answer.as_numpy("bf16").astype(np.float32).tolist() == [1.5, -3.0, 256.0]


def test_strings_model_over_both(
    rest: thttp.InferenceServerClient, grpc_client: tgrpc.InferenceServerClient
) -> None:
    text = np.array([b"hello", b"oip"], dtype=np.object_)
    a = thttp.InferInput("text", [2], "BYTES")
    a.set_data_from_numpy(text, binary_data=False)
    outs = [thttp.InferRequestedOutput("upper", binary_data=False),
            thttp.InferRequestedOutput("length", binary_data=False)]  # fmt: skip
    result = rest.infer("strings", [a], outputs=outs)
    assert result.as_numpy("upper").tolist() in ([b"HELLO", b"OIP"], ["HELLO", "OIP"])
    assert result.as_numpy("length").tolist() == [5, 3]
    assert result.get_output("raw_bytes") is None  # only the outputs asked for
    g = tgrpc.InferInput("text", [2], "BYTES")
    g.set_data_from_numpy(text)
    answer = grpc_client.infer("strings", [g])
    assert answer.as_numpy("raw_bytes").tolist() == [b"olleh", b"pio"]


def test_the_same_model_answers_identically_over_five_paths(
    rest: thttp.InferenceServerClient,
    grpc_client: tgrpc.InferenceServerClient,
    raw: httpx.Client,
    oip_server: Server,
) -> None:
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from tensorserve.service import tensors

    x = _mlp_batch()
    tfs_rest = raw.post("/v1/models/mlp:predict", json={"instances": x.tolist()}).json()
    answers = {"tfs_rest": np.array(tfs_rest["predictions"], dtype=np.float32)}
    with grpc.insecure_channel(oip_server.grpc_target) as channel:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "mlp"
        request.inputs["input_example"].CopyFrom(tensors.from_numpy(x))
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request)
        answers["tfs_grpc"] = tensors.to_numpy(reply.outputs["probabilities"])
    for binary in (False, True):
        t = thttp.InferInput("input_example", list(x.shape), "FP32")
        t.set_data_from_numpy(x, binary_data=binary)
        out = thttp.InferRequestedOutput("probabilities", binary_data=binary)
        answers[f"oip_rest_{binary}"] = rest.infer("mlp", [t], outputs=[out]).as_numpy(
            "probabilities"
        )
    g = tgrpc.InferInput("input_example", list(x.shape), "FP32")
    g.set_data_from_numpy(x)
    answers["oip_grpc"] = grpc_client.infer("mlp", [g]).as_numpy("probabilities")
    first = answers["tfs_grpc"]
    for name, value in answers.items():
        np.testing.assert_allclose(value, first, rtol=1e-6, err_msg=name)


def test_labels_reach_versions_through_the_version_segment(raw: httpx.Client) -> None:
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [2.0]}]}
    stable = raw.post("/v2/models/half_plus_two/versions/stable/infer", json=body).json()
    assert stable["model_version"] == "1" and stable["outputs"][0]["data"] == [3.0]
    latest = raw.post("/v2/models/half_plus_two/infer", json=body).json()
    assert latest["model_version"] == "2" and latest["outputs"][0]["data"] == [4.0]
    two = raw.post("/v2/models/half_plus_two/versions/2/infer", json=body).json()
    assert two["outputs"][0]["data"] == [4.0]
    nested = raw.post(
        "/v2/models/multi/infer",
        json={"inputs": [
            {"name": "a", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]},
            {"name": "b", "shape": [2], "datatype": "INT64", "data": [1, 2]}],
            "outputs": [{"name": "sum"}]},
    ).json()  # fmt: skip
    assert nested["outputs"] == [{"name": "sum", "datatype": "FP32", "shape": [2],
                                  "data": [3.0, 7.0]}]  # fmt: skip


# ---- errors ---------------------------------------------------------------------------------
X = {"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}
ERRORS = [
    ("/v2/models/nope/infer", {"inputs": [X]}, 404, "nope"),
    ("/v2/models/half_plus_two/versions/9/infer", {"inputs": [X]}, 404, "9"),
    ("/v2/models/half_plus_two/versions/99999999999999999999/infer", {"inputs": [X]}, 400,
     "Failed to convert version"),
    ("/v2/models/half_plus_two/versions/nolabel/infer", {"inputs": [X]}, 400,
     "Unrecognized servable version label: nolabel"),  # TF Serving's answer, as on /v1
    ("/v2/models/half_plus_two/infer", {"inputs": [{**X, "shape": [3]}]}, 400, "needs 3"),
    ("/v2/models/half_plus_two/infer",
     {"inputs": [{**X, "datatype": "INT32", "data": [1.5, 2]}]}, 400, "fractional"),
    ("/v2/models/half_plus_two/infer", {"inputs": [{**X, "datatype": "INT32"}]}, 400,
     "int32 is provided"),
    ("/v2/models/half_plus_two/infer", {"inputs": [{**X, "datatype": "FP64"}]}, 400, "double"),
    ("/v2/models/half_plus_two/infer", {"inputs": [{**X, "name": "z"}]}, 400, "Sent extra: {z}"),
    ("/v2/models/half_plus_two/infer", {"inputs": [{**X, "datatype": "F32"}]}, 400,
     "expected one of"),
    ("/v2/models/half_plus_two/infer", {"inputs": []}, 400, "'inputs'"),
    ("/v2/models/half_plus_two/infer", {"inputs": [{**X, "shape": [-2]}]}, 400,
     "non-negative"),
    ("/v2/models/half_plus_two/infer", {"inputs": [{**X, "data": ["a", "b"]}]}, 400,
     "expected numbers"),
    ("/v2/models/half_plus_two/infer", {"inputs": [X], "outputs": [{"name": "nope"}]}, 400,
     "nope"),
    ("/v2/models/half_plus_two/infer", {"inputs": [X], "parameters": {"signature_name": "s"}},
     400, "s"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "status", "needle"), ERRORS)
def test_bad_requests_get_a_clear_error(
    raw: httpx.Client, path: str, body: Any, status: int, needle: str
) -> None:
    reply = raw.post(path, json=body)
    assert reply.status_code == status, reply.text
    assert needle in reply.json()["error"]


def test_malformed_bodies_and_binary_headers(raw: httpx.Client) -> None:
    path = "/v2/models/half_plus_two/infer"
    assert raw.post(path, content=b"{not json").status_code == 400
    header = json.dumps({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 8}}]}).encode()  # fmt: skip
    data = np.array([1.0, 2.0], dtype=np.float32).tobytes()
    ok = raw.post(path, content=header + data,
                  headers={"Inference-Header-Content-Length": str(len(header))})  # fmt: skip
    assert ok.status_code == 200 and ok.json()["outputs"][0]["data"] == [3.5, 4.0]  # v2
    for length, extra, needle in (
        (str(len(header)), b"", "only 0 follow"),
        (str(len(header)), data + b"xx", "no input's"),
        ("abc", data, "Inference-Header-Content-Length"),
        (str(len(header) + 100), data, "at most"),
    ):
        bad = raw.post(path, content=header + extra,
                       headers={"Inference-Header-Content-Length": length})  # fmt: skip
        assert bad.status_code == 400 and needle in bad.json()["error"], bad.text
    assert raw.get("/v2/models/nope").status_code == 404
    assert raw.get("/v2/nothing/here").status_code == 404


def test_grpc_errors_carry_the_canonical_status(
    grpc_client: tgrpc.InferenceServerClient,
) -> None:
    t = tgrpc.InferInput("x", [2], "FP32")
    t.set_data_from_numpy(np.array([1.0, 2.0], dtype=np.float32))
    err = _error(lambda: grpc_client.infer("nope", [t]))
    assert err.status() == "StatusCode.NOT_FOUND"
    fp64 = tgrpc.InferInput("x", [2], "FP64")
    fp64.set_data_from_numpy(np.array([1.0, 2.0], dtype=np.float64))
    err = _error(lambda: grpc_client.infer("half_plus_two", [fp64]))
    assert err.status() == "StatusCode.INVALID_ARGUMENT" and "double" in err.message()
    ints = tgrpc.InferInput("x", [2], "INT32")
    ints.set_data_from_numpy(np.array([1, 2], dtype=np.int32))
    err = _error(lambda: grpc_client.infer("half_plus_two", [ints]))
    assert err.status() == "StatusCode.INVALID_ARGUMENT" and "int32" in err.message()


# ---- statistics and repository ------------------------------------------------------------
def test_statistics_count_what_was_served(
    rest: thttp.InferenceServerClient, grpc_client: tgrpc.InferenceServerClient
) -> None:
    def count() -> tuple[int, int]:
        stats = rest.get_inference_statistics("multi")["model_stats"][0]
        return stats["inference_count"], stats["inference_stats"]["success"]["count"]

    before = count()
    a = tgrpc.InferInput("a", [4, 2], "FP32")
    a.set_data_from_numpy(np.ones((4, 2), dtype=np.float32))
    b = tgrpc.InferInput("b", [4], "INT64")
    b.set_data_from_numpy(np.arange(4, dtype=np.int64))
    for _ in range(3):
        grpc_client.infer("multi", [a, b])
    after = count()
    assert after == (before[0] + 12, before[1] + 3)
    over_grpc = grpc_client.get_inference_statistics("multi", "1", as_json=True)["model_stats"][0]
    assert int(over_grpc["inference_count"]) == after[0]
    assert int(over_grpc["inference_stats"]["compute_infer"]["ns"]) > 0
    everything = rest.get_inference_statistics()["model_stats"]
    assert {s["name"] for s in everything} >= {"mlp", "multi", "half_plus_two"}
    assert _error(lambda: rest.get_inference_statistics("nope")).status() == "404"


def test_repository_load_and_unload(
    rest: thttp.InferenceServerClient, grpc_client: tgrpc.InferenceServerClient
) -> None:
    index = {m["name"]: m for m in rest.get_model_repository_index()}
    assert index["extra"]["state"] == "UNAVAILABLE" and index["mlp"]["state"] == "READY"
    rest.load_model("extra")
    assert rest.is_model_ready("extra")
    t = thttp.InferInput("x", [1], "FP32")
    t.set_data_from_numpy(np.array([2.0], dtype=np.float32))
    assert rest.infer("extra", [t]).as_numpy("y").tolist() == [4.0]
    grpc_client.unload_model("extra")
    assert not rest.is_model_ready("extra")
    grpc_client.load_model("extra")
    assert grpc_client.is_model_ready("extra")
    rest.unload_model("extra")
    err = _error(lambda: rest.load_model("missing"))
    assert "missing" in err.message()
    err = _error(lambda: grpc_client.unload_model("missing"))
    assert err.status() == "StatusCode.NOT_FOUND"


def test_repository_load_is_refused_while_the_config_file_owns_the_list(
    models_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "models.config"
    config.write_text(model_config([("mlp", str(models_dir / "mlp"), "")]))
    srv = start_server(
        [
            f"--model_config_file={config}",
            "--model_config_file_poll_wait_seconds=60",
            "--enable_model_management=true",
            "--num_workers=1",
        ]
    )
    try:
        reply = httpx.post(f"{srv.rest}/v2/repository/models/mlp/unload", timeout=30)
        assert reply.status_code == 409 and "--model_config_file" in reply.json()["error"]
    finally:
        srv.stop()
