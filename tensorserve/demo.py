"""``python -m tensorserve.demo``: export the demo models and print how to call them."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

CONFIG = """model_config_list {{
  config {{ name: "mlp" base_path: "{root}/mlp" model_platform: "tensorflow" }}
  config {{ name: "half_plus_two" base_path: "{root}/half_plus_two" model_platform: "tensorflow" }}
}}
"""


def export(folder: str) -> None:
    """Export both demo models and ``models.config`` unless they already exist."""
    root = os.path.abspath(folder)
    from tensorserve.runtime import demo_models

    if not os.path.isdir(os.path.join(root, "mlp", "1")):
        demo_models.export_mlp(os.path.join(root, "mlp"))
    if not os.path.isdir(os.path.join(root, "half_plus_two", "1")):
        demo_models.export_half_plus_two(os.path.join(root, "half_plus_two"))
    with open(os.path.join(root, "models.config"), "w", encoding="utf-8") as fh:
        fh.write(CONFIG.format(root=root))


def usage(rest_port: int) -> str:
    """Curl lines that work against the demo models."""
    url = f"http://localhost:{rest_port}/v1/models"
    return "\n".join(
        [
            "Demo models: mlp (784 -> 10 softmax) and half_plus_two (predict/classify/regress).",
            "Try, once the server says it is ready:",
            f"  curl -s -d '{{\"instances\": [1.0, 2.0, 5.0]}}' {url}/half_plus_two:predict",
            f'  curl -s -d \'{{"signature_name": "classify_x_to_y", "examples": '
            f'[{{"x": 2.0}}]}}\' {url}/half_plus_two:classify',
            f"  curl -s {url}/mlp/metadata",
            f"  curl -s {url}",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tensorserve.demo")
    parser.add_argument("command", choices=["export", "print-usage"])
    parser.add_argument("--dir", default="demo_models")
    parser.add_argument("--rest_api_port", type=int, default=8501)
    args = parser.parse_args(argv)
    if args.command == "export":
        export(args.dir)
    else:
        print(usage(args.rest_api_port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
