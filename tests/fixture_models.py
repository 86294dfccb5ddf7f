"""Fixture SavedModels built by the tests themselves (run in a subprocess once per session).

``python -m tests.fixture_models OUT_DIR`` writes:

* ``half_plus_two/1`` and ``/2``: TF1 graph, y = a x + b (v1: 0.5x+2, v2: 0.5x+3) with
  predict, classify (``classify_x_to_y``) and regress (``regress_x_to_y``) signatures.
* ``mlp/1``: the Keras MLP (``input_example`` [None, 784] -> ``probabilities`` [None, 10]).
* ``strings/1``: TF2, string input ``text`` -> ``upper`` (string), ``length`` (int32),
  ``raw_bytes`` (string, the input reversed, an ``_bytes`` output).
* ``multi/1``: TF2, inputs ``a`` float [None, 2] and ``b`` int64 [None] -> ``sum`` float
  [None], ``scaled`` float [None, 2] (a * b), ``total`` float scalar.
* ``all_types/1``: TF2 identity model with one input/output per dtype (``f32``, ``f64``,
  ``i8``, ``i16``, ``i32``, ``i64``, ``u8``, ``u16``, ``u32``, ``u64``, ``b``, ``s``), each [None].
* ``broken/1``: a version folder whose saved_model.pb is garbage.
* ``mlp_tflite/1/model.tflite``: ``mlp/1`` converted by ``tf.lite.TFLiteConverter`` (no
  SavedModel beside it); ``mlp_both/1``: the SavedModel and its conversion side by side.
"""

from __future__ import annotations

import os
import sys

import tensorflow as tf

from tensorserve.runtime import demo_models

TYPES = {
    "f32": tf.float32,
    "f64": tf.float64,
    "i8": tf.int8,
    "i16": tf.int16,
    "i32": tf.int32,
    "i64": tf.int64,
    "u8": tf.uint8,
    "u16": tf.uint16,
    "u32": tf.uint32,
    "u64": tf.uint64,
    "b": tf.bool,
    "s": tf.string,
}


def strings_model(path: str) -> None:
    spec = tf.TensorSpec([None], tf.string, name="text")

    @tf.function(input_signature=[spec])
    def serve(text: tf.Tensor) -> dict[str, tf.Tensor]:
        return {
            "upper": tf.strings.upper(text),
            "length": tf.strings.length(text),
            "raw_bytes": tf.strings.reduce_join(
                tf.reverse(tf.strings.bytes_split(text).to_tensor(""), [1]), axis=1
            ),
        }

    module = tf.Module()
    module.serve = serve
    tf.saved_model.save(module, path, signatures={"serving_default": serve})


def multi_model(path: str) -> None:
    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 2], tf.float32, name="a"),
            tf.TensorSpec([None], tf.int64, name="b"),
        ]
    )
    def serve(a: tf.Tensor, b: tf.Tensor) -> dict[str, tf.Tensor]:
        scaled = a * tf.cast(tf.expand_dims(b, 1), tf.float32)
        return {"sum": tf.reduce_sum(a, axis=1), "scaled": scaled, "total": tf.reduce_sum(a)}

    module = tf.Module()
    module.serve = serve
    tf.saved_model.save(module, path, signatures={"serving_default": serve})


def all_types_model(path: str) -> None:
    specs = [tf.TensorSpec([None], dtype, name=name) for name, dtype in TYPES.items()]

    @tf.function(input_signature=specs)
    def serve(*args: tf.Tensor) -> dict[str, tf.Tensor]:
        return {name: tf.identity(arg) for name, arg in zip(TYPES, args, strict=True)}

    module = tf.Module()
    module.serve = serve
    tf.saved_model.save(module, path, signatures={"serving_default": serve})


def halves_model(path: str) -> None:
    """Echoes float16 and bfloat16 (the datatypes OIP carries only as raw bytes on gRPC)."""
    specs = [tf.TensorSpec([None], tf.float16, name="f16"),
             tf.TensorSpec([None], tf.bfloat16, name="bf16")]  # fmt: skip

    @tf.function(input_signature=specs)
    def serve(f16: tf.Tensor, bf16: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"f16": tf.identity(f16), "bf16": tf.identity(bf16)}

    module = tf.Module()
    module.serve = serve
    tf.saved_model.save(module, path, signatures={"serving_default": serve})


def tflite_model(saved_model: str, out: str) -> None:
    """``saved_model`` converted to TF Lite: alone in mlp_tflite/1, beside it in mlp_both/1."""
    import shutil

    # from_concrete_functions: from_saved_model loses this Keras 3 export's weights (NaNs)
    loaded = tf.saved_model.load(saved_model)
    serve = loaded.signatures["serving_default"]
    content = tf.lite.TFLiteConverter.from_concrete_functions([serve], loaded).convert()
    alone = os.path.join(out, "mlp_tflite", "1")
    os.makedirs(alone, exist_ok=True)
    with open(os.path.join(alone, "model.tflite"), "wb") as fh:
        fh.write(content)
    both = os.path.join(out, "mlp_both", "1")
    shutil.copytree(saved_model, both)
    with open(os.path.join(both, "model.tflite"), "wb") as fh:
        fh.write(content)


def build(out: str) -> None:
    demo_models.export_half_plus_two(os.path.join(out, "half_plus_two"), 1, 0.5, 2.0)
    demo_models.export_half_plus_two(os.path.join(out, "half_plus_two"), 2, 0.5, 3.0)
    demo_models.export_mlp(os.path.join(out, "mlp"))
    strings_model(os.path.join(out, "strings", "1"))
    multi_model(os.path.join(out, "multi", "1"))
    all_types_model(os.path.join(out, "all_types", "1"))
    halves_model(os.path.join(out, "halves", "1"))
    tflite_model(os.path.join(out, "mlp", "1"), out)
    broken = os.path.join(out, "broken", "1")
    os.makedirs(broken, exist_ok=True)
    with open(os.path.join(broken, "saved_model.pb"), "wb") as fh:
        fh.write(b"this is not a SavedModel")


if __name__ == "__main__":
    build(sys.argv[1])
