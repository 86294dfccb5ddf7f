"""Bad REST input gets TF Serving's status code and message (compat doc 1.2, 1.3, 1.6, 1.8).

Every case also checks that the answer is a JSON ``{"error": ...}`` with a status below 500,
and an autouse fixture sends a good predict after each test: a bad request must never hurt
the server. Size limits use one module-scoped extra server with a small
``--rest_api_max_body_bytes``.
"""

from __future__ import annotations

import base64
import gzip
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Server, model_config, start_server

HPT = "/v1/models/half_plus_two"
PREDICT = f"{HPT}:predict"
MULTI = "/v1/models/multi:predict"
STRINGS = "/v1/models/strings:predict"
ALL_TYPES = "/v1/models/all_types:predict"
LIMIT = 4096  # --rest_api_max_body_bytes of the small server


@pytest.fixture(autouse=True)
def _server_still_answers(http: httpx.Client) -> Iterator[None]:
    yield
    response = http.post(f"{HPT}/versions/1:predict", json={"instances": [2.0]})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [3.0]}


def error_of(response: httpx.Response, status: int) -> str:
    """The error message, after checking the status and TF's error shape."""
    assert response.status_code < 500, response.text
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"], str) and body["error"]
    return str(body["error"])


def send(http: httpx.Client, method: str, url: str, body: Any = None) -> httpx.Response:
    """``body``: bytes are sent as they are, anything else as JSON."""
    if isinstance(body, bytes):
        return http.request(method, url, content=body)
    return http.request(method, url, json=body)


# --------------------------------------------------------------- unknown models, versions


@pytest.mark.parametrize(
    ("method", "url", "status", "message"),
    [
        ("POST", "/v1/models/nope:predict", 404, "Servable not found for request: Latest(nope)"),
        ("POST", "/v1/models/nope:classify", 404, "Servable not found for request: Latest(nope)"),
        (
            "POST",
            f"{HPT}/versions/7:predict",
            404,
            "Servable not found for request: Specific(half_plus_two, 7)",
        ),
        (
            "POST",
            f"{HPT}/versions/7:regress",
            404,
            "Servable not found for request: Specific(half_plus_two, 7)",
        ),
        (
            "POST",
            f"{HPT}/versions/9223372036854775807:predict",
            404,
            "Servable not found for request: Specific(half_plus_two, 9223372036854775807)",
        ),
        ("POST", f"{HPT}/labels/nope:predict", 400, "Unrecognized servable version label: nope"),
        ("POST", f"{HPT}/labels/nope:classify", 400, "Unrecognized servable version label: nope"),
        ("GET", "/v1/models/nope", 404, "Could not find any versions of model nope"),
        ("GET", f"{HPT}/versions/7", 404, "Could not find version 7 of model half_plus_two"),
        ("GET", "/v1/models/nope/metadata", 404, "Servable not found for request: Latest(nope)"),
        (
            "GET",
            f"{HPT}/versions/7/metadata",
            404,
            "Servable not found for request: Specific(half_plus_two, 7)",
        ),
        ("GET", f"{HPT}/labels/nope/metadata", 400, "Unrecognized servable version label: nope"),
    ],
)
def test_unknown_model_version_label(
    http: httpx.Client, method: str, url: str, status: int, message: str
) -> None:
    body = {"instances": [1.0], "examples": [{"x": 1.0}]} if method == "POST" else None
    assert error_of(send(http, method, url, body), status) == message


# ------------------------------------------------------------------- malformed URLs, verbs


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", f"{HPT}:PREDICT"),
        ("POST", f"{HPT}:Classify"),
        ("POST", "/v1/models/x:explain"),
        ("POST", f"{HPT}:"),
        ("GET", f"{HPT}:predict"),
        ("POST", HPT),
        ("POST", f"{HPT}/metadata"),
        ("PUT", PREDICT),
        ("DELETE", HPT),
        ("PATCH", HPT),
        ("GET", f"{HPT}/METADATA"),
        ("GET", f"{HPT}/metadata/"),
        ("GET", f"{HPT}/"),
        ("GET", f"{HPT}/versions/1/labels/stable"),
        ("POST", f"{HPT}/versions/1/labels/stable:predict"),
        ("GET", f"{HPT}/versions/x"),
        ("GET", f"{HPT}/versions/-1"),
        ("POST", f"{HPT}/versions/1.0:predict"),
        ("GET", f"{HPT}/versions/"),
        ("POST", "/v1/models:predict"),
        ("POST", "/v1/models"),
        ("GET", "/v1/nope"),
        ("POST", f"{PREDICT}/extra"),
    ],
)
def test_malformed_request(http: httpx.Client, method: str, url: str) -> None:
    body = {"instances": [1.0]} if method in ("POST", "PUT", "PATCH") else None
    assert error_of(send(http, method, url, body), 400) == f"Malformed request: {method} {url}"


