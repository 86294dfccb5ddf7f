"""Conformance: TensorFlow Serving's own test SavedModels answer as ``tensorflow_model_server``.

Ports of ``tensorflow_serving/model_servers/tensorflow_model_server_test.py`` (REST and
gRPC on ``saved_model_half_plus_two_cpu`` served as ``default``), of
``http_rest_api_handler_test.cc`` (``saved_model_half_plus_two_2_versions`` with a
specific-version policy and the label ``Version_Label``), of ``predict_impl_test.cc``'s
stateful counter signatures, and of the facts listed in the testdata's INDEX.md.
Expected values are TF Serving's (from those tests and the metadata JSON files it
ships), or the models' math: half_plus_two y = 0.5x + 2, half_plus_three y = 0.5x + 3.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from tests.conformance.conftest import RPC_TIMEOUT, Endpoint, predict_request, sorted_object

pytestmark = pytest.mark.conformance

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"


def post(ep: Endpoint, path: str, body: Any) -> httpx.Response:
    return ep.http.post(path, content=body if isinstance(body, bytes) else json.dumps(body))


def ok_json(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    message: str = body["error"]
    return message


def load_json(tfs_testdata: Path, name: str) -> Any:
    return json.loads((tfs_testdata / name).read_text())


def example_input(target: Any, x: float = 2.0) -> None:
    """One tf.Example with float feature ``x`` in a Classify/Regress/MultiInference input."""
    example = target.example_list.examples.add()
    example.features.feature["x"].float_list.value.extend([x])


def check_model_spec(spec: Any, name: str, signature: str, version: int) -> None:
    """TF Serving's ``_VerifyModelSpec``."""
    assert spec.name == name
    assert spec.signature_name == signature
    assert spec.version.value == version


def status_entry(version: str, state: str = "AVAILABLE") -> dict[str, Any]:
    return {"version": version, "state": state, "status": {"error_code": "OK", "error_message": ""}}


