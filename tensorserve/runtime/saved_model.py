"""Load SavedModels and run their signatures: the only place TensorFlow executes.

Two loaders, chosen per model from its MetaGraphDef:

* Every model first loads into a ``tf.compat.v1.Session`` like TF Serving's
  C++ loader (TF1 reference variables, ParseExample classify/regress, assets,
  init ops, and TF2 exports too), and each signature runs through a cached
  C++ ``MakeCallable`` handle: the cheapest entry point measured (about 3x
  less overhead than ``Session.run`` or a TF2 concrete function).
* A TF2 export whose variables the session path cannot restore falls back to
  ``tf.saved_model.load`` and its concrete signature functions.

Signature metadata always comes from the MetaGraphDef, so GetModelMetadata is
identical for both kinds.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import message, text_format
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, saved_model_pb2

from tensorserve.config.settings import RuntimeSettings
from tensorserve.errors import (
    Code,
    DataLoss,
    InvalidArgument,
    NotFound,
    ServingError,
)
from tensorserve.runtime import run_errors, tf_env
from tensorserve.runtime import signatures as sigs
from tensorserve.servable import SignatureSpec


def read_meta_graph(path: str, tags: Sequence[str]) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraphDef of ``path`` whose tag set equals ``tags``."""
    saved = _read_saved_model(path)
    wanted = set(tags)
    for meta in saved.meta_graphs:
        if set(meta.meta_info_def.tags) == wanted:
            return meta
    available = [sorted(m.meta_info_def.tags) for m in saved.meta_graphs]
    raise NotFound(
        f"Could not find meta graph def matching supplied tags: {{ {' '.join(sorted(wanted))} }}"
        f" in SavedModel {path}; available tag-sets: {available}"
    )


def _read_saved_model(path: str) -> saved_model_pb2.SavedModel:
    saved = saved_model_pb2.SavedModel()
    pb, pbtxt = os.path.join(path, "saved_model.pb"), os.path.join(path, "saved_model.pbtxt")
    try:
        if tf.io.gfile.exists(pb):
            saved.ParseFromString(tf.io.gfile.GFile(pb, "rb").read())
        elif tf.io.gfile.exists(pbtxt):
            text_format.Parse(tf.io.gfile.GFile(pbtxt, "r").read(), saved)
        else:
            raise NotFound(
                f"Could not find SavedModel .pb or .pbtxt at supplied export directory path: {path}"
            )
    except (message.DecodeError, text_format.ParseError) as exc:
        raise DataLoss(f"Could not parse SavedModel proto in {path}: {exc}") from exc
    return saved


def session_config(options: RuntimeSettings) -> config_pb2.ConfigProto:
    """The ConfigProto for TF1 sessions: the config file, then the parallelism flags."""
    config = config_pb2.ConfigProto()
    if options.session_config:
        config.ParseFromString(options.session_config)
    if options.intra_op_parallelism:
        config.intra_op_parallelism_threads = options.intra_op_parallelism
    if options.inter_op_parallelism:
        config.inter_op_parallelism_threads = options.inter_op_parallelism
    return config


def load(path: str, options: RuntimeSettings) -> SessionServable | FunctionServable:
    """Load one SavedModel version folder; raises ServingError on failure."""
    meta = read_meta_graph(path, options.tags)
    try:
        try:
            return SessionServable(path, meta, options)
        except _VariablesNotRestored:
            return FunctionServable(path, meta, options)
    except ServingError:
        raise
    except tf.errors.OpError as exc:
        raise to_serving_error(exc) from exc
    except Exception as exc:
        raise ServingError(f"Failed to load SavedModel at {path}: {exc}", Code.UNKNOWN) from exc


def to_serving_error(exc: Exception) -> ServingError:
    """Map a TensorFlow exception to a ServingError with TF's canonical code."""
    if isinstance(exc, tf.errors.OpError):
        text = exc.message.removeprefix("Graph execution error:").strip()
        return ServingError(text, Code(exc.error_code))
    if isinstance(exc, (ValueError, TypeError)):
        return InvalidArgument(str(exc))
    return ServingError(f"{type(exc).__name__}: {exc}", Code.INTERNAL)


