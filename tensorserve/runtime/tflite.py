"""TF Lite models (``--prefer_tflite_model``): ``model.tflite`` in a version folder.

The interpreter is TensorFlow's own ``tf.lite.Interpreter``: already installed, and as fast
or faster per call than LiteRT's (BENCHMARKS.md, TF Lite section). One interpreter runs one
call at a time, so each servable holds a pool of them (``--num_tflite_pools`` times
``--num_tflite_interpreters_per_pool``) and a call takes whichever is free.

Signatures, as TF Serving's ``TfLiteSession``: the SignatureDefs stored in the model's
``signature_defs_metadata`` (a flexbuffer map of serialized SignatureDefs) when present;
else, beyond TF Serving, the converter's own signatures (a TF2 ``TFLiteConverter`` keeps the
SavedModel's signature and input names, so clients call the same names as before the
conversion; TF Serving would name them after tensors like ``serving_default_x:0``); else one
``serving_default`` (method ``tensorflow/serving/predict``) whose keys are the interpreter's
input and output tensor names cut at the first ``:``. A tensor is fed as sent,
resized to the request's shape when it differs (so any batch size runs), as TF Serving does.
"""

from __future__ import annotations

import logging
import os
import queue
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from tensorserve import dtypes
from tensorserve.errors import Code, DeadlineExceeded, InvalidArgument, ServingError
from tensorserve.runtime import run_errors
from tensorserve.runtime.saved_model import BaseServable
from tensorserve.servable import DEFAULT_SIGNATURE

log = logging.getLogger(__name__)
MODEL_FILE = "model.tflite"
PREDICT_METHOD = "tensorflow/serving/predict"
_SIGNATURE_METADATA = b"signature_defs_metadata"


def model_file(path: str) -> str | None:
    """``path/model.tflite`` when the version folder holds one."""
    import tensorflow as tf

    candidate = os.path.join(path, MODEL_FILE)
    return candidate if tf.io.gfile.exists(candidate) else None


class TfLiteServable(BaseServable):
    """A Servable (``servable.py``) over a pool of TF Lite interpreters."""

    enforces_shapes = False  # fed as sent and resized, as TF Serving's TfLiteSession

    def __init__(self, path: str, interpreters: int) -> None:
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "rb") as handle:
            content = handle.read()
        self._pool: queue.SimpleQueue[Any] = queue.SimpleQueue()
        try:
            first = _interpreter(content)
        except (ValueError, RuntimeError) as exc:
            raise ServingError(
                f"Could not load TF Lite model {path}: {exc}", Code.INVALID_ARGUMENT
            ) from exc
        self._pool.put(first)
        for _ in range(max(1, interpreters) - 1):
            self._pool.put(_interpreter(content))
        self._inputs = _by_name(first.get_input_details())
        self._outputs = _by_name(first.get_output_details())
        defs = (
            stored_signature_defs(content)
            or runner_signature_defs(first)
            or generated_signature_def(first)
        )
        self._check_names(defs, path)
        meta = meta_graph_pb2.MetaGraphDef()
        for key, sig in defs.items():
            meta.signature_def[key].CopyFrom(sig)
        super().__init__(meta, os.path.dirname(path))

    @property
    def inline_ok(self) -> bool:  # type: ignore[override]
        """A fast call may run on the event loop (``service/dispatch.py``) only while an
        interpreter is free; with none free it goes to the compute pool, where ``run`` waits
        for one. (A thread may take the last one between this check and ``run``: the loop
        then waits for that one call, the cost of any inline call.)"""
        return not self._pool.empty()

    def run(
        self,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_keys: Sequence[str],
        timeout_s: float | None = None,
    ) -> dict[str, np.ndarray]:
        spec = self._signatures[signature]
        try:
            interpreter = self._pool.get(timeout=None if timeout_s is None else max(timeout_s, 0))
        except queue.Empty:
            raise DeadlineExceeded(
                f"Deadline Exceeded: no TF Lite interpreter of {self.model} became free "
                f"within {timeout_s:g} s (--num_tflite_pools x "
                "--num_tflite_interpreters_per_pool interpreters run at once)"
            ) from None
        try:
            feeds = {_find(self._inputs, spec.inputs[k].tensor_name): v for k, v in inputs.items()}
            _feed(interpreter, feeds)
            interpreter.invoke()
            return {
                key: np.array(
                    interpreter.get_tensor(_find(self._outputs, spec.outputs[key].tensor_name))
                )
                for key in output_keys
            }
        except (ValueError, RuntimeError) as exc:
            error = InvalidArgument(f"TF Lite interpreter: {exc}")
            raise run_errors.run_error(error, self.model, self.version, spec, inputs) from exc
        finally:
            self._pool.put(interpreter)

    def close(self) -> None:
        while not self._pool.empty():
            self._pool.get()

    def _check_names(self, defs: Mapping[str, meta_graph_pb2.SignatureDef], path: str) -> None:
        for key, sig in defs.items():
            for kind, infos, known in (
                ("input", sig.inputs, self._inputs),
                ("output", sig.outputs, self._outputs),
            ):
                for alias, info in infos.items():
                    if info.name not in known and _legacy(info.name) not in known:
                        raise InvalidArgument(
                            f"Signature {kind} {alias} of '{key}' in {path} references an unknown "
                            f"tensor: Unknown tensor '{info.name}'. The model's {kind}s: "
                            f"{', '.join(sorted(known))}"
                        )


