"""KServe ``ModelServer`` serving the SavedModel through a custom ``kserve.Model`` (V1 protocol).

The same model also answers KServe's Open Inference Protocol (V2) REST path,
``POST /v2/models/{name}/infer``: KServe hands ``predict`` an ``InferRequest`` there, and the model
answers an ``InferResponse`` whose output carries the numpy result (JSON ``data`` on the wire).

Runs inside KServe's own virtualenv. The ``ModelServer`` is constructed before TensorFlow loads
the model (loading first silently changes KServe's logging). Configured for its best case on this
machine: per-request latency logging and uvicorn logging off, gRPC off (only REST is driven).

``--workers N`` (KServe's own flag, N > 1): ``ModelServer.start`` binds the port and spawns N REST
worker processes (``RESTServerMultiProcess``, multiprocessing "spawn"), each receiving the
pickled data plane with its model registry. A loaded TF SavedModel does not pickle, so the model
drops its TF objects when pickled and loads the SavedModel again when unpickled: every worker
holds its own copy (and the parent process keeps the one it loaded to register the model ready).
The reload runs on a thread, and the first predict waits for it: unpickling happens before the
worker starts answering the parent's liveness pings, and a load longer than their 5 s timeout
gets the worker killed and respawned, forever.

usage: kserve_server.py --http_port P --model_name NAME --model_path BASE/VERSION [--workers N]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

# kserve.model_server parses sys.argv at import time: give it only its own flags. (A spawned
# worker re-imports this file with the parent's already-stripped argv.)
_parser = argparse.ArgumentParser()
_parser.add_argument("--model_path", default="")
_ours, _rest = _parser.parse_known_args()
sys.argv = [sys.argv[0], *_rest]

import kserve  # noqa: E402
from kserve import InferOutput, InferRequest, InferResponse  # noqa: E402


class TFModel(kserve.Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.fn: Any = None
        self.keys = ("", "")

    def load(self) -> bool:
        import tensorflow as tf

        self._tf = tf
        self._loaded = tf.saved_model.load(self.path)
        self.fn = self._loaded.signatures["serving_default"]
        _, kwargs = self.fn.structured_input_signature
        self.keys = (next(iter(kwargs)), next(iter(self.fn.structured_outputs)))
        self.ready = True
        return self.ready

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_tf", "_loaded", "fn", "_reloaded"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.fn = None
        self._reloaded = threading.Event()
        threading.Thread(target=self._reload, daemon=True).start()

    def _reload(self) -> None:
        self.load()
        self._reloaded.set()

    async def predict(
        self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
    ) -> dict[str, Any] | InferResponse:
        if self.fn is None:
            self._reloaded.wait()
        if isinstance(payload, InferRequest):  # the V2 path
            x = self._tf.constant(payload.inputs[0].as_numpy().astype(np.float32, copy=False))
            y = self.fn(**{self.keys[0]: x})[self.keys[1]].numpy()
            out = InferOutput(self.keys[1], list(y.shape), "FP32")
            out.set_data_from_numpy(y, binary_data=False)
            return InferResponse(payload.id or "", self.name, infer_outputs=[out])
        x = self._tf.constant(np.asarray(payload["instances"], dtype=np.float32))
        y = self.fn(**{self.keys[0]: x})[self.keys[1]].numpy()
        return {"predictions": y.tolist()}


def main() -> None:
    from kserve.model_server import args as kserve_args

    server = kserve.ModelServer()
    model = TFModel(kserve_args.model_name, _ours.model_path)
    model.load()
    server.start([model])


if __name__ == "__main__":
    main()