class BaseServable:
    """What every runtime's servable shares: signatures from SignatureDefs, the served name
    for error messages, no queue of its own."""

    enforces_shapes = True
    inline_ok = True  # run() never waits on other requests (see service/dispatch.py)
    allowed_batch_sizes: tuple[int, ...] = ()  # any batch size

    def __init__(self, meta: meta_graph_pb2.MetaGraphDef, path: str = "") -> None:
        tf_env.init_devices()  # once per process: CUDA probing without its noise
        self._signatures = sigs.signature_specs(meta.signature_def, self.enforces_shapes)
        self._sig_map = sigs.signature_def_map_bytes(meta.signature_def)
        base, folder = os.path.split(os.path.normpath(path)) if path else ("", "")
        self.model = os.path.basename(base) or path
        self.version: int | None = int(folder) if folder.isdigit() else None

    def name(self, model: str, version: int) -> None:
        """The served name and version, for error messages (the loader knows them)."""
        self.model, self.version = model, version

    def _run_error(
        self, signature: str, inputs: Mapping[str, np.ndarray], exc: Exception
    ) -> ServingError:
        return run_errors.run_error(
            to_serving_error(exc),
            self.model,
            self.version,
            self._signatures.get(signature),
            inputs,
        )

    @property
    def signatures(self) -> Mapping[str, SignatureSpec]:
        return self._signatures

    def signature_def_map(self) -> bytes:
        return self._sig_map

    def schedule(
        self,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_keys: Sequence[str],
        timeout_s: float | None = None,
    ) -> None:
        """No queue of its own: callers use ``run`` (on a thread, or inline)."""
        return None


class _VariablesNotRestored(Exception):
    """The session loader left variables uninitialized (some Keras 3 exports)."""


class SessionServable(BaseServable):
    """A SavedModel in its own ``tf.compat.v1.Session``, run via C++ ``MakeCallable``.

    Like TF Serving's C++ session, a fed tensor is not checked against the
    placeholder's static shape here (``{"instances": [2.0, 3.0]}`` feeds a
    ``[-1, 1]`` placeholder, as users of half_plus_two expect).
    """

    enforces_shapes = False  # TF1 graphs; a TF2 export (object graph) enforces them

    def __init__(self, path: str, meta: meta_graph_pb2.MetaGraphDef, options: RuntimeSettings):
        self.enforces_shapes = bool(meta.object_graph_def.nodes)
        super().__init__(meta, path)
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph, config=session_config(options))
        try:
            with self._graph.as_default():
                tf.compat.v1.saved_model.loader.load(self._session, list(options.tags), path)
                if meta.object_graph_def.nodes:
                    _restore_object_variables(self._session, self._graph, meta, path)
        except BaseException:
            self._session.close()
            raise
        self._callables: dict[tuple[str, tuple[str, ...], tuple[str, ...]], Any] = {}
        self._lock = threading.Lock()

    def run(
        self,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_keys: Sequence[str],
        timeout_s: float | None = None,
    ) -> dict[str, np.ndarray]:
        feed_keys = tuple(sorted(inputs))
        fn = self._callable(signature, feed_keys, tuple(output_keys))
        try:
            values = fn(*[inputs[k] for k in feed_keys])
        except Exception as exc:
            raise self._run_error(signature, inputs, exc) from exc
        return {k: np.asarray(v) for k, v in zip(output_keys, values, strict=True)}

    def _callable(self, signature: str, feeds: tuple[str, ...], fetches: tuple[str, ...]) -> Any:
        key = (signature, feeds, fetches)
        fn = self._callables.get(key)
        if fn is None:
            spec = self._signatures[signature]
            options = config_pb2.CallableOptions()
            options.feed.extend(spec.inputs[k].tensor_name for k in feeds)
            options.fetch.extend(spec.outputs[k].tensor_name for k in fetches)
            with self._lock:
                try:
                    fn = self._session._make_callable_from_options(options)
                except Exception as exc:
                    raise to_serving_error(exc) from exc
                self._callables[key] = fn
        return fn

    def close(self) -> None:
        self._callables.clear()
        self._session.close()