def grpc_metadata_as_json(
    stub: prediction_service_pb2_grpc.PredictionServiceStub, name: str, **spec: Any
) -> tuple[get_model_metadata_pb2.GetModelMetadataResponse, Any]:
    """GetModelMetadata, with its SignatureDefMap printed like TF Serving's REST metadata."""
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = name
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    request.metadata_field.append("signature_def")
    response = stub.GetModelMetadata(request, timeout=RPC_TIMEOUT)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(sig_map)
    printed = json_format.MessageToDict(
        sig_map, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return response, printed


# ---- half_plus_two_cpu as "default": tensorflow_model_server_test.py over REST -------------


def test_rest_predict_row(tfs_default: Endpoint) -> None:
    body = ok_json(post(tfs_default, "/v1/models/default:predict", {"instances": [2.0, 3.0, 4.0]}))
    assert body == {"predictions": [3.0, 3.5, 4.0]}


def test_rest_predict_columnar(tfs_default: Endpoint) -> None:
    body = ok_json(post(tfs_default, "/v1/models/default:predict", {"inputs": [2.0, 3.0, 4.0]}))
    assert body == {"outputs": [3.0, 3.5, 4.0]}


def test_rest_predict_row_matching_signature_shape(tfs_default: Endpoint) -> None:
    """The same values shaped like the signature's [-1, 1] (passes the shape check)."""
    body = ok_json(
        post(tfs_default, "/v1/models/default:predict", {"instances": [[2.0], [3.0], [4.0]]})
    )
    assert body == {"predictions": [[3.0], [3.5], [4.0]]}
    body = ok_json(
        post(tfs_default, "/v1/models/default/versions/123:predict", {"inputs": [[2.0], [-4.0]]})
    )
    assert body == {"outputs": [[3.0], [0.0]]}


def test_rest_classify(tfs_default: Endpoint) -> None:
    request = {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
    body = ok_json(post(tfs_default, "/v1/models/default:classify", request))
    assert body == {"results": [[["", 3.0]]]}


def test_rest_regress(tfs_default: Endpoint) -> None:
    request = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}
    body = ok_json(post(tfs_default, "/v1/models/default:regress", request))
    assert body == {"results": [3.0]}


def test_rest_regress_other_signatures(tfs_default: Endpoint) -> None:
    """regress_x_to_y2 (y2 = 0.5x + 3); regress_x2_to_y3 reads a float tensor x2:0, not
    serialized Examples, so the session refuses the strings (TF's own message)."""
    request = {"signature_name": "regress_x_to_y2", "examples": [{"x": 2.0}, {"x": 4.0}]}
    body = ok_json(post(tfs_default, "/v1/models/default:regress", request))
    assert body == {"results": [4.0, 5.0]}
    response = post(
        tfs_default,
        "/v1/models/default:regress",
        {"signature_name": "regress_x2_to_y3", "examples": [{"x2": 2.0}]},
    )
    assert "Expects arg[0] to be float but string is provided" in error(response, 400)


def test_rest_status(tfs_default: Endpoint) -> None:
    body = ok_json(tfs_default.http.get("/v1/models/default"))
    assert body == {"model_version_status": [status_entry("123")]}


def test_rest_metadata(tfs_default: Endpoint, tfs_testdata: Path) -> None:
    expected = load_json(tfs_testdata, "half_plus_two_model_metadata.json")
    body = ok_json(tfs_default.http.get("/v1/models/default/metadata"))
    assert sorted_object(body) == sorted_object(expected)
    body = ok_json(tfs_default.http.get("/v1/models/default/versions/123/metadata"))
    assert sorted_object(body) == sorted_object(expected)


# ---- half_plus_two_cpu as "default": tensorflow_model_server_test.py over gRPC -------------


@pytest.mark.parametrize("specify_output", [True, False])
def test_grpc_predict(tfs_default: Endpoint, specify_output: bool) -> None:
    """``testPredictSavedModel``: x = [2.0] of shape [1] -> y = [3.0]."""
    request = predict_request("default", output_filter=specify_output)
    result = tfs_default.prediction.Predict(request, timeout=RPC_TIMEOUT)
    assert "y" in result.outputs
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert list(result.outputs["y"].float_val) == [3.0]
    check_model_spec(result.model_spec, "default", "serving_default", 123)


@pytest.mark.parametrize("specify_output", [True, False])
def test_grpc_predict_batch_input(tfs_default: Endpoint, specify_output: bool) -> None:
    """``VerifyPredictRequest(batch_input=True)``: x of shape [1, 1]."""
    request = predict_request("default", shape=(1, 1), output_filter=specify_output)
    result = tfs_default.prediction.Predict(request, timeout=RPC_TIMEOUT)
    assert list(result.outputs) == ["y"]
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert [d.size for d in result.outputs["y"].tensor_shape.dim] == [1, 1]
    assert list(result.outputs["y"].float_val) == [3.0]
    check_model_spec(result.model_spec, "default", "serving_default", 123)


def test_grpc_predict_over_unix_socket(tfs_default_socket: str) -> None:
    """``testPredictUDS``: the same Predict through ``--grpc_socket_path``."""
    with grpc.insecure_channel(tfs_default_socket) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        result = stub.Predict(predict_request("default", x=6.0, shape=(1, 1)), timeout=RPC_TIMEOUT)
    assert list(result.outputs["y"].float_val) == [5.0]
    check_model_spec(result.model_spec, "default", "serving_default", 123)


def test_grpc_get_model_status(tfs_default: Endpoint) -> None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "default"
    result = tfs_default.models.GetModelStatus(request, timeout=RPC_TIMEOUT)
    assert len(result.model_version_status) == 1
    status = result.model_version_status[0]
    assert status.version == 123
    assert status.state == AVAILABLE
    assert status.status.error_code == 0
    assert status.status.error_message == ""


def test_grpc_get_model_metadata(tfs_default: Endpoint, tfs_testdata: Path) -> None:
    """``testGetModelMetadata``, plus the signatures equal half_plus_two_model_metadata.json."""
    result, printed = grpc_metadata_as_json(tfs_default.prediction, "default")
    assert result.model_spec.name == "default"
    assert result.model_spec.version.value == 123
    assert len(result.metadata) == 1
    assert "signature_def" in result.metadata
    expected = load_json(tfs_testdata, "half_plus_two_model_metadata.json")
    assert sorted_object(printed) == sorted_object(expected["metadata"]["signature_def"])


def test_grpc_classify(tfs_default: Endpoint) -> None:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "classify_x_to_y"
    example_input(request.input)
    result = tfs_default.prediction.Classify(request, timeout=RPC_TIMEOUT)
    assert len(result.result.classifications) == 1
    assert len(result.result.classifications[0].classes) == 1
    assert result.result.classifications[0].classes[0].score == 3.0
    assert result.result.classifications[0].classes[0].label == ""
    check_model_spec(result.model_spec, "default", "classify_x_to_y", 123)


def test_grpc_regress(tfs_default: Endpoint) -> None:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "default"
    request.model_spec.signature_name = "regress_x_to_y"
    example_input(request.input)
    result = tfs_default.prediction.Regress(request, timeout=RPC_TIMEOUT)
    assert len(result.result.regressions) == 1
    assert result.result.regressions[0].value == 3.0
    check_model_spec(result.model_spec, "default", "regress_x_to_y", 123)


def multi_inference(ep: Endpoint, model: str) -> inference_pb2.MultiInferenceResponse:
    """``testMultiInference``: regress_x_to_y and classify_x_to_y on one example x = 2.0."""
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("regress_x_to_y", REGRESS), ("classify_x_to_y", CLASSIFY)):
        task = request.tasks.add()
        task.model_spec.name = model
        task.model_spec.signature_name = signature
        task.method_name = method
    example_input(request.input)
    return ep.prediction.MultiInference(request, timeout=RPC_TIMEOUT)


