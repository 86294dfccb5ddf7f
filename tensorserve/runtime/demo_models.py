"""Builders of small SavedModels: the demo models ``make serve`` exports (tests reuse them).

* ``mlp``: the classic Keras MLP (input ``input_example`` [None, 784] float32,
  Dense(128, relu), Dense(10, softmax)), saved with ``tf.saved_model.save``.
* ``half_plus_two``: a TF1 graph, y = 0.5 x + 2, with predict (``serving_default``),
  classify (``classify_x_to_y``) and regress (``regress_x_to_y``) signatures
  over serialized ``tf.Example``s, like TF Serving's own test model.
"""

from __future__ import annotations

import os

import tensorflow as tf


def export_mlp(base_path: str, version: int = 1, seed: int = 0) -> str:
    """Export the MLP to ``base_path/version``; returns the version folder."""
    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((784,), name="input_example"),
            tf.keras.layers.Dense(128, activation="relu"),
            tf.keras.layers.Dense(10, activation="softmax"),
        ]
    )

    @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32, name="input_example")])
    def serve(input_example: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"probabilities": model(input_example)}

    module = tf.Module()
    module.model = model
    module.serve = serve
    path = os.path.join(base_path, str(version))
    tf.saved_model.save(module, path, signatures={"serving_default": serve})
    return path


def export_half_plus_two(base_path: str, version: int = 1, a: float = 0.5, b: float = 2.0) -> str:
    """Export y = a x + b as a TF1 graph with predict/classify/regress signatures."""
    path = os.path.join(base_path, str(version))
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        var_a = tf.compat.v1.Variable(a, name="a")
        var_b = tf.compat.v1.Variable(b, name="b")
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        y = tf.add(var_a * x, var_b, name="y")
        serialized = tf.compat.v1.placeholder(tf.string, [None], name="tf_example")
        features = tf.io.parse_example(
            serialized, {"x": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0])}
        )
        y_example = tf.add(var_a * features["x"], var_b, name="y_example")
        session.run(tf.compat.v1.global_variables_initializer())
        _save_tf1(session, path, x, y, serialized, y_example)
    return path


def _save_tf1(
    session: tf.compat.v1.Session,
    path: str,
    x: tf.Tensor,
    y: tf.Tensor,
    serialized: tf.Tensor,
    y_example: tf.Tensor,
) -> None:
    info = tf.compat.v1.saved_model.utils.build_tensor_info
    sig = tf.compat.v1.saved_model.signature_def_utils
    batch = tf.shape(y_example)[0]
    classes = tf.fill([batch, 1], "")
    signatures = {
        "serving_default": sig.predict_signature_def({"x": x}, {"y": y}),
        "classify_x_to_y": sig.build_signature_def(
            {"inputs": info(serialized)},
            {"scores": info(y_example), "classes": info(classes)},
            tf.compat.v1.saved_model.signature_constants.CLASSIFY_METHOD_NAME,
        ),
        "regress_x_to_y": sig.regression_signature_def(serialized, tf.reshape(y_example, [-1])),
    }
    builder = tf.compat.v1.saved_model.Builder(path)
    builder.add_meta_graph_and_variables(
        session, [tf.compat.v1.saved_model.tag_constants.SERVING], signature_def_map=signatures
    )
    builder.save()