def _restore_object_variables(
    session: Any, graph: Any, meta: meta_graph_pb2.MetaGraphDef, path: str
) -> None:
    """Restore TF2 variables the graph reads under their object-graph names.

    Some TF2 exports (Keras 3) restore into one set of variable handles while
    the signatures read another set named after ``SavedVariable.name``. Each
    uninitialized handle is filled from the checkpoint key of the object that
    owns it; anything left uninitialized raises ``_VariablesNotRestored``.
    """
    handles = {
        op.get_attr("shared_name").decode(): op.outputs[0]
        for op in graph.get_operations()
        if op.type == "VarHandleOp"
    }
    if not handles:
        return
    names = list(handles)
    ready = session.run([tf.raw_ops.VarIsInitializedOp(resource=handles[n]) for n in names])
    missing = {n for n, ok in zip(names, ready, strict=True) if not ok}
    if not missing:
        return
    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    assigns = []
    for name, key in _variable_keys(meta).items():
        if name in missing and reader.has_tensor(key):
            assigns.append(
                tf.raw_ops.AssignVariableOp(resource=handles[name], value=reader.get_tensor(key))
            )
            missing.discard(name)
    if missing:
        raise _VariablesNotRestored(", ".join(sorted(missing)))
    session.run(assigns)


def _variable_keys(meta: meta_graph_pb2.MetaGraphDef) -> dict[str, str]:
    """``SavedVariable.name`` -> checkpoint key, from the object graph's first paths."""
    nodes = meta.object_graph_def.nodes
    paths: dict[int, str] = {0: ""}
    queue = [0]
    while queue:
        node = queue.pop(0)
        for child in nodes[node].children:
            if child.node_id not in paths:
                parent = paths[node]
                paths[child.node_id] = f"{parent}/{child.local_name}".lstrip("/")
                queue.append(child.node_id)
    keys = {}
    for node_id, node_path in paths.items():
        node = nodes[node_id]
        if node.WhichOneof("kind") == "variable" and node.variable.name:
            keys[node.variable.name] = f"{node_path}/.ATTRIBUTES/VARIABLE_VALUE"
    return keys


class FunctionServable(BaseServable):
    """A TF2 SavedModel run through its concrete signature functions."""

    def __init__(self, path: str, meta: meta_graph_pb2.MetaGraphDef, options: RuntimeSettings):
        super().__init__(meta, path)
        self._loaded: Any = tf.saved_model.load(path, tags=list(options.tags))
        self._functions: dict[str, Any] = dict(self._loaded.signatures)

    def run(
        self,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_keys: Sequence[str],
        timeout_s: float | None = None,
    ) -> dict[str, np.ndarray]:
        fn = self._functions.get(signature)
        if fn is None:
            raise InvalidArgument(f"Signature '{signature}' cannot be executed by this model")
        try:
            result = fn(**inputs)
            return {k: np.asarray(result[k].numpy()) for k in output_keys}
        except Exception as exc:
            raise self._run_error(signature, inputs, exc) from exc

    def close(self) -> None:
        self._functions.clear()
        self._loaded = None
        gc.collect()


def configure_process(options: RuntimeSettings) -> None:
    """Apply process-wide threading settings (TF2 eager) once, before any model loads."""
    try:
        if options.intra_op_parallelism:
            tf.config.threading.set_intra_op_parallelism_threads(options.intra_op_parallelism)
        if options.inter_op_parallelism:
            tf.config.threading.set_inter_op_parallelism_threads(options.inter_op_parallelism)
    except RuntimeError:  # already initialized (e.g. several servers in one test process)
        pass