@pytest.mark.parametrize("version", ["9223372036854775808", "99999999999999999999999"])
@pytest.mark.parametrize("form", ["GET {}", "GET {}/metadata", "POST {}:predict"])
def test_version_overflow(http: httpx.Client, version: str, form: str) -> None:
    method, template = form.split(" ")
    url = template.format(f"{HPT}/versions/{version}")
    message = error_of(send(http, method, url, {"instances": [1.0]}), 400)
    assert message == f"Failed to convert version: {version} to numeric."


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/v1",
        "/v2/nope",
        "/v2/repository",
        "/models/half_plus_two",
        "/v2/models/half_plus_two/versions/1/nope",
        "/favicon.ico",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_paths_outside_v1_are_json_404(http: httpx.Client, path: str, method: str) -> None:
    error_of(send(http, method, path, {"instances": [1.0]} if method == "POST" else None), 404)


# ---------------------------------------------------------------------- body and envelope


def test_empty_body(http: httpx.Client) -> None:
    message = error_of(http.post(PREDICT, content=b""), 400)
    assert message == "JSON Parse error: The document is empty"


@pytest.mark.parametrize(
    ("body", "offset"),
    [
        (b"{", 1),
        (b'{"instances": [1.0,]}', 18),
        (b"not json", 0),
        (b'{"instances" [1]}', 13),
        (b'{"instances": [1.0]} x', 21),
        (b"\xff\xfe{}", 0),
    ],
)
def test_invalid_json(http: httpx.Client, body: bytes, offset: int) -> None:
    message = error_of(http.post(PREDICT, content=body), 400)
    assert message.startswith("JSON Parse error: ")
    assert message.endswith(f" at offset: {offset}")


@pytest.mark.parametrize("body", [b"[1.0,2.0]", b'"instances"', b"3", b"null", b"true"])
def test_top_level_not_an_object(http: httpx.Client, body: bytes) -> None:
    message = error_of(http.post(PREDICT, content=body), 400)
    assert message == f"JSON Value: {body.decode()} Is not object"


def test_both_instances_and_inputs(http: httpx.Client) -> None:
    message = error_of(http.post(PREDICT, json={"instances": [1.0], "inputs": [1.0]}), 400)
    assert "expecting only one of 'inputs' or 'instances' keys to exist" in message


@pytest.mark.parametrize("body", [{}, {"instance": [1.0]}, {"signature_name": "x"}])
def test_neither_instances_nor_inputs(http: httpx.Client, body: dict[str, Any]) -> None:
    assert error_of(http.post(PREDICT, json=body), 400) == "Missing 'inputs' or 'instances' key"


@pytest.mark.parametrize("instances", [{"x": [1.0]}, 1.0, "abc", None])
def test_instances_not_a_list(http: httpx.Client, instances: Any) -> None:
    message = error_of(http.post(PREDICT, json={"instances": instances}), 400)
    assert message.endswith("Excepting 'instances' to be an list/array")


def test_instances_empty(http: httpx.Client) -> None:
    message = error_of(http.post(PREDICT, json={"instances": []}), 400)
    assert message.endswith("No values in 'instances' array")


@pytest.mark.parametrize("verb", ["predict", "classify", "regress"])
@pytest.mark.parametrize("name", [5, None, ["serving_default"], {"a": 1}, True])
def test_signature_name_not_a_string(http: httpx.Client, verb: str, name: Any) -> None:
    body = {"signature_name": name, "instances": [1.0], "examples": [{"x": 1.0}]}
    message = error_of(http.post(f"{HPT}:{verb}", json=body), 400)
    assert message.endswith("not formatted correctly. 'signature_name' key must be a string value.")


def test_unknown_signature_predict_status(http: httpx.Client) -> None:
    error_of(http.post(PREDICT, json={"signature_name": "nope", "instances": [1.0]}), 400)


def test_unknown_signature_predict_message(http: httpx.Client) -> None:
    message = error_of(http.post(PREDICT, json={"signature_name": "nope", "instances": [1]}), 400)
    # TF Serving's text, then the signatures that do exist (our addition).
    assert message.startswith('Serving signature name: "nope" not found in signature def')
    assert "serving_default" in message