def test_grpc_multi_inference(tfs_default: Endpoint) -> None:
    result = multi_inference(tfs_default, "default")
    assert len(result.results) == 2
    assert result.results[0].regression_result.regressions[0].value == 3.0
    assert result.results[1].classification_result.classifications[0].classes[0].score == 3.0
    check_model_spec(result.results[0].model_spec, "default", "regress_x_to_y", 123)
    check_model_spec(result.results[1].model_spec, "default", "classify_x_to_y", 123)


# ---- saved_model_half_plus_two_2_versions: http_rest_api_handler_test.cc ------------------

HANDLER_MODEL = "saved_model_half_plus_two_2_versions"
HANDLER_PATHS = [
    f"/v1/models/{HANDLER_MODEL}",
    f"/v1/models/{HANDLER_MODEL}/versions/123",
    f"/v1/models/{HANDLER_MODEL}/labels/Version_Label",
]


@pytest.mark.parametrize(
    ("path", "request_body", "expected"),
    [
        (
            HANDLER_PATHS[0],
            {"instances": [[1.0, 2.0], [3.0, 4.0]]},
            {"predictions": [[2.5, 3.0], [3.5, 4.0]]},
        ),
        (HANDLER_PATHS[1], {"instances": [1.0, 2.0]}, {"predictions": [2.5, 3.0]}),
        (HANDLER_PATHS[2], {"instances": [1.0, 2.0]}, {"predictions": [2.5, 3.0]}),
        (
            HANDLER_PATHS[1],
            {"signature_name": "serving_default", "instances": [3.0, 4.0]},
            {"predictions": [3.5, 4.0]},
        ),
        (
            HANDLER_PATHS[1],
            {"signature_name": "serving_default", "inputs": [3.0, 4.0]},
            {"outputs": [3.5, 4.0]},
        ),
    ],
    ids=["latest-2x2", "version", "label", "signature", "columnar"],
)
def test_handler_predict(
    tfs_zoo: Endpoint, path: str, request_body: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert ok_json(post(tfs_zoo, f"{path}:predict", request_body)) == expected


@pytest.mark.parametrize("path", HANDLER_PATHS, ids=["latest", "version", "label"])
def test_handler_regress(tfs_zoo: Endpoint, path: str) -> None:
    request = {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}
    assert ok_json(post(tfs_zoo, f"{path}:regress", request)) == {"results": [42.0]}


@pytest.mark.parametrize(
    ("path", "x", "y"),
    [(HANDLER_PATHS[0], 20.0, 12.0), (HANDLER_PATHS[2], 10.0, 7.0)],
    ids=["latest", "label"],
)
def test_handler_classify(tfs_zoo: Endpoint, path: str, x: float, y: float) -> None:
    request = {"signature_name": "classify_x_to_y", "examples": [{"x": x}]}
    assert ok_json(post(tfs_zoo, f"{path}:classify", request)) == {"results": [[["", y]]]}


@pytest.mark.parametrize("path", HANDLER_PATHS, ids=["latest", "version", "label"])
def test_handler_status(tfs_zoo: Endpoint, path: str) -> None:
    """Only version 123 is aspired by the specific policy; 124 never appears."""
    assert ok_json(tfs_zoo.http.get(path)) == {"model_version_status": [status_entry("123")]}


def test_handler_metadata(tfs_zoo: Endpoint, tfs_testdata: Path) -> None:
    """Equal to saved_model_half_plus_two_2_versions_metadata.json (CompareJson: lists in order)."""
    expected = load_json(tfs_testdata, "saved_model_half_plus_two_2_versions_metadata.json")
    assert ok_json(tfs_zoo.http.get(f"/v1/models/{HANDLER_MODEL}/metadata")) == expected
    label = ok_json(tfs_zoo.http.get(f"/v1/models/{HANDLER_MODEL}/labels/Version_Label/metadata"))
    assert label == expected


def test_handler_metadata_grpc(tfs_zoo: Endpoint, tfs_testdata: Path) -> None:
    expected = load_json(tfs_testdata, "saved_model_half_plus_two_2_versions_metadata.json")
    result, printed = grpc_metadata_as_json(tfs_zoo.prediction, HANDLER_MODEL)
    check_model_spec(result.model_spec, HANDLER_MODEL, "", 123)
    assert printed == expected["metadata"]["signature_def"]


def test_handler_predict_name_version_errors(tfs_zoo: Endpoint) -> None:
    """``PredictModelNameVersionErrors``: unknown model, version -> NOT_FOUND (404)."""
    body = {"instances": [1]}
    assert error(post(tfs_zoo, "/v1/models/foo:predict", body), 404) == (
        "Servable not found for request: Latest(foo)"
    )
    assert error(post(tfs_zoo, "/v1/models/foo/versions/50:predict", body), 404) == (
        "Servable not found for request: Specific(foo, 50)"
    )
    assert error(post(tfs_zoo, f"/v1/models/{HANDLER_MODEL}/versions/124:predict", body), 404) == (
        f"Servable not found for request: Specific({HANDLER_MODEL}, 124)"
    )


def test_handler_predict_request_errors(tfs_zoo: Endpoint) -> None:
    """``PredictRequestErrors`` (the messages TF Serving's test checks as substrings)."""
    path = f"/v1/models/{HANDLER_MODEL}:predict"
    assert "JSON Parse error: The document is empty" in error(post(tfs_zoo, path, b""), 400)
    wrong_type = error(post(tfs_zoo, path, {"instances": ["x", "y"]}), 400)
    assert "not of expected type: float" in wrong_type
    label = f"/v1/models/{HANDLER_MODEL}/labels/Version_Nonexistent:predict"
    assert "Unrecognized servable version label" in error(
        post(tfs_zoo, label, {"instances": ["x", "y"]}), 400
    )
    assert "'signature_name' key must be a string value." in error(
        post(tfs_zoo, path, {"signature_name": 100}), 400
    )


def test_handler_predict_invalid_json_message(tfs_zoo: Endpoint) -> None:
    response = post(tfs_zoo, f"/v1/models/{HANDLER_MODEL}:predict", b"instances = [1, 2]")
    message = error(response, 400)
    assert "JSON Parse error: Invalid value" in message


# ---- saved_model_half_plus_two_2_versions: version discovery, policies, labels ------------


def test_latest_policy_serves_124_only(tfs_zoo: Endpoint) -> None:
    assert ok_json(tfs_zoo.http.get("/v1/models/two_versions_latest")) == {
        "model_version_status": [status_entry("124")]
    }
    result = tfs_zoo.prediction.Predict(
        predict_request("two_versions_latest", shape=(1, 1)), timeout=RPC_TIMEOUT
    )
    assert list(result.outputs["y"].float_val) == [3.0]
    check_model_spec(result.model_spec, "two_versions_latest", "serving_default", 124)
    response = post(
        tfs_zoo, "/v1/models/two_versions_latest/versions/123:predict", {"instances": [[2.0]]}
    )
    assert error(response, 404) == (
        "Servable not found for request: Specific(two_versions_latest, 123)"
    )


def test_latest_policy_status_of_unserved_version(tfs_zoo: Endpoint) -> None:
    response = tfs_zoo.http.get("/v1/models/two_versions_latest/versions/123")
    assert error(response, 404) == "Could not find version 123 of model two_versions_latest"


def test_all_policy_serves_both_versions(tfs_zoo: Endpoint) -> None:
    """Status lists versions in descending order; each answers under its number and label."""
    assert ok_json(tfs_zoo.http.get("/v1/models/two_versions_all")) == {
        "model_version_status": [status_entry("124"), status_entry("123")]
    }
    for version, label in ((123, "stable"), (124, "canary")):
        request = predict_request("two_versions_all", shape=(1, 1))
        request.model_spec.version_label = label
        result = tfs_zoo.prediction.Predict(request, timeout=RPC_TIMEOUT)
        assert list(result.outputs["y"].float_val) == [3.0]
        check_model_spec(result.model_spec, "two_versions_all", "serving_default", version)
        request = regression_pb2.RegressionRequest()
        request.model_spec.name = "two_versions_all"
        request.model_spec.version.value = version
        request.model_spec.signature_name = "regress_x_to_y"
        example_input(request.input, 80.0)
        regress = tfs_zoo.prediction.Regress(request, timeout=RPC_TIMEOUT)
        assert regress.result.regressions[0].value == 42.0
        check_model_spec(regress.model_spec, "two_versions_all", "regress_x_to_y", version)
    latest = tfs_zoo.prediction.Predict(
        predict_request("two_versions_all", shape=(1, 1)), timeout=RPC_TIMEOUT
    )
    assert latest.model_spec.version.value == 124
    body = ok_json(
        post(
            tfs_zoo,
            "/v1/models/two_versions_all/labels/stable:classify",
            {"signature_name": "classify_x_to_y", "examples": [{"x": 10.0}]},
        )
    )
    assert body == {"results": [[["", 7.0]]]}


def test_metadata_of_version_124(tfs_zoo: Endpoint, tfs_testdata: Path) -> None:
    """Version 124's signatures are the file's; model_spec names the resolved version."""
    expected = load_json(tfs_testdata, "saved_model_half_plus_two_2_versions_metadata.json")
    expected["model_spec"] = {"name": "two_versions_all", "signature_name": "", "version": "124"}
    body = ok_json(tfs_zoo.http.get("/v1/models/two_versions_all/labels/canary/metadata"))
    assert sorted_object(body) == sorted_object(expected)
    body = ok_json(tfs_zoo.http.get("/v1/models/two_versions_all/metadata"))
    assert body["model_spec"]["version"] == "124"


# ---- saved_model_half_plus_two_tf2_cpu -----------------------------------------------------


def test_tf2_classify_regress_rest(tfs_zoo: Endpoint) -> None:
    example = {"examples": [{"x": 2.0}]}
    body = ok_json(
        post(tfs_zoo, "/v1/models/tf2:classify", {"signature_name": "classify_x_to_y", **example})
    )
    assert body == {"results": [[["", 3.0]]]}
    body = ok_json(
        post(tfs_zoo, "/v1/models/tf2:regress", {"signature_name": "regress_x_to_y", **example})
    )
    assert body == {"results": [3.0]}


def test_tf2_classify_regress_grpc(tfs_zoo: Endpoint) -> None:
    """``testClassifyTf2`` / ``testRegressTf2``."""
    classify = classification_pb2.ClassificationRequest()
    classify.model_spec.name = "tf2"
    classify.model_spec.signature_name = "classify_x_to_y"
    example_input(classify.input)
    result = tfs_zoo.prediction.Classify(classify, timeout=RPC_TIMEOUT)
    assert len(result.result.classifications) == 1
    assert len(result.result.classifications[0].classes) == 1
    assert result.result.classifications[0].classes[0].score == 3.0
    check_model_spec(result.model_spec, "tf2", "classify_x_to_y", 123)
    regress = regression_pb2.RegressionRequest()
    regress.model_spec.name = "tf2"
    regress.model_spec.signature_name = "regress_x_to_y"
    example_input(regress.input)
    answer = tfs_zoo.prediction.Regress(regress, timeout=RPC_TIMEOUT)
    assert [r.value for r in answer.result.regressions] == [3.0]
    check_model_spec(answer.model_spec, "tf2", "regress_x_to_y", 123)


def test_tf2_multi_inference(tfs_zoo: Endpoint) -> None:
    """``testMultiInferenceTf2``."""
    result = multi_inference(tfs_zoo, "tf2")
    assert result.results[0].regression_result.regressions[0].value == 3.0
    assert result.results[1].classification_result.classifications[0].classes[0].score == 3.0
    check_model_spec(result.results[0].model_spec, "tf2", "regress_x_to_y", 123)
    check_model_spec(result.results[1].model_spec, "tf2", "classify_x_to_y", 123)


def test_tf2_predict(tfs_zoo: Endpoint) -> None:
    """serving_default takes x of shape [1]: TF Serving's VerifyPredictRequest request."""
    result = tfs_zoo.prediction.Predict(predict_request("tf2"), timeout=RPC_TIMEOUT)
    assert list(result.outputs["y"].float_val) == [3.0]
    check_model_spec(result.model_spec, "tf2", "serving_default", 123)
    assert ok_json(post(tfs_zoo, "/v1/models/tf2:predict", {"instances": [2.0]})) == {
        "predictions": [3.0]
    }


def test_tf2_metadata(tfs_zoo: Endpoint, tfs_testdata: Path) -> None:
    """The file names the model ``saved_model_half_plus_two_2_versions`` (the name the C++
    test served it under) at version 123: only the name is ours; the version is the folder's
    (00000123), and the signatures include TF2's ``__saved_model_init_op``.

    The file prints the empty ``defaults`` map on every signature but
    ``__saved_model_init_op``; one protobuf JSON printer prints an empty map on all
    SignatureDefs or on none, so that one entry is completed before comparing.
    """
    expected = load_json(tfs_testdata, "saved_model_half_plus_two_tf2_2_versions_metadata.json")
    assert expected["model_spec"]["version"] == "123"
    expected["model_spec"]["name"] = "tf2"
    signatures = expected["metadata"]["signature_def"]["signature_def"]
    assert [k for k, v in signatures.items() if "defaults" not in v] == ["__saved_model_init_op"]
    signatures["__saved_model_init_op"]["defaults"] = {}
    body = ok_json(tfs_zoo.http.get("/v1/models/tf2/metadata"))
    assert sorted_object(body) == sorted_object(expected)
    _, printed = grpc_metadata_as_json(tfs_zoo.prediction, "tf2", version=123)
    assert sorted_object(printed) == sorted_object(expected["metadata"]["signature_def"])


# ---- saved_model_half_plus_three ------------------------------------------------------------


def test_half_plus_three(tfs_zoo: Endpoint) -> None:
    result = tfs_zoo.prediction.Predict(predict_request("half_plus_three"), timeout=RPC_TIMEOUT)
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert list(result.outputs["y"].float_val) == [4.0]
    check_model_spec(result.model_spec, "half_plus_three", "serving_default", 123)
    body = ok_json(post(tfs_zoo, "/v1/models/half_plus_three:predict", {"instances": [2.0, 5.0]}))
    assert body == {"predictions": [4.0, 5.5]}


# ---- saved_model_counter: predict_impl_test.cc PredictionWithCustomizedSignatures ---------


def counter_call(
    ep: Endpoint, signature: str, delta: float | None = None, output_filter: bool = False
) -> float:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "counter"
    request.model_spec.version.value = 123
    request.model_spec.signature_name = signature
    if delta is not None:
        request.inputs["delta"].CopyFrom(
            tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[delta])
        )
    if output_filter:
        request.output_filter.append("output")
    response = ep.prediction.Predict(request, timeout=RPC_TIMEOUT)
    return _counter_value(response, request)


