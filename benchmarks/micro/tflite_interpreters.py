"""TF Lite interpreters side by side: TensorFlow's ``tf.lite.Interpreter`` vs LiteRT's.

usage: PYTHON benchmarks/micro/tflite_interpreters.py tf|litert MODEL.tflite
(LiteRT in a virtualenv of its own: ``pip install ai-edge-litert==2.3.0``; the model takes a
``[-1, 784]`` float input, e.g. the tests' ``mlp_tflite/1/model.tflite``). Prints import time,
microseconds per call at batch 1 and 64 (one thread, after a warm-up) and peak RSS.
"""

from __future__ import annotations

import resource
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def interpreter_class(which: str) -> Any:
    if which == "litert":
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    warnings.simplefilter("ignore")
    import tensorflow as tf

    return tf.lite.Interpreter


def per_call_us(interpreter_cls: Any, content: bytes, rows: int) -> float:
    it = interpreter_cls(model_content=content, num_threads=1)
    index = it.get_input_details()[0]["index"]
    out = it.get_output_details()[0]["index"]
    it.resize_tensor_input(index, [rows, 784], strict=False)
    it.allocate_tensors()
    x = np.random.default_rng(0).random((rows, 784), dtype=np.float32)
    calls = 2000 if rows == 1 else 300
    for i in range(50 + calls):
        if i == 50:
            start = time.perf_counter()
        it.set_tensor(index, x)
        it.invoke()
        it.get_tensor(out)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    which, model = sys.argv[1], sys.argv[2]
    t0 = time.perf_counter()
    cls = interpreter_class(which)
    imported = time.perf_counter() - t0
    content = Path(model).read_bytes()
    one, batch = per_call_us(cls, content, 1), per_call_us(cls, content, 64)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{which}: import {imported:.2f} s, batch 1: {one:.1f} us/call, "
        f"batch 64: {batch:.0f} us/call, peak RSS {peak:.0f} MB"
    )


if __name__ == "__main__":
    main()
