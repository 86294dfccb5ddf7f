"""``make fuzz SECONDS=60``: every target of ``fuzz/targets.py`` under atheris, each in a
process of its own for SECONDS, starting from the committed seeds in ``fuzz/corpus/<target>``
(new inputs it finds go to ``build/fuzz/<target>``, crashes to ``build/fuzz/crash-*``).

    python -m fuzz.run                      # every target, SECONDS each (default 60)
    python -m fuzz.run --target oip_json    # one target (atheris runs in this process)
    python -m fuzz.run --write-seeds        # rewrite fuzz/corpus from targets.seeds()
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fuzz" / "corpus"
WORK = ROOT / "build" / "fuzz"


def _fuzz_one(name: str, seconds: int) -> None:
    import atheris

    with atheris.instrument_imports(include=["tensorserve"]):
        from fuzz import targets
    target = targets.TARGETS[name]

    def one_input(data: bytes) -> None:
        targets.run_one(target, data)

    out = WORK / name
    out.mkdir(parents=True, exist_ok=True)
    args = [
        sys.argv[0], str(out), str(CORPUS / name), f"-max_total_time={seconds}",
        "-print_final_stats=1", "-rss_limit_mb=4096", f"-artifact_prefix={WORK}/crash-{name}-",
    ]  # fmt: skip
    atheris.Setup(args, one_input)
    atheris.Fuzz()


def _write_seeds() -> None:
    from fuzz import targets

    for name, inputs in targets.seeds().items():
        folder = CORPUS / name
        folder.mkdir(parents=True, exist_ok=True)
        for data in inputs:
            (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)


def _run_all(seconds: int) -> int:
    from fuzz.targets import TARGETS

    failed = 0
    print(f"{'target':<14} {'inputs run':>11} {'exec/s':>8} {'coverage':>9}  result")
    for name in TARGETS:
        proc = subprocess.run(
            [sys.executable, "-m", "fuzz.run", "--target", name, "--seconds", str(seconds)],
            cwd=ROOT, capture_output=True, text=True, check=False,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )  # fmt: skip
        log = proc.stdout + proc.stderr
        runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
        speed = re.findall(r"stat::average_exec_per_sec:\s*(\d+)", log)
        cov = re.findall(r"cov: (\d+)", log)
        result = "ok" if proc.returncode == 0 else f"CRASH (exit {proc.returncode})"
        if proc.returncode != 0:
            failed += 1
            print(log[-3000:], file=sys.stderr)
        print(f"{name:<14} {runs[-1] if runs else '?':>11} {speed[-1] if speed else '?':>8} "
              f"{cov[-1] if cov else '?':>9}  {result}")  # fmt: skip
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target")
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("SECONDS_", "60")))
    parser.add_argument("--write-seeds", action="store_true")
    args = parser.parse_args()
    if args.write_seeds:
        _write_seeds()
        return 0
    if args.target:
        _fuzz_one(args.target, args.seconds)
        return 0
    return _run_all(args.seconds)


if __name__ == "__main__":
    sys.exit(main())