def _counter_value(
    response: predict_pb2.PredictResponse, request: predict_pb2.PredictRequest
) -> float:
    """The whole response must equal TF Serving's: a DT_FLOAT scalar and the echoed spec."""
    value = response.outputs["output"].float_val[0] if response.outputs else float("nan")
    expected = predict_pb2.PredictResponse()
    expected.model_spec.CopyFrom(request.model_spec)
    expected.outputs["output"].CopyFrom(
        tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[value])
    )
    expected.outputs["output"].tensor_shape.SetInParent()
    assert response == expected
    return float(value)


def test_counter_signatures_grpc(tfs_zoo: Endpoint) -> None:
    """reset, get, incr, incr (output_filter), incr_counter_by(3): 0, 0, 1, 2, 5; get: 5."""
    assert counter_call(tfs_zoo, "reset_counter") == 0.0
    assert counter_call(tfs_zoo, "get_counter") == 0.0
    assert counter_call(tfs_zoo, "incr_counter") == 1.0
    assert counter_call(tfs_zoo, "incr_counter", output_filter=True) == 2.0
    assert counter_call(tfs_zoo, "incr_counter_by", delta=3.0) == 5.0
    assert counter_call(tfs_zoo, "get_counter") == 5.0


def test_counter_signatures_rest(tfs_zoo: Endpoint) -> None:
    """REST can feed incr_counter_by (columnar, scalar output); signatures without inputs
    are refused exactly like TF Serving's json_tensor.cc does."""
    assert counter_call(tfs_zoo, "reset_counter") == 0.0
    path = "/v1/models/counter:predict"
    body = ok_json(
        post(tfs_zoo, path, {"signature_name": "incr_counter_by", "inputs": {"delta": 3.0}})
    )
    assert body == {"outputs": 3.0}
    body = ok_json(post(tfs_zoo, path, {"signature_name": "incr_counter_by", "inputs": 2.5}))
    assert body == {"outputs": 5.5}
    for signature in ("get_counter", "incr_counter", "reset_counter"):
        message = error(post(tfs_zoo, path, {"signature_name": signature, "inputs": {}}), 400)
        assert message == f"Failed to get input map for signature: {signature}"
    assert counter_call(tfs_zoo, "get_counter") == 5.5


