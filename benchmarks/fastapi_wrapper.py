"""The plain FastAPI + uvicorn wrapper a user would write around a SavedModel (the baseline).

An ``async def`` handler (the faster choice on this machine: a plain ``def`` handler runs in the
thread pool and costs 12-30%), FastAPI's default JSON request/response handling, the model called
on the event loop, ``.tolist()`` on the way out. uvicorn[standard] (uvloop + httptools), one
worker, access log off (TF Serving logs no access lines either).

To use N cores a user runs the same app under uvicorn's own multi-process mode (a supervisor and
N worker processes sharing the listening socket), each worker building the app, so each holds its
own copy of the model:

    BENCH_MODEL_NAME=NAME BENCH_MODEL_PATH=BASE/VERSION uvicorn fastapi_wrapper:create_app \
        --factory --workers N --app-dir benchmarks --no-access-log

usage: fastapi_wrapper.py --port P --model_name NAME --model_path BASE/VERSION
"""

from __future__ import annotations

import argparse
import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
import uvicorn
from fastapi import FastAPI, HTTPException, Request


def build_app(model_name: str, model_path: str) -> FastAPI:
    loaded = tf.saved_model.load(model_path)
    fn = loaded.signatures["serving_default"]
    _, kwargs = fn.structured_input_signature
    input_key = next(iter(kwargs))
    output_key = next(iter(fn.structured_outputs))
    app = FastAPI()

    @app.post("/v1/models/{name}:predict")
    async def predict(name: str, request: Request) -> dict[str, Any]:
        if name != model_name:
            raise HTTPException(status_code=404, detail=f"unknown model {name}")
        body = await request.json()
        x = tf.constant(np.asarray(body["instances"], dtype=np.float32))
        y = fn(**{input_key: x})[output_key].numpy()
        return {"predictions": y.tolist()}

    app.state.keepalive = loaded
    return app


def create_app() -> FastAPI:
    """App factory for ``uvicorn --workers N``: each worker process loads its own model."""
    return build_app(os.environ["BENCH_MODEL_NAME"], os.environ["BENCH_MODEL_PATH"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model_name", required=True)
    parser.add_argument("--model_path", required=True)
    args = parser.parse_args()
    app = build_app(args.model_name, args.model_path)
    uvicorn.run(app, host="127.0.0.1", port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
