"""A custom Seldon MLServer runtime serving a TF SavedModel (Open Inference Protocol / V2).

Runs inside MLServer's own virtualenv (``mlserver start <folder>``); ``benchmarks/run.py`` writes
the folder's ``settings.json`` (``parallel_workers: 0``, the faster setting for a light model on
this machine; debug logging and the metrics server off) and ``model-settings.json`` pointing
``implementation`` at ``mlserver_runtime.TFRuntime`` and ``parameters.uri`` at the version dir.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class TFRuntime(MLModel):
    async def load(self) -> bool:
        uri = self.settings.parameters.uri
        self._loaded = tf.saved_model.load(uri)
        self._fn: Any = self._loaded.signatures["serving_default"]
        _, kwargs = self._fn.structured_input_signature
        self._input_key = next(iter(kwargs))
        self._output_key = next(iter(self._fn.structured_outputs))
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        y = self._fn(**{self._input_key: tf.constant(x)})[self._output_key].numpy()
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output(name=self._output_key, payload=y)],
        )