@pytest.mark.parametrize("verb", ["classify", "regress"])
def test_unknown_signature_classify_regress(http: httpx.Client, verb: str) -> None:
    body = {"signature_name": "nope", "examples": [{"x": 1.0}]}
    message = error_of(http.post(f"{HPT}:{verb}", json=body), 400)
    assert message == "No signature was found with the name: nope"


# ------------------------------------------------------------------------- input names
MULTI_TAKES = "Signature 'serving_default' takes a: DT_FLOAT [-1, 2], b: DT_INT64 [-1]."


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"instances": [{"a": [1.0, 2.0], "c": 3}]},
            "Failed to process element: 0 key: c of 'instances' list. Error: INVALID_ARGUMENT: "
            f"JSON object: does not have named input: c {MULTI_TAKES}",
        ),
        (
            {"instances": [{"a": [1.0, 2.0], "b": 1}, {"a": [1.0, 2.0]}]},
            "Failed to process element: 1 of 'instances' list. JSON object: {\"a\":[1.0,2.0]} "
            f"must only have keys: a,b {MULTI_TAKES}",
        ),
        (
            {"instances": [[1.0, 2.0]]},
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map",
        ),
        (
            {"inputs": [[1.0, 2.0]]},
            "inputs is a plain value/list, but expecting an object as multiple input tensors "
            "required as per tensorinfo_map",
        ),
        (
            {"inputs": {"a": [[1.0, 2.0]]}},
            f"Missing named input: b in 'inputs' object. {MULTI_TAKES}",
        ),
        (
            {"inputs": {"b": [1], "c": [1]}},
            f"Missing named input: a in 'inputs' object. {MULTI_TAKES}",
        ),
    ],
)
def test_multi_input_names(http: httpx.Client, body: dict[str, Any], message: str) -> None:
    assert error_of(http.post(MULTI, json=body), 400) == message


def test_row_named_input_unknown_for_single_input(http: httpx.Client) -> None:
    message = error_of(http.post(PREDICT, json={"instances": [{"y": 1.0}]}), 400)
    assert "does not have named input: y" in message


def test_columnar_named_input_missing_for_single_input(http: httpx.Client) -> None:
    message = error_of(http.post(PREDICT, json={"inputs": {"y": [1.0]}}), 400)
    assert message == (
        "Missing named input: x in 'inputs' object. "
        "Signature 'serving_default' takes x: DT_FLOAT [-1]."
    )


def test_row_mixing_objects_and_values(http: httpx.Client) -> None:
    message = error_of(http.post(PREDICT, json={"instances": [1.0, {"x": 2.0}]}), 400)
    assert "Expecting value/list but got object at item 1" in message


# ------------------------------------------------------------------ element types, ranges

GOOD: dict[str, list[Any]] = {
    "f32": [1.0],
    "f64": [1.0],
    "i8": [1],
    "i16": [1],
    "i32": [1],
    "i64": [1],
    "u8": [1],
    "u16": [1],
    "u32": [1],
    "u64": [1],
    "b": [True],
    "s": ["a"],
}
DTYPE = {
    "f32": "float",
    "f64": "double",
    "i8": "int8",
    "i16": "int16",
    "i32": "int32",
    "i64": "int64",
    "u8": "uint8",
    "u16": "uint16",
    "u32": "uint32",
    "u64": "uint64",
    "b": "bool",
    "s": "string",
}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("f32", "1.0"),
        ("f32", True),
        ("f32", None),
        ("f32", {"b64": "AA=="}),
        ("f64", "x"),
        ("f64", False),
        ("i8", 1.5),
        ("i16", "1"),
        ("i32", 1.0),
        ("i32", True),
        ("i64", 1.0),
        ("i64", "9"),
        ("i64", None),
        ("u8", -0.5),
        ("u16", True),
        ("u32", 2.0),
        ("u64", 1.5),
        ("u64", -1),
        ("b", 1),
        ("b", "true"),
        ("b", None),
        ("b", 0.0),
        ("s", 1),
        ("s", True),
        ("s", None),
        ("s", 1.5),
    ],
)
def test_wrong_element_type(http: httpx.Client, name: str, value: Any) -> None:
    message = error_of(http.post(ALL_TYPES, json={"inputs": dict(GOOD, **{name: [value]})}), 400)
    assert f"is not of expected type: {DTYPE[name]}" in message
    shown = json.dumps(value, separators=(",", ":"))
    assert message.startswith(f"JSON Value: {shown} Type: ")