def test_counter_metadata_keeps_reference_dtype(tfs_zoo: Endpoint) -> None:
    """The SignatureDefs are returned as saved: the counter's outputs are DT_FLOAT_REF."""
    body = ok_json(tfs_zoo.http.get("/v1/models/counter/metadata"))
    sigs = body["metadata"]["signature_def"]["signature_def"]
    assert sorted(sigs) == ["get_counter", "incr_counter", "incr_counter_by", "reset_counter"]
    assert sigs["get_counter"]["outputs"]["output"]["dtype"] == "DT_FLOAT_REF"
    assert sigs["get_counter"]["inputs"] == {}
    assert sigs["incr_counter_by"]["inputs"]["delta"]["dtype"] == "DT_FLOAT"


# ---- CPU variants: mlmd, mkl, saved_model_config, empty saved_model_config ----------------

VARIANTS = ["mlmd", "mkl", "with_config", "with_empty_config"]


@pytest.mark.parametrize("model", VARIANTS)
def test_variant_loads_and_answers(tfs_zoo: Endpoint, model: str) -> None:
    assert ok_json(tfs_zoo.http.get(f"/v1/models/{model}")) == {
        "model_version_status": [status_entry("123")]
    }
    request = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}, {"x": 10.0}]}
    body = ok_json(post(tfs_zoo, f"/v1/models/{model}:regress", request))
    assert body == {"results": [3.0, 7.0]}
    result = tfs_zoo.prediction.Predict(
        predict_request(model, x=4.0, shape=(1, 1)), timeout=RPC_TIMEOUT
    )
    assert list(result.outputs["y"].float_val) == [4.0]
    check_model_spec(result.model_spec, model, "serving_default", 123)


