"""LitServe serving the SavedModel: API-server processes in front of an inference worker.

Runs inside LitServe's own virtualenv. ``LitServer(api, accelerator="cpu")`` starts one inference
worker process (``workers_per_device=1`` on the one CPU "device": one copy of the model, as in
tensorserve's single model process); ``server.run(num_api_servers=N)`` forks N uvicorn API-server
processes sharing the port, which hand requests to the worker over LitServe's queues and wait for
the answers. ``--max_batch_size``/``--batch_timeout`` turn on its dynamic batching (arguments of
``LitAPI`` since 0.2.x; ``batch`` concatenates the rows, ``unbatch`` splits them back).

TensorFlow is imported in ``setup`` only, so the API servers (forked from the main process before
any model is loaded) do not carry the TF runtime; only the inference worker does.

The body and answer are TF Serving's row format (``{"instances": [[...]]}`` in,
``{"predictions": [[...]]}`` out) on LitServe's own path, ``POST /predict``.

usage: litserve_server.py --port P --model_path BASE/VERSION [--num_api_servers N]
       [--max_batch_size B --batch_timeout SECONDS] [--fast_queue]
"""

from __future__ import annotations

import argparse
import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import litserve as ls
import numpy as np


class TFAPI(ls.LitAPI):
    def __init__(self, model_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_path = model_path

    def setup(self, device: Any) -> None:
        import tensorflow as tf

        self._tf = tf
        self._loaded = tf.saved_model.load(self.model_path)
        self.fn = self._loaded.signatures["serving_default"]
        _, kwargs = self.fn.structured_input_signature
        self.keys = (next(iter(kwargs)), next(iter(self.fn.structured_outputs)))

    # LitServe reads these two signatures: an unannotated ``request`` means "the parsed JSON body"
    # and the return annotation of ``encode_response`` would become FastAPI's response model.
    def decode_request(self, request):  # type: ignore[no-untyped-def]
        return np.asarray(request["instances"], dtype=np.float32)

    def batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(inputs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.fn(**{self.keys[0]: self._tf.constant(x)})[self.keys[1]].numpy()

    def unbatch(self, output: np.ndarray) -> list[np.ndarray]:
        return [output[i : i + 1] for i in range(output.shape[0])]

    def encode_response(self, output: np.ndarray):  # type: ignore[no-untyped-def]
        return {"predictions": output.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model_path", required=True)
    parser.add_argument("--num_api_servers", type=int, default=2)
    parser.add_argument("--max_batch_size", type=int, default=1)
    parser.add_argument("--batch_timeout", type=float, default=0.0, help="seconds")
    parser.add_argument("--fast_queue", action="store_true", help="ZeroMQ instead of mp queues")
    args = parser.parse_args()
    api = TFAPI(
        args.model_path, max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout
    )
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, fast_queue=args.fast_queue)
    server.run(
        host="127.0.0.1",
        port=args.port,
        num_api_servers=args.num_api_servers,
        log_level="warning",
        generate_client_file=False,
        access_log=False,
    )


if __name__ == "__main__":
    main()