def test_wrong_element_type_row_format(http: httpx.Client) -> None:
    message = error_of(http.post(PREDICT, json={"instances": [1.0, "2"]}), 400)
    assert message.startswith(
        "Failed to process element: 1 of 'instances' list. Error: "
        'INVALID_ARGUMENT: JSON Value: "2" Type: String is not of '
        "expected type: float"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("i32", 2**31),
        ("i32", -(2**31) - 1),
        ("i64", 2**63),
        ("i64", -(2**63) - 1),
        ("u32", 2**32),
        ("u32", -1),
        ("u64", 2**64),
        ("u64", 10**30),
        ("i8", 2**40),
    ],
)
def test_integer_overflow(http: httpx.Client, name: str, value: int) -> None:
    message = error_of(http.post(ALL_TYPES, json={"inputs": dict(GOOD, **{name: [value]})}), 400)
    assert f"is not of expected type: {DTYPE[name]}" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [("i8", 128), ("i8", -129), ("i16", 2**15), ("u8", 256), ("u8", -1), ("u16", 2**16)],
)
def test_narrow_int_out_of_range_is_rejected(http: httpx.Client, name: str, value: int) -> None:
    # Deliberate difference (json_decode docstring): TF wraps these silently; we reject.
    message = error_of(http.post(ALL_TYPES, json={"inputs": dict(GOOD, **{name: [value]})}), 400)
    assert message.startswith(
        f"JSON Value: {value} Type: Number is out of range for expected type: {DTYPE[name]}"
    )


@pytest.mark.parametrize("value", [1e39, -3.5e38, 2**24 + 1])
def test_float32_precision_loss(http: httpx.Client, value: float) -> None:
    message = error_of(http.post(PREDICT, json={"inputs": [value]}), 400)
    assert message.startswith(
        f"Cannot convert JSON value: {json.dumps(value)} to float without loss of precision."
    )


# ---------------------------------------------------------------------------- ragged, rank


