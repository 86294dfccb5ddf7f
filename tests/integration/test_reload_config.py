"""ModelService.HandleReloadConfigRequest (compat doc §2.2, §2.4, §5 "Config reload").

One extra server whose config the tests replace over gRPC. Every test sends the whole
config it needs (a reload replaces the model list), so the tests do not depend on order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.harness import Server, model_config, start_server

TIMEOUT = 60.0
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END
HP2_VERSIONS = "model_version_policy { specific { versions: 1 versions: 2 } }"


def labels(**pairs: int) -> str:
    return " ".join(f'version_labels {{ key: "{k}" value: {v} }}' for k, v in pairs.items())


@pytest.fixture(scope="module")
def base(models_dir: Path) -> tuple[str, str, str]:
    """half_plus_two (versions 1 and 2, stable=1, canary=2) as a config entry."""
    return (
        "half_plus_two",
        str(models_dir / "half_plus_two"),
        f"{HP2_VERSIONS} {labels(stable=1, canary=2)}",
    )


@pytest.fixture(scope="module")
def reload_server(
    base: tuple[str, str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("reload") / "models.config"
    config.write_text(model_config([base]))
    srv = start_server([f"--model_config_file={config}", "--max_num_load_retries=0"])
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def channel(reload_server: Server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(reload_server.grpc_target) as chan:
        yield chan


@pytest.fixture(scope="module")
def models(channel: grpc.Channel) -> model_service_pb2_grpc.ModelServiceStub:
    return model_service_pb2_grpc.ModelServiceStub(channel)


@pytest.fixture(scope="module")
def predictions(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def reload_request(
    entries: Sequence[tuple[str, str, str]],
) -> model_management_pb2.ReloadConfigRequest:
    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(model_config(entries), request.config)
    return request


def reload(
    models: model_service_pb2_grpc.ModelServiceStub, entries: Sequence[tuple[str, str, str]]
) -> model_management_pb2.ReloadConfigResponse:
    response: model_management_pb2.ReloadConfigResponse = models.HandleReloadConfigRequest(
        reload_request(entries), timeout=TIMEOUT
    )
    return response


def reload_error(
    models: model_service_pb2_grpc.ModelServiceStub,
    request: model_management_pb2.ReloadConfigRequest,
) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        models.HandleReloadConfigRequest(request, timeout=TIMEOUT)
    error = info.value
    assert isinstance(error, grpc.Call)
    return error.code(), error.details() or ""


def predict_request(name: str, x: float, label: str | None = None) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if label is not None:
        request.model_spec.version_label = label
    input_name = "input_example" if name.startswith("mlp") else "x"
    value = np.full((1, 784), x, np.float32) if input_name == "input_example" else [x]
    request.inputs[input_name].CopyFrom(tf.make_tensor_proto(np.asarray(value, np.float32)))
    return request


def hp2(
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
    x: float,
    label: str | None = None,
) -> tuple[int, float]:
    """(version, y) answered by half_plus_two."""
    response = predictions.Predict(predict_request("half_plus_two", x, label), timeout=TIMEOUT)
    return response.model_spec.version.value, float(tf.make_ndarray(response.outputs["y"])[0])


def predict_error(
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
    request: predict_pb2.PredictRequest,
) -> tuple[grpc.StatusCode, str] | None:
    try:
        predictions.Predict(request, timeout=TIMEOUT)
    except grpc.RpcError as error:
        assert isinstance(error, grpc.Call)
        return error.code(), error.details() or ""
    return None


def status(
    models: model_service_pb2_grpc.ModelServiceStub, name: str
) -> list[tuple[int, int, int]]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = name
    response = models.GetModelStatus(request, timeout=TIMEOUT)
    return [(s.version, s.state, s.status.error_code) for s in response.model_version_status]


# ---- success ------------------------------------------------------------------------------


def test_identical_config_is_accepted(
    models: model_service_pb2_grpc.ModelServiceStub,
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
    base: tuple[str, str, str],
) -> None:
    response = reload(models, [base])
    assert response.status.error_code == 0 and response.status.error_message == ""
    assert hp2(predictions, 4.0) == (2, 5.0)


def test_added_model_is_available_when_the_call_returns(
    models: model_service_pb2_grpc.ModelServiceStub,
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
    base: tuple[str, str, str],
    models_dir: Path,
) -> None:
    added = ("mlp_added", str(models_dir / "mlp"), "")
    response = reload(models, [base, added])
    assert response.status.error_code == 0
    # No polling: the RPC returned only once the new model was AVAILABLE.
    assert status(models, "mlp_added") == [(1, AVAILABLE, 0)]
    answer = predictions.Predict(predict_request("mlp_added", 0.5), timeout=TIMEOUT)
    assert answer.model_spec.version.value == 1
    probabilities = tf.make_ndarray(answer.outputs["probabilities"])
    assert probabilities.shape == (1, 10)
    np.testing.assert_allclose(probabilities.sum(), 1.0, rtol=1e-5)  # softmax
    assert hp2(predictions, 4.0) == (2, 5.0)


def test_removed_model_becomes_not_found(
    models: model_service_pb2_grpc.ModelServiceStub,
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
    base: tuple[str, str, str],
    models_dir: Path,
) -> None:
    doomed = ("to_remove", str(models_dir / "half_plus_two"), "")
    reload(models, [base, doomed])
    assert predict_error(predictions, predict_request("to_remove", 1.0)) is None
    response = reload(models, [base])
    assert response.status.error_code == 0
    deadline = time.monotonic() + 30  # unloading happens after the call returns
    error = predict_error(predictions, predict_request("to_remove", 1.0))
    while error is None and time.monotonic() < deadline:
        time.sleep(0.1)
        error = predict_error(predictions, predict_request("to_remove", 1.0))
    assert error == (grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(to_remove)")
    deadline = time.monotonic() + 30
    while status(models, "to_remove") != [(2, END, 0)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status(models, "to_remove") == [(2, END, 0)]  # the monitor remembers it, as END
    assert hp2(predictions, 4.0) == (2, 5.0)


def test_labels_change(
    models: model_service_pb2_grpc.ModelServiceStub,
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
    base: tuple[str, str, str],
) -> None:
    reload(models, [base])
    assert hp2(predictions, 4.0, "stable") == (1, 4.0)
    assert hp2(predictions, 4.0, "canary") == (2, 5.0)
    name, path, _ = base
    swapped = (name, path, f"{HP2_VERSIONS} {labels(stable=2, beta=1)}")
    assert reload(models, [swapped]).status.error_code == 0
    assert hp2(predictions, 4.0, "stable") == (2, 5.0)
    assert hp2(predictions, 4.0, "beta") == (1, 4.0)
    assert predict_error(predictions, predict_request(name, 4.0, "canary")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Unrecognized servable version label: canary",
    )
    reload(models, [base])
    assert hp2(predictions, 4.0, "stable") == (1, 4.0)


# ---- failures -----------------------------------------------------------------------------


def test_label_on_unavailable_version_is_failed_precondition(
    models: model_service_pb2_grpc.ModelServiceStub,
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
    base: tuple[str, str, str],
) -> None:
    reload(models, [base])
    name, path, _ = base
    bad = (name, path, f"{HP2_VERSIONS} {labels(stable=1, canary=7)}")
    assert reload_error(models, reload_request([bad])) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "Request to assign label to version 7 of model half_plus_two, which is not currently "
        "available for inference",
    )
    assert hp2(predictions, 4.0, "canary") == (2, 5.0)  # the labels did not change


def test_model_failing_to_load_is_unknown(
    models: model_service_pb2_grpc.ModelServiceStub,
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
    base: tuple[str, str, str],
    models_dir: Path,
) -> None:
    broken = ("broken_added", str(models_dir / "broken"), "")
    code, details = reload_error(models, reload_request([base, broken]))
    assert code == grpc.StatusCode.UNKNOWN
    assert "did not become available" in details and "broken_added" in details
    [(version, state, error_code)] = status(models, "broken_added")
    assert (version, state) == (1, END) and error_code != 0
    assert hp2(predictions, 4.0) == (2, 5.0)  # the rest keeps serving
    reload(models, [base])


def test_duplicate_names_are_invalid_and_the_old_config_keeps_serving(
    models: model_service_pb2_grpc.ModelServiceStub,
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
    base: tuple[str, str, str],
    models_dir: Path,
) -> None:
    reload(models, [base])
    dup = ("dup", str(models_dir / "half_plus_two"), "")
    code, details = reload_error(models, reload_request([dup, dup]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "dup" in details
    # Nothing was applied: half_plus_two (absent from the rejected config) still serves...
    assert hp2(predictions, 4.0) == (2, 5.0)
    assert hp2(predictions, 4.0, "stable") == (1, 4.0)
    # ... and "dup" was never added.
    assert predict_error(predictions, predict_request("dup", 1.0)) == (
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(dup)",
    )


def test_config_without_model_list_is_failed_precondition(
    models: model_service_pb2_grpc.ModelServiceStub,
    predictions: prediction_service_pb2_grpc.PredictionServiceStub,
) -> None:
    assert reload_error(models, model_management_pb2.ReloadConfigRequest()) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "Cannot transition to requested config. It is only legal to transition from one "
        "ModelConfigList to another.",
    )
    assert hp2(predictions, 4.0) == (2, 5.0)
