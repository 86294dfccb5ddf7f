"""A TF1 graph with a fixed dimension, for the signature-check tests.

``python -m tests.signature_models OUT_DIR`` writes ``tf1_matmul/1``: x float [-1, 3]
-> y = x @ W (W is [3, 2]). A TF1 session feeds tensors as sent, so a [1, 6] tensor
(6 values, a multiple of 3) reaches TensorFlow and fails in MatMul.
"""

from __future__ import annotations

import os
import sys

import tensorflow as tf


def tf1_matmul(path: str) -> None:
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        w = tf.constant([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], name="w")
        y = tf.matmul(x, w, name="y")
        signature = tf.compat.v1.saved_model.signature_def_utils.predict_signature_def(
            {"x": x}, {"y": y}
        )
        builder = tf.compat.v1.saved_model.Builder(path)
        builder.add_meta_graph_and_variables(
            session,
            [tf.compat.v1.saved_model.tag_constants.SERVING],
            signature_def_map={"serving_default": signature},
        )
        builder.save()


if __name__ == "__main__":
    tf1_matmul(os.path.join(sys.argv[1], "tf1_matmul", "1"))
