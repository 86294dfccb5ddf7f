"""The main server answers over both protocols."""

from __future__ import annotations

import grpc
import httpx
import numpy as np
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tensorserve.service import tensors


def test_rest_predict_half_plus_two(http: httpx.Client) -> None:
    response = http.post(
        "/v1/models/half_plus_two/versions/1:predict", json={"instances": [1.0, 2.0, 5.0]}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [2.5, 3.0, 4.5]}


def test_grpc_predict_latest_is_version_two(channel: grpc.Channel) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tensors.from_numpy(np.array([1.0, 2.0], np.float32)))
    response = stub.Predict(request, timeout=10)
    assert response.model_spec.version.value == 2
    np.testing.assert_allclose(tensors.to_numpy(response.outputs["y"]), [3.5, 4.0])
