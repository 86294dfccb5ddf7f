"""Predict over gRPC with the official ``tensorflow-serving-api`` stubs (works against
tensorserve and TF Serving alike).

    python examples/grpc_predict.py --server localhost:8500 --model half_plus_two \\
        --input x 1.0 2.0 5.0

Sends one float tensor (shape ``[n]``) named ``--input`` to ``--signature`` and prints
each output as a list. Needs only ``pip install tensorflow-serving-api``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


def float_tensor(values: Sequence[float]) -> tensor_pb2.TensorProto:
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=values)
    tensor.tensor_shape.dim.add(size=len(values))
    return tensor


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--server", default="localhost:8500", help="host:port of the gRPC API")
    parser.add_argument("--model", default="half_plus_two")
    parser.add_argument("--signature", default="serving_default")
    parser.add_argument(
        "--input",
        nargs="+",
        default=["x", "1.0", "2.0", "5.0"],
        metavar=("NAME", "VALUE"),
        help="input name, then its float values",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds")
    args = parser.parse_args(argv)
    name, values = args.input[0], [float(v) for v in args.input[1:]]

    request = predict_pb2.PredictRequest()
    request.model_spec.name = args.model
    request.model_spec.signature_name = args.signature
    request.inputs[name].CopyFrom(float_tensor(values))
    with grpc.insecure_channel(args.server) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=args.timeout)
        except grpc.RpcError as err:
            print(f"{err.code().name}: {err.details()}", file=sys.stderr)  # type: ignore[attr-defined]
            return 1
    print(f"model {response.model_spec.name} version {response.model_spec.version.value}")
    for key, tensor in sorted(response.outputs.items()):
        print(f"{key}: {tf.make_ndarray(tensor).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
