"""``python -m tensorserve.demo``: export the demo models and print how to call them.

``export`` writes ``mlp/1``, ``half_plus_two/1``, ``models.config`` and
``monitoring.config`` (Prometheus at TF Serving's path) into ``--dir``; ``print-usage``
prints one working line per API (``make serve`` runs both, then the server). Every
printed line is run against a demo server by ``tests/integration/test_first_hour.py``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

CONFIG = """model_config_list {{
  config {{ name: "mlp" base_path: "{root}/mlp" model_platform: "tensorflow" }}
  config {{ name: "half_plus_two" base_path: "{root}/half_plus_two" model_platform: "tensorflow" }}
}}
"""
METRICS_PATH = "/monitoring/prometheus/metrics"
MONITORING = f'prometheus_config {{ enable: true path: "{METRICS_PATH}" }}\n'
GRPC_EXAMPLE = os.path.join("examples", "grpc_predict.py")


def export(folder: str) -> None:
    """Export both demo models, ``models.config`` and ``monitoring.config`` (models once)."""
    root = os.path.abspath(folder)
    from tensorserve.runtime import demo_models

    if not os.path.isdir(os.path.join(root, "mlp", "1")):
        demo_models.export_mlp(os.path.join(root, "mlp"))
    if not os.path.isdir(os.path.join(root, "half_plus_two", "1")):
        demo_models.export_half_plus_two(os.path.join(root, "half_plus_two"))
    with open(os.path.join(root, "models.config"), "w", encoding="utf-8") as fh:
        fh.write(CONFIG.format(root=root))
    with open(os.path.join(root, "monitoring.config"), "w", encoding="utf-8") as fh:
        fh.write(MONITORING)


def _python() -> str:
    """The interpreter running the demo, relative when it lives under the current folder."""
    relative = os.path.relpath(sys.executable)
    return relative if not relative.startswith("..") else sys.executable


def commands(rest_port: int, grpc_port: int) -> list[tuple[str, str]]:
    """(what it shows, shell line) for every API the README documents."""
    host = f"http://localhost:{rest_port}"
    url = f"{host}/v1/models"

    def post(body: str, path: str) -> str:
        return f"curl -s -d {shlex.quote(body)} {url}/{path}"

    grpc_line = (
        f"{shlex.quote(_python())} {GRPC_EXAMPLE} --server localhost:{grpc_port} "
        "--model half_plus_two --input x 1.0 2.0 5.0"
    )
    return [
        ("REST predict", post('{"instances": [1.0, 2.0, 5.0]}', "half_plus_two:predict")),
        (
            "REST classify",
            post(
                '{"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}',
                "half_plus_two:classify",
            ),
        ),
        (
            "REST regress",
            post(
                '{"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}, {"x": 4.0}]}',
                "half_plus_two:regress",
            ),
        ),
        ("model metadata (signatures)", f"curl -s {url}/mlp/metadata"),
        ("model status", f"curl -s {url}/half_plus_two"),
        ("all models", f"curl -s {url}"),
        ("Prometheus metrics", f"curl -s {host}{METRICS_PATH} | grep request_count"),
        ("gRPC predict (official tensorflow-serving-api stubs)", grpc_line),
        (
            "a wrong shape gets a 400 naming the input",
            post('{"instances": [[0.1, 0.2]]}', "mlp:predict"),
        ),
    ]


def usage(rest_port: int, grpc_port: int = 8500) -> str:
    """The lines ``make serve`` prints before starting the server."""
    lines = [
        "Demo models: mlp (784 -> 10 softmax) and half_plus_two "
        "(y = 0.5x + 2; predict, classify_x_to_y, regress_x_to_y).",
        f"Try, once the server logs that it is ready (REST :{rest_port}, gRPC :{grpc_port}):",
    ]
    for title, line in commands(rest_port, grpc_port):
        lines += [f"  # {title}", f"  {line}"]
    return "\n".join([*lines, ""])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tensorserve.demo")
    parser.add_argument("command", choices=["export", "print-usage"])
    parser.add_argument("--dir", default="demo_models")
    parser.add_argument("--rest_api_port", type=int, default=8501)
    parser.add_argument("--port", type=int, default=8500, help="the gRPC port")
    args = parser.parse_args(argv)
    if args.command == "export":
        export(args.dir)
    else:
        print(usage(args.rest_api_port, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