@pytest.mark.parametrize(
    ("url", "body", "fragment"),
    [
        (
            "/v1/models/mlp:predict",
            {"instances": [[1.0, 2.0], [3.0]]},
            "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
            "Expecting tensor size: 2 but got: 1",
        ),
        (
            "/v1/models/mlp:predict",
            {"inputs": [[1.0, 2.0], [3.0]]},
            "Encountered list at unexpected size: 1 at level: 1 expected size: 2",
        ),
        (
            PREDICT,
            {"inputs": [[1.0], [2.0, 3.0]]},
            "Encountered list at unexpected size: 2 at level: 1 expected size: 1",
        ),
        (PREDICT, {"inputs": [1.0, [2.0]]}, "Encountered list at unexpected level: 1"),
        (PREDICT, {"inputs": [[1.0], 2.0]}, "JSON Value: 2.0 found at incorrect level"),
        (PREDICT, {"instances": [1.0, [2.0]]}, "Failed to process element: 1 of 'instances'"),
        (
            MULTI,
            {"instances": [{"a": [1.0, 2.0], "b": 1}, {"a": [1.0], "b": 2}]},
            "Failed to process element: 1 key: a of 'instances' list",
        ),
        (STRINGS, {"inputs": [["a", "b"], ["c"]]}, "Encountered list at unexpected size"),
    ],
)
def test_ragged_arrays(http: httpx.Client, url: str, body: dict[str, Any], fragment: str) -> None:
    assert fragment in error_of(http.post(url, json=body), 400)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"instances": [[[1.0]]]}, {"predictions": [[[3.5]]]}),
        ({"inputs": 5.0}, {"outputs": 5.5}),
        ({"inputs": [[1.0, 2.0]]}, {"outputs": [[3.5, 4.0]]}),
    ],
)
def test_graph_model_shapes_are_fed_as_given(
    http: httpx.Client, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    # Like TF Serving, a TF1 session feeds a tensor whatever the signature's declared
    # shape; y = 0.5 x + 3 applies elementwise (half_plus_two v2 is the latest).
    response = http.post(PREDICT, json=body)
    assert response.status_code == 200, response.text
    assert response.json() == expected


def test_wrong_inner_dimension_for_mlp(http: httpx.Client) -> None:
    error_of(http.post("/v1/models/mlp:predict", json={"instances": [[1.0, 2.0]]}), 400)


# -------------------------------------------------------------------------------- base64


@pytest.mark.parametrize(
    "text",
    [
        "!!!!",
        base64.urlsafe_b64encode(b"\xfb\xff\xfe").decode(),  # "-__-": URL-safe alphabet
        "_-8=",
        "YQ=",  # wrong padding
        "Y",
        "\u00e9\u00e9\u00e9\u00e9",
    ],
)
def test_invalid_base64(http: httpx.Client, text: str) -> None:
    message = error_of(http.post(STRINGS, json={"instances": [{"b64": text}]}), 400)
    assert "Unable to base64 decode" in message


def test_invalid_base64_columnar(http: httpx.Client) -> None:
    message = error_of(http.post(STRINGS, json={"inputs": ["ok", {"b64": "-_-_"}]}), 400)
    assert "Unable to base64 decode" in message


def test_b64_object_for_numeric_input(http: httpx.Client) -> None:
    message = error_of(http.post(PREDICT, json={"instances": [{"b64": "AAAAAA=="}]}), 400)
    assert "is not of expected type: float" in message


# ----------------------------------------------------------------- nesting, huge numbers

DEEP = 100_000


@pytest.mark.parametrize(
    "body",
    [
        b"[" * DEEP,
        b'{"instances": ' + b"[" * DEEP + b"1.0" + b"]" * DEEP + b"}",
        b'{"instances": [NaN, ' + b"[" * DEEP + b"1.0" + b"]" * DEEP + b"]}",  # slow parser
        b'{"inputs": ' + b"[" * 500 + b"1.0" + b"]" * 500 + b"}",  # parses, rank 500
        b'{"inputs": ' + b"[" * 500 + b"NaN" + b"]" * 500 + b"}",
        b'{"a": ' * DEEP + b"1" + b"}" * DEEP,
    ],
    ids=["open-only", "instances", "instances-nan", "rank-500", "rank-500-nan", "objects"],
)
def test_deep_nesting(http: httpx.Client, body: bytes) -> None:
    error_of(http.post(PREDICT, content=body), 400)


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances": [1e400]}',
        b'{"instances": [-1e400]}',
        b'{"instances": [' + b"9" * 5000 + b"]}",
        b'{"instances": [' + b"9" * 5000 + b".5]}",
        pytest.param(b'{"instances": [' + b"9" * 5000 + b", NaN]}", id="digits-with-nan"),
        pytest.param(b'{"instances": [1e400, NaN]}', id="exponent-with-nan"),
    ],
)
def test_huge_numbers(http: httpx.Client, body: bytes) -> None:
    message = error_of(http.post(PREDICT, content=body), 400)
    assert message.startswith("JSON Parse error: ")
    assert message.endswith(" at offset: 15")


def test_huge_integer_for_int64_input(http: httpx.Client) -> None:
    body = {"inputs": dict(GOOD, i64=[10**40])}
    assert "is not of expected type: int64" in error_of(http.post(ALL_TYPES, json=body), 400)


# ---------------------------------------------------------------------- classify / regress

CLASSIFY = f"{HPT}:classify"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"signature_name": "classify_x_to_y"},
            "When method is classify, key 'examples' is expected and was not found",
        ),
        ({"examples": []}, "'examples' value is an empty array"),
        ({"examples": {"x": 1.0}}, "Expecting 'examples' value to be an list/array"),
        ({"examples": [5]}, "Example must be JSON object but got JSON Number"),
        ({"examples": [[1.0]]}, "Example must be JSON object but got JSON Array"),
        ({"examples": [{"x": None}]}, "Feature: x has element with unexpected JSON type: Null"),
        ({"examples": [{"x": [[1.0]]}]}, "Feature: x has element with unexpected JSON type: Array"),
        (
            {"examples": [{"x": [1.0, "a"]}]},
            "Unexpected element type in feature: x expecting type: float",
        ),
        (
            {"examples": [{"x": 2**64 - 1}]},
            "Feature: x has uint64 element. Only int64 is supported.",
        ),
        (
            {"examples": [{"x": 1.0}], "context": 5},
            "Example must be JSON object but got JSON Number",
        ),
        ({"examples": [{"x": {"b64": "-_-_"}}]}, "Unable to base64 decode"),
    ],
)
def test_classify_bad_examples(http: httpx.Client, body: dict[str, Any], message: str) -> None:
    body = {"signature_name": "classify_x_to_y", **body}
    assert message in error_of(http.post(CLASSIFY, json=body), 400)


