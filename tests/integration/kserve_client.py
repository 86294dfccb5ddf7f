"""Runs in a virtualenv of its own with KServe's SDK (``kserve`` pins protobuf 6, which the
project's TensorFlow cannot share): drives a server with KServe's V2 clients and prints
what they saw as JSON. ``python kserve_client.py REST_URL GRPC_TARGET``."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig


def _input(values: list[float], binary: bool | None) -> Any:
    tensor = InferInput("x", [len(values)], "FP32")
    array = np.array(values, dtype=np.float32)
    if binary is None:
        tensor.set_data_from_numpy(array)
    else:
        tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


async def main(rest: str, grpc_target: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    client = InferenceRESTClient(RESTConfig(protocol="v2"))
    seen["rest_live"] = await client.is_server_live(rest)
    seen["rest_ready"] = await client.is_server_ready(rest)
    seen["rest_model_ready"] = await client.is_model_ready(rest, "half_plus_two")
    for binary in (False, True):
        request = InferRequest("half_plus_two", [_input([1.0, 2.0, 5.0], binary)])
        reply = await client.infer(rest, request, model_name="half_plus_two")
        seen[f"rest_infer_binary_{binary}"] = reply.outputs[0].as_numpy().tolist()
    try:
        await client.infer(rest, InferRequest("nope", [_input([1.0], False)]), model_name="nope")
        seen["rest_unknown_model"] = "no error"
    except Exception as exc:  # the SDK raises httpx's HTTPStatusError
        seen["rest_unknown_model"] = str(exc)
    await client.close()
    grpc_client = InferenceGRPCClient(grpc_target)
    seen["grpc_live"] = await grpc_client.is_server_live()
    seen["grpc_ready"] = await grpc_client.is_server_ready()
    reply = await grpc_client.infer(InferRequest("half_plus_two", [_input([1.0, 2.0, 5.0], None)]))
    seen["grpc_infer"] = reply.outputs[0].as_numpy().tolist()
    await grpc_client.close()
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
