"""KServe ``ModelServer`` serving the SavedModel through a custom ``kserve.Model`` (V1 protocol).

Runs inside KServe's own virtualenv. The ``ModelServer`` is constructed before TensorFlow loads
the model (loading first silently changes KServe's logging). Configured for its best case on this
machine: per-request latency logging and uvicorn logging off, gRPC off (only REST is driven).

usage: kserve_server.py --http_port P --model_name NAME --model_path BASE/VERSION
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_path", required=True)
    ours, rest = parser.parse_known_args()
    # kserve.model_server parses sys.argv at import time: give it only its own flags.
    sys.argv = [sys.argv[0], *rest]
    import kserve
    from kserve.model_server import args as kserve_args

    server = kserve.ModelServer()

    import tensorflow as tf

    class TFModel(kserve.Model):
        def __init__(self, name: str, path: str) -> None:
            super().__init__(name)
            self.path = path
            self.fn: Any = None
            self.keys = ("", "")

        def load(self) -> bool:
            self._loaded = tf.saved_model.load(self.path)
            self.fn = self._loaded.signatures["serving_default"]
            _, kwargs = self.fn.structured_input_signature
            self.keys = (next(iter(kwargs)), next(iter(self.fn.structured_outputs)))
            self.ready = True
            return self.ready

        async def predict(
            self, payload: dict[str, Any], headers: dict[str, str] | None = None
        ) -> dict[str, Any]:
            x = tf.constant(np.asarray(payload["instances"], dtype=np.float32))
            y = self.fn(**{self.keys[0]: x})[self.keys[1]].numpy()
            return {"predictions": y.tolist()}

    model = TFModel(kserve_args.model_name, ours.model_path)
    model.load()
    server.start([model])


if __name__ == "__main__":
    main()