@pytest.mark.parametrize(
    ("verb", "signature"),
    [
        ("classify", "serving_default"),
        ("classify", "regress_x_to_y"),
        ("regress", "serving_default"),
        ("regress", "classify_x_to_y"),
    ],
)
def test_signature_of_wrong_kind(http: httpx.Client, verb: str, signature: str) -> None:
    body = {"signature_name": signature, "examples": [{"x": 1.0}]}
    error_of(http.post(f"{HPT}:{verb}", json=body), 400)


def test_classify_feature_of_wrong_type_for_model(http: httpx.Client) -> None:
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": "abc"}]}
    error_of(http.post(CLASSIFY, json=body), 400)


# ------------------------------------------------------------------ body size and gzip


def test_invalid_gzip(http: httpx.Client) -> None:
    response = http.post(PREDICT, content=b"not gzip", headers={"Content-Encoding": "gzip"})
    error_of(response, 400)


def test_truncated_gzip(http: httpx.Client) -> None:
    data = gzip.compress(json.dumps({"instances": [1.0] * 1000}).encode())
    response = http.post(
        PREDICT, content=data[: len(data) // 2], headers={"Content-Encoding": "gzip"}
    )
    error_of(response, 400)


@pytest.fixture(scope="module")
def small(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("small") / "models.config"
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
    server = start_server([f"--model_config_file={config}", f"--rest_api_max_body_bytes={LIMIT}"])
    yield server
    server.stop()


@pytest.fixture
def small_http(small: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=small.rest, timeout=30) as client:
        yield client
        # The small server also keeps answering after each refused body.
        response = client.post(PREDICT, json={"instances": [4.0]})
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": [4.0]}


def _numbers(size: int) -> bytes:
    """A valid predict body of about ``size`` bytes."""
    count = max(1, (size - 20) // 5)
    return json.dumps({"instances": [1.0] * count}).encode()


def test_body_within_limit_is_served(small_http: httpx.Client) -> None:
    body = _numbers(LIMIT - 100)
    assert len(body) <= LIMIT
    response = small_http.post(PREDICT, content=body)
    assert response.status_code == 200
    assert response.json()["predictions"][0] == 2.5


def test_body_over_limit_is_413(small_http: httpx.Client) -> None:
    body = _numbers(LIMIT + 100)
    assert len(body) > LIMIT
    assert "exceeds the limit" in error_of(small_http.post(PREDICT, content=body), 413)


def test_chunked_body_over_limit_is_413(small_http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"instances": ['
        for _ in range(2000):
            yield b"1.0, "
        yield b"1.0]}"

    assert "exceeds the limit" in error_of(small_http.post(PREDICT, content=chunks()), 413)


def test_deep_nesting_over_limit_is_413(small_http: httpx.Client) -> None:
    body = b'{"instances": ' + b"[" * DEEP + b"1.0" + b"]" * DEEP + b"}"
    error_of(small_http.post(PREDICT, content=body), 413)


def test_gzip_within_limit_is_served(small_http: httpx.Client) -> None:
    body = gzip.compress(_numbers(LIMIT - 100))
    response = small_http.post(PREDICT, content=body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("size", [LIMIT + 1, 3 << 20])
def test_gzip_bomb_is_413(small_http: httpx.Client, size: int) -> None:
    bomb = gzip.compress(b'{"instances": [' + b" " * size + b"1.0]}", compresslevel=9)
    assert len(bomb) < LIMIT  # within the limit on the wire, over it once inflated
    response = small_http.post(PREDICT, content=bomb, headers={"Content-Encoding": "gzip"})
    assert "exceeds the limit" in error_of(response, 413)


# -------------------------------------------------------------------------- slow clients


def _stall(port: int) -> socket.socket:
    """A connection that promised 1000 body bytes and sent 10."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n" + b'{"instance'
    )
    return sock


def test_stalled_body_does_not_block_others(server: Server) -> None:
    stalled = [_stall(server.rest_port) for _ in range(32)]  # more than the worker threads
    try:
        with httpx.Client(base_url=server.rest, timeout=5) as client:
            for x in (1.0, 2.0, 3.0):
                response = client.post(f"{HPT}/versions/1:predict", json={"instances": [x]})
                assert response.status_code == 200, response.text
                assert response.json() == {"predictions": [0.5 * x + 2.0]}
            assert client.get(HPT).status_code == 200
    finally:
        for sock in stalled:
            sock.close()
