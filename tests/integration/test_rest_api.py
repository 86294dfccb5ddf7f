"""REST API behaviour against TF Serving's (compat doc section 1): URLs, JSON shapes, dtypes.

Everything talks to the shared ``server`` through ``http`` except the CORS tests, which need
``--rest_api_enable_cors_support=true`` and share one module-scoped extra server. Expected
values come from the fixture models' math (``tests/fixture_models.py``): half_plus_two v1 is
0.5x+2, v2 is 0.5x+3 (labels stable=1, canary=2); multi computes sum/scaled/total of ``a``
and ``b``; all_types is an identity per dtype; strings upper-cases (ASCII), measures bytes and
reverses bytes into ``raw_bytes``.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.harness import Server, model_config, start_server

HPT = "/v1/models/half_plus_two"
XS = [1.0, 2.0, 5.0, -3.5]
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1


def half_plus(x: float, version: int) -> float:
    """half_plus_two's math: v1 = 0.5x + 2, v2 = 0.5x + 3 (float32, exact for these inputs)."""
    return float(np.float32(0.5) * np.float32(x) + np.float32(2.0 if version == 1 else 3.0))


@pytest.fixture(scope="module", autouse=True)
def _both_versions_available(http: httpx.Client) -> None:
    """The port opens once *a* version is up; wait (bounded) until v1 and v2 both serve."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = http.get(HPT).json().get("model_version_status", [])
        if sorted(s["version"] for s in status if s["state"] == "AVAILABLE") == ["1", "2"]:
            return
        time.sleep(0.1)
    pytest.fail(f"half_plus_two versions 1 and 2 not both AVAILABLE: {status}")


def ok_json(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def predict(http: httpx.Client, url: str, body: dict[str, Any]) -> Any:
    return ok_json(http.post(url, json=body))


def available(version: int) -> dict[str, Any]:
    return {
        "version": str(version),
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }


# ------------------------------------------------------------------------- model status


def test_status_lists_all_versions_descending_with_string_versions(http: httpx.Client) -> None:
    assert ok_json(http.get(HPT)) == {"model_version_status": [available(2), available(1)]}


@pytest.mark.parametrize("version", [1, 2])
def test_status_of_one_version(http: httpx.Client, version: int) -> None:
    body = ok_json(http.get(f"{HPT}/versions/{version}"))
    assert body == {"model_version_status": [available(version)]}


@pytest.mark.parametrize(("label", "version"), [("stable", 1), ("canary", 2)])
def test_status_by_label(http: httpx.Client, label: str, version: int) -> None:
    # TF Serving ignores the label here and lists every version; we resolve it (see report).
    body = ok_json(http.get(f"{HPT}/labels/{label}"))
    assert body == {"model_version_status": [available(version)]}


def test_status_of_single_version_model(http: httpx.Client) -> None:
    assert ok_json(http.get("/v1/models/multi")) == {"model_version_status": [available(1)]}


def test_status_urls_are_case_insensitive(http: httpx.Client) -> None:
    body = ok_json(http.get("/V1/MODELS/half_plus_two/VERSIONS/1"))
    assert body == {"model_version_status": [available(1)]}


def test_status_model_name_is_percent_decoded(http: httpx.Client) -> None:
    body = ok_json(http.get("/v1/models/half%5Fplus%5Ftwo/versions/2"))
    assert body == {"model_version_status": [available(2)]}


# ----------------------------------------------------------------------------- metadata


def _dims(*sizes: int) -> dict[str, Any]:
    return {"dim": [{"size": str(s), "name": ""} for s in sizes], "unknown_rank": False}


def _tensor_info(name: str, dtype: str, *sizes: int) -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "tensor_shape": _dims(*sizes)}


@pytest.mark.parametrize(
    ("suffix", "version"),
    [("", 2), ("/versions/1", 1), ("/versions/2", 2), ("/labels/stable", 1), ("/labels/canary", 2)],
)
def test_metadata_shape_and_resolved_version(http: httpx.Client, suffix: str, version: int) -> None:
    body = ok_json(http.get(f"{HPT}{suffix}/metadata"))
    assert set(body) == {"model_spec", "metadata"}
    assert body["model_spec"] == {
        "name": "half_plus_two",
        "signature_name": "",
        "version": str(version),
    }
    assert set(body["metadata"]) == {"signature_def"}
    assert set(body["metadata"]["signature_def"]) == {"signature_def"}  # doubled key
    sigs = body["metadata"]["signature_def"]["signature_def"]
    assert set(sigs) >= {"serving_default", "classify_x_to_y", "regress_x_to_y"}
    serving = sigs["serving_default"]
    assert serving["inputs"] == {"x": _tensor_info("x:0", "DT_FLOAT", -1)}
    assert serving["outputs"] == {"y": _tensor_info("y:0", "DT_FLOAT", -1)}
    assert serving["method_name"] == "tensorflow/serving/predict"
    assert sigs["classify_x_to_y"]["method_name"] == "tensorflow/serving/classify"
    assert sigs["classify_x_to_y"]["inputs"]["inputs"]["dtype"] == "DT_STRING"
    assert set(sigs["classify_x_to_y"]["outputs"]) == {"classes", "scores"}
    assert sigs["regress_x_to_y"]["method_name"] == "tensorflow/serving/regress"
    assert set(sigs["regress_x_to_y"]["outputs"]) == {"outputs"}


def test_metadata_of_tf2_model_lists_every_input_and_output(http: httpx.Client) -> None:
    body = ok_json(http.get("/v1/models/multi/metadata"))
    assert body["model_spec"] == {"name": "multi", "signature_name": "", "version": "1"}
    serving = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    inputs = serving["inputs"]
    assert {k: (v["dtype"], v["tensor_shape"]) for k, v in inputs.items()} == {
        "a": ("DT_FLOAT", _dims(-1, 2)),
        "b": ("DT_INT64", _dims(-1)),
    }
    outputs = serving["outputs"]
    assert {k: (v["dtype"], v["tensor_shape"]) for k, v in outputs.items()} == {
        "sum": ("DT_FLOAT", _dims(-1)),
        "scaled": ("DT_FLOAT", _dims(-1, 2)),
        "total": ("DT_FLOAT", _dims()),
    }
    assert serving["method_name"] == "tensorflow/serving/predict"


# --------------------------------------------------------------------- predict: basics


@pytest.mark.parametrize(
    ("suffix", "version"),
    [("", 2), ("/versions/1", 1), ("/versions/2", 2), ("/labels/stable", 1), ("/labels/canary", 2)],
)
def test_predict_row_and_columnar_per_version_and_label(
    http: httpx.Client, suffix: str, version: int
) -> None:
    expected = [half_plus(x, version) for x in XS]
    assert predict(http, f"{HPT}{suffix}:predict", {"instances": XS}) == {"predictions": expected}
    assert predict(http, f"{HPT}{suffix}:predict", {"inputs": XS}) == {"outputs": expected}


def test_predict_url_is_case_insensitive(http: httpx.Client) -> None:
    body = predict(http, "/V1/Models/half_plus_two/Labels/stable:predict", {"instances": [4.0]})
    assert body == {"predictions": [half_plus(4.0, 1)]}


def test_predict_named_row_and_columnar_single_input(http: httpx.Client) -> None:
    rows = [{"x": x} for x in XS]
    expected = [half_plus(x, 2) for x in XS]
    assert predict(http, f"{HPT}:predict", {"instances": rows}) == {"predictions": expected}
    assert predict(http, f"{HPT}:predict", {"inputs": {"x": XS}}) == {"outputs": expected}


def test_predict_explicit_signature_and_unknown_keys_ignored(http: httpx.Client) -> None:
    body = {"signature_name": "serving_default", "instances": [2.0], "extra": {"a": 1}}
    assert predict(http, f"{HPT}:predict", body) == {"predictions": [half_plus(2.0, 2)]}


def test_predict_integers_accepted_for_float_input(http: httpx.Client) -> None:
    assert predict(http, f"{HPT}:predict", {"instances": [1, 4]}) == {
        "predictions": [half_plus(1, 2), half_plus(4, 2)]
    }


def test_float_outputs_are_written_as_json_floats(http: httpx.Client) -> None:
    # TF Serving prints whole floats with ".0" (3.0, not 3): decode ints separately to see.
    response = http.post(f"{HPT}/versions/1:predict", json={"instances": [2.0, 4.0]})
    assert response.status_code == 200
    body = json.loads(response.text, parse_int=lambda text: ("int", text))
    assert body == {"predictions": [3.0, 4.0]}
    assert all(type(v) is float for v in body["predictions"])


def test_predict_mlp_row_format_rows_of_probabilities(http: httpx.Client) -> None:
    rng = np.random.default_rng(0)
    rows = rng.random((3, 784)).round(3).tolist()
    body = predict(http, "/v1/models/mlp:predict", {"instances": rows})
    predictions = np.array(body["predictions"])
    assert predictions.shape == (3, 10)
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, rtol=1e-5)  # softmax rows
    columnar = predict(http, "/v1/models/mlp:predict", {"inputs": rows})
    np.testing.assert_allclose(np.array(columnar["outputs"]), predictions, rtol=1e-6)


# ---------------------------------------------------------------- predict: several inputs

MULTI = "/v1/models/multi:predict"
A = [[1.0, 2.0], [0.5, -1.5], [3.0, 0.25]]
B = [3, 2, -4]


def multi_expected() -> dict[str, Any]:
    a, b = np.array(A, np.float32), np.array(B, np.int64)
    return {
        "sum": a.sum(axis=1).tolist(),
        "scaled": (a * b[:, None]).tolist(),
        "total": float(a.sum()),
    }


def test_multi_columnar_returns_every_output(http: httpx.Client) -> None:
    body = predict(http, MULTI, {"inputs": {"a": A, "b": B}})
    assert body == {"outputs": multi_expected()}


def test_multi_row_format_fails_on_scalar_output_like_tf_serving(http: httpx.Client) -> None:
    instances = [{"a": a, "b": b} for a, b in zip(A, B, strict=True)]
    response = http.post(MULTI, json={"instances": instances})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "Tensor name: total has no shape information "}


def test_multi_columnar_inputs_need_no_shared_batch_dimension(http: httpx.Client) -> None:
    # a [2,2] and b [1] (broadcast by the model): impossible in row format, fine in columnar.
    body = predict(http, MULTI, {"inputs": {"a": [[1.0, 2.0], [3.0, 4.0]], "b": [2]}})
    assert body == {
        "outputs": {"sum": [3.0, 7.0], "scaled": [[2.0, 4.0], [6.0, 8.0]], "total": 10.0}
    }


# -------------------------------------------------------------------- predict: all dtypes

ALL_TYPES = "/v1/models/all_types:predict"
# One column per dtype, 4 rows, with each type's extremes (float specials go in raw JSON).
COLUMNS: dict[str, list[Any]] = {
    "f64": [1e300, -2.5e-300, 0.1, -0.0],
    "i8": [-128, 127, 0, -1],
    "i16": [-32768, 32767, 0, 1],
    "i32": [-(2**31), 2**31 - 1, 0, 7],
    "i64": [INT64_MIN, INT64_MAX, 0, -9],
    "u8": [0, 255, 1, 128],
    "u16": [0, 65535, 1, 2],
    "u32": [0, 2**32 - 1, 1, 2],
    "u64": [0, UINT64_MAX, 2**63, 1],
    "b": [True, False, False, True],
    "s": ["plain", "h\u00e9llo \u2603", "", "\u0000nul"],
}
F32_TEXT = "[NaN, Infinity, -Infinity, 1.5]"


def _all_types_body(**raw: str) -> bytes:
    """``{"inputs": {...}}`` text; ``raw`` columns (JSON text with bare NaN/Infinity tokens,
    which TF Serving accepts though they are not RFC JSON) replace those of COLUMNS."""
    texts = {k: json.dumps(v) for k, v in COLUMNS.items()} | raw
    fields = ", ".join(f'"{k}": {v}' for k, v in texts.items())
    return f'{{"inputs": {{{fields}}}}}'.encode()


def _assert_f32_specials(values: list[float]) -> None:
    assert math.isnan(values[0])
    assert values[1:] == [math.inf, -math.inf, 1.5]


def test_all_dtypes_columnar_round_trip(http: httpx.Client) -> None:
    response = http.post(
        ALL_TYPES,
        content=_all_types_body(f32=F32_TEXT),
        headers={"Content-Type": "application/json"},
    )
    outputs = ok_json(response)["outputs"]
    assert set(outputs) == {"f32", *COLUMNS}
    _assert_f32_specials(outputs.pop("f32"))
    assert outputs == COLUMNS
    assert "[NaN,Infinity,-Infinity,1.5]" in response.text.replace(" ", "")  # bare tokens


def test_all_dtypes_row_format_round_trip(http: httpx.Client) -> None:
    rows = [{name: values[i] for name, values in COLUMNS.items()} for i in range(4)]
    specials = ["NaN", "Infinity", "-Infinity", "1.5"]
    text = ", ".join(
        json.dumps(row)[:-1] + f', "f32": {special}}}'
        for row, special in zip(rows, specials, strict=True)
    )
    response = http.post(ALL_TYPES, content=f'{{"instances": [{text}]}}'.encode())
    predictions = ok_json(response)["predictions"]
    assert len(predictions) == 4
    _assert_f32_specials([p.pop("f32") for p in predictions])
    assert predictions == rows


def test_float64_specials_round_trip(http: httpx.Client) -> None:
    body = _all_types_body(f32="[0, 1, 2, 3]", f64="[-Infinity, NaN, 2.0, Infinity]")
    outputs = ok_json(http.post(ALL_TYPES, content=body))["outputs"]
    assert outputs["f64"][0] == -math.inf
    assert math.isnan(outputs["f64"][1])
    assert outputs["f64"][2:] == [2.0, math.inf]


def test_b64_string_input_decodes_to_bytes(http: httpx.Client) -> None:
    raw = "b\u00e9".encode()
    columns = dict(COLUMNS, s=[{"b64": base64.b64encode(raw).decode()}, "x", "", "y"])
    outputs = predict(http, ALL_TYPES, {"inputs": dict(columns, f32=[1.0, 2.0, 3.0, 4.0])})
    assert outputs["outputs"]["s"] == ["b\u00e9", "x", "", "y"]  # identity: same bytes back


# ------------------------------------------------------------------------ predict: strings

STRINGS = "/v1/models/strings:predict"


def strings_expected(texts: list[bytes]) -> list[dict[str, Any]]:
    """upper: ASCII-only upper case; length: bytes; raw_bytes: reversed bytes as {"b64"}."""
    return [
        {
            "upper": t.upper().decode(),
            "length": len(t),
            "raw_bytes": {"b64": base64.b64encode(t[::-1]).decode()},
        }
        for t in texts
    ]


def test_strings_row_format_bytes_output_is_b64(http: httpx.Client) -> None:
    texts = [b"abc", "h\u00e9".encode(), b"Zz9"]
    instances: list[Any] = ["abc", "h\u00e9", {"b64": base64.b64encode(b"Zz9").decode()}]
    body = predict(http, STRINGS, {"instances": instances})
    assert body == {"predictions": strings_expected(texts)}


def test_strings_columnar_bytes_output_is_b64(http: httpx.Client) -> None:
    texts = [b"hello", b"", b"ab"]
    body = predict(http, STRINGS, {"inputs": {"text": ["hello", "", "ab"]}})
    rows = strings_expected(texts)
    assert body == {"outputs": {key: [row[key] for row in rows] for key in rows[0]}}


def test_strings_named_row_format(http: httpx.Client) -> None:
    body = predict(http, STRINGS, {"instances": [{"text": "ok"}, {"text": "Go"}]})
    assert body == {"predictions": strings_expected([b"ok", b"Go"])}


# ------------------------------------------------------------------- classify and regress

CLASSIFY = {"signature_name": "classify_x_to_y"}
REGRESS = {"signature_name": "regress_x_to_y"}


@pytest.mark.parametrize(
    ("suffix", "version"),
    [("", 2), ("/versions/1", 1), ("/labels/stable", 1), ("/labels/canary", 2)],
)
def test_classify(http: httpx.Client, suffix: str, version: int) -> None:
    body = dict(CLASSIFY, examples=[{"x": x} for x in XS])
    assert predict(http, f"{HPT}{suffix}:classify", body) == {
        "results": [[["", half_plus(x, version)]] for x in XS]
    }


@pytest.mark.parametrize(
    ("suffix", "version"),
    [("", 2), ("/versions/1", 1), ("/labels/stable", 1), ("/labels/canary", 2)],
)
def test_regress(http: httpx.Client, suffix: str, version: int) -> None:
    body = dict(REGRESS, examples=[{"x": x} for x in XS])
    assert predict(http, f"{HPT}{suffix}:regress", body) == {
        "results": [half_plus(x, version) for x in XS]
    }


def test_classify_with_context_fills_missing_features(http: httpx.Client) -> None:
    body = dict(CLASSIFY, context={"x": 6.0}, examples=[{}, {"x": [1.0]}])
    # The example's own feature wins over the context's (proto merge order).
    assert predict(http, f"{HPT}:classify", body) == {
        "results": [[["", half_plus(6.0, 2)]], [["", half_plus(1.0, 2)]]]
    }


def test_regress_with_context(http: httpx.Client) -> None:
    body = dict(REGRESS, context={"x": 4.0}, examples=[{}, {}, {"x": -2.0}])
    assert predict(http, f"{HPT}/versions/1:regress", body) == {
        "results": [half_plus(4.0, 1), half_plus(4.0, 1), half_plus(-2.0, 1)]
    }


def test_regress_integer_feature_becomes_int64_list(http: httpx.Client) -> None:
    # A JSON integer is an int64 feature, which the model's float parser rejects (not 3.0).
    response = http.post(f"{HPT}:regress", json=dict(REGRESS, examples=[{"x": 3}]))
    assert response.status_code == 400
    assert "expected type: float" in response.json()["error"]


# --------------------------------------------------------------------------- extras


def test_list_models(http: httpx.Client) -> None:
    body = ok_json(http.get("/v1/models"))
    models = {m["name"]: m["model_version_status"] for m in body["models"]}
    assert set(models) == {"half_plus_two", "mlp", "strings", "multi", "all_types"}
    assert models["half_plus_two"] == [available(2), available(1)]
    assert models["multi"] == [available(1)]


def test_gzip_request_body_predict_and_classify(http: httpx.Client) -> None:
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    raw = json.dumps({"instances": XS}).encode()
    body = ok_json(
        http.post(f"{HPT}/versions/1:predict", content=gzip.compress(raw), headers=headers)
    )
    assert body == {"predictions": [half_plus(x, 1) for x in XS]}
    raw = json.dumps(dict(CLASSIFY, examples=[{"x": 2.0}])).encode()
    body = ok_json(http.post(f"{HPT}:classify", content=gzip.compress(raw), headers=headers))
    assert body == {"results": [[["", half_plus(2.0, 2)]]]}


def test_gzip_large_body(http: httpx.Client) -> None:
    xs = [float(i % 1000) for i in range(200_000)]
    raw = json.dumps({"inputs": xs}).encode()
    response = http.post(
        f"{HPT}:predict", content=gzip.compress(raw), headers={"Content-Encoding": "gzip"}
    )
    outputs = ok_json(response)["outputs"]
    np.testing.assert_array_equal(outputs, np.array(xs, np.float32) * 0.5 + 3)


def test_query_string_is_ignored(http: httpx.Client) -> None:
    body = predict(http, f"{HPT}/versions/1:predict?foo=bar", {"instances": [0.0]})
    assert body == {"predictions": [2.0]}


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("GET", HPT, None, 200),
        ("GET", f"{HPT}/metadata", None, 200),
        ("GET", "/v1/models", None, 200),
        ("POST", f"{HPT}:predict", {"instances": [1.0]}, 200),
        ("POST", f"{HPT}:regress", dict(REGRESS, examples=[{"x": 1.0}]), 200),
        ("GET", "/v1/models/nope", None, 404),
        ("POST", "/v1/models/nope:predict", {"instances": [1.0]}, 404),
        ("POST", f"{HPT}:predict", {"instances": ["a"]}, 400),
        ("POST", f"{HPT}:explain", {}, 400),
        ("GET", "/nope", None, 404),
        ("GET", "/v2/health/live", None, 200),
        ("GET", "/v2/health/ready", None, 200),
        ("GET", "/v2/models/multi/ready", None, 200),
        ("GET", "/v2/models/nope/ready", None, 404),
    ],
)
def test_every_response_is_json(
    http: httpx.Client, method: str, url: str, body: dict[str, Any] | None, status: int
) -> None:
    response = http.request(method, url, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    parsed = response.json()
    assert isinstance(parsed, dict)
    if status >= 400:
        assert set(parsed) == {"error"} and parsed["error"]


# --------------------------------------------------------------------------- /v2 health


def test_health_live_and_ready(http: httpx.Client) -> None:
    assert ok_json(http.get("/v2/health/live")) == {"live": True}
    assert ok_json(http.get("/v2/health/ready")) == {"ready": True}


@pytest.mark.parametrize(
    "url",
    [
        "/v2/models/half_plus_two/ready",
        "/v2/models/half_plus_two/versions/1/ready",
        "/v2/models/half_plus_two/versions/2/ready",
        "/v2/models/strings/ready",
    ],
)
def test_model_ready(http: httpx.Client, url: str) -> None:
    assert ok_json(http.get(url)) == {"name": url.split("/")[3], "ready": True}


def test_a_version_the_server_never_saw_is_404_not_5xx(http: httpx.Client) -> None:
    """A version never seen is a client error (404); 503 stays for versions the server
    knows that are not AVAILABLE (test_dashboard checks an unloaded one)."""
    response = http.get("/v2/models/half_plus_two/versions/3/ready")
    assert response.status_code == 404
    assert response.json() == {"error": "Could not find version 3 of model half_plus_two"}


def test_unknown_model_ready_is_404(http: httpx.Client) -> None:
    response = http.get("/v2/models/nope/ready")
    assert response.status_code == 404
    assert "nope" in response.json()["error"]


# --------------------------------------------------------------------------------- CORS

CORS_HEADERS = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "POST, GET",
    "access-control-allow-headers": "Content-Type",
}


@pytest.fixture(scope="module")
def cors(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    config = tmp_path_factory.mktemp("cors") / "models.config"
    config.write_text(
        model_config(
            [
                (
                    "half_plus_two",
                    str(models_dir / "half_plus_two"),
                    "model_version_policy { specific { versions: 1 } }",
                )
            ]
        )
    )
    server: Server = start_server(
        [f"--model_config_file={config}", "--rest_api_enable_cors_support=true"]
    )
    try:
        with httpx.Client(base_url=server.rest, timeout=30) as client:
            yield client
    finally:
        server.stop()


def _cors_of(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("GET", HPT, None, 200),
        ("GET", f"{HPT}/metadata", None, 200),
        ("POST", f"{HPT}:predict", {"instances": [1.0]}, 200),
        ("POST", f"{HPT}:predict", {"instances": ["bad"]}, 400),
        ("GET", "/v1/models/nope", None, 404),
        ("POST", f"{HPT}:PREDICT", {}, 400),
    ],
)
def test_cors_headers_on_every_response(
    cors: httpx.Client, method: str, url: str, body: dict[str, Any] | None, status: int
) -> None:
    response = cors.request(method, url, json=body)
    assert response.status_code == status, response.text
    assert _cors_of(response) == CORS_HEADERS
    assert response.headers["content-type"] == "application/json"


def test_cors_server_still_predicts(cors: httpx.Client) -> None:
    assert predict(cors, f"{HPT}:predict", {"instances": [2.0]}) == {
        "predictions": [half_plus(2.0, 1)]
    }


@pytest.mark.parametrize("origin", ["http://example.com", "https://app.example.org:8443"])
@pytest.mark.parametrize("url", [f"{HPT}:predict", f"{HPT}/versions/1:classify", HPT])
def test_cors_preflight_with_origin(cors: httpx.Client, origin: str, url: str) -> None:
    response = cors.options(
        url, headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code == 200
    assert response.content == b""
    assert _cors_of(response) == CORS_HEADERS


@pytest.mark.parametrize("headers", [{}, {"Origin": "null"}, {"Origin": "ftp://example.com"}])
def test_cors_preflight_without_http_origin_is_400(
    cors: httpx.Client, headers: dict[str, str]
) -> None:
    response = cors.options(f"{HPT}:predict", headers=headers)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "Origin header is missing in CORS preflight"}
    assert _cors_of(response) == CORS_HEADERS


def test_no_cors_headers_without_flag_but_preflight_still_answered(http: httpx.Client) -> None:
    response = http.get(HPT)
    assert _cors_of(response) == {}
    preflight = http.options(f"{HPT}:predict", headers={"Origin": "https://example.com"})
    assert preflight.status_code == 200  # TF answers OPTIONS regardless of the flag
    assert _cors_of(preflight) == {}
    assert http.options(f"{HPT}:predict").status_code == 400