@pytest.mark.parametrize("model", ["mkl", "with_config", "with_empty_config"])
def test_variant_predict_instances(tfs_zoo: Endpoint, model: str) -> None:
    """INDEX.md's request on the variants whose x is declared [-1, 1]."""
    body = ok_json(post(tfs_zoo, f"/v1/models/{model}:predict", {"instances": [2.0, 3.0, 4.0]}))
    assert body == {"predictions": [3.0, 3.5, 4.0]}


def test_mlmd_predict_instances(tfs_zoo: Endpoint) -> None:
    """The mlmd variant declares x without a shape; INDEX.md's request answers as in TF."""
    body = ok_json(post(tfs_zoo, "/v1/models/mlmd:predict", {"instances": [2.0, 3.0, 4.0]}))
    assert body == {"predictions": [3.0, 3.5, 4.0]}


# ---- GPU variants on a CPU machine: a clear load error; neighbours keep serving ------------


@pytest.mark.parametrize("model", ["gpu", "gpu_trt"])
def test_gpu_model_fails_with_clear_status(tfs_zoo: Endpoint, model: str) -> None:
    body = ok_json(tfs_zoo.http.get(f"/v1/models/{model}"))
    [entry] = body["model_version_status"]
    assert entry["version"] == "123"
    assert entry["state"] == "END"
    assert entry["status"]["error_code"] not in ("OK", "")
    assert "/device:GPU:0" in entry["status"]["error_message"]

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    [status] = tfs_zoo.models.GetModelStatus(request, timeout=RPC_TIMEOUT).model_version_status
    assert (status.version, status.state) == (123, END)
    assert status.status.error_code != 0
    assert status.status.error_message == entry["status"]["error_message"]

    assert error(post(tfs_zoo, f"/v1/models/{model}:predict", {"instances": [[2.0]]}), 404) == (
        f"Servable not found for request: Latest({model})"
    )
    with pytest.raises(grpc.RpcError) as info:
        tfs_zoo.prediction.Predict(predict_request(model, shape=(1, 1)), timeout=RPC_TIMEOUT)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    # The good model loaded next to it still serves.
    result = tfs_zoo.prediction.Predict(predict_request("half_plus_three"), timeout=RPC_TIMEOUT)
    assert list(result.outputs["y"].float_val) == [4.0]


# ---- a TFLite-only folder without --prefer_tflite_model -------------------------------------


def test_tflite_only_folder_reports_load_error(tfs_zoo: Endpoint) -> None:
    body = ok_json(tfs_zoo.http.get("/v1/models/tflite"))
    [entry] = body["model_version_status"]
    assert (entry["version"], entry["state"]) == ("123", "END")
    assert "Could not find SavedModel .pb or .pbtxt" in entry["status"]["error_message"]


def test_tflite_only_folder_is_not_served(tfs_zoo: Endpoint) -> None:
    response = post(tfs_zoo, "/v1/models/tflite:predict", {"instances": [2.0]})
    assert error(response, 404) == "Servable not found for request: Latest(tflite)"