def _interpreter(content: bytes) -> Any:
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # tf.lite.Interpreter's deprecation note
        interpreter = tf.lite.Interpreter(model_content=content, num_threads=1)
    interpreter.allocate_tensors()
    return interpreter


def _feed(interpreter: Any, values: Mapping[int, np.ndarray]) -> None:
    current = {d["index"]: tuple(d["shape"]) for d in interpreter.get_input_details()}
    resized = False
    for index, value in values.items():
        if current.get(index) != value.shape:
            interpreter.resize_tensor_input(index, list(value.shape), strict=False)
            resized = True
    if resized:
        interpreter.allocate_tensors()
    for index, value in values.items():
        interpreter.set_tensor(index, value)


def _by_name(details: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Tensor index by name, and by the name cut at ``:`` (how SignatureDefs refer to it)."""
    table: dict[str, int] = {}
    for d in details:
        table[_legacy(d["name"])] = d["index"]
    for d in details:
        table[d["name"]] = d["index"]
    return table


def _find(table: Mapping[str, int], tensor_name: str) -> int:
    found = table.get(tensor_name)
    return found if found is not None else table[_legacy(tensor_name)]


def _legacy(tensor_name: str) -> str:
    """TF Serving's ``TfToTfLiteLegacyTensorName``: ``x:0`` -> ``x``."""
    return tensor_name.split(":", 1)[0]


def stored_signature_defs(content: bytes) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDefs in the model's ``signature_defs_metadata``; {} when there are none."""
    from flatbuffers import flexbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(content, 0)
    for i in range(model.MetadataLength()):
        metadata = model.Metadata(i)
        if metadata.Name() == _SIGNATURE_METADATA:
            data = model.Buffers(metadata.Buffer()).DataAsNumpy().tobytes()
            table = flexbuffers.GetRoot(data).AsMap  # signature key -> serialized SignatureDef
            return {
                key.AsKey: meta_graph_pb2.SignatureDef.FromString(
                    bytes(value.AsBlob if value.IsBlob else value.AsStringBytes)
                )
                for key, value in zip(table.Keys, table.Values, strict=True)
            }
    return {}


def runner_signature_defs(interpreter: Any) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The converter's own signatures (``get_signature_list``; a TF2 ``TFLiteConverter``
    writes them), keyed by their input and output names: what the SavedModel they came from
    called them. TF Serving ignores these and names the tensors instead; see module doc."""
    defs = {}
    for key in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(key)
        sig = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
        for details, infos in (
            (runner.get_input_details(), sig.inputs),
            (runner.get_output_details(), sig.outputs),
        ):
            for alias, d in details.items():
                _describe(infos[alias], d)
        defs[key] = sig
    return defs


def generated_signature_def(interpreter: Any) -> dict[str, meta_graph_pb2.SignatureDef]:
    """TF Serving's signature for a model without any: ``serving_default``, keys = tensor
    names cut at the first ``:``, dtypes and shapes from the interpreter."""
    log.warning("No signature def found in TFLite model. Generating one.")
    sig = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
    for details, infos in (
        (interpreter.get_input_details(), sig.inputs),
        (interpreter.get_output_details(), sig.outputs),
    ):
        for d in details:
            _describe(infos[_legacy(d["name"])], d)
    return {DEFAULT_SIGNATURE: sig}


def _describe(info: meta_graph_pb2.TensorInfo, details: Mapping[str, Any]) -> None:
    """A TensorInfo from an interpreter's tensor details (-1 where the size may vary)."""
    info.name = details["name"]
    info.dtype = dtypes.from_numpy(np.dtype(details["dtype"]))
    signature = details.get("shape_signature")
    dims = signature if signature is not None and len(signature) else details["shape"]
    info.tensor_shape.CopyFrom(
        tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(n)) for n in dims]
        )
    )
