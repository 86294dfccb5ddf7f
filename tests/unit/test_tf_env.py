"""runtime/tf_env.py: start-up notices held, debug shows them, real lines kept.

The import-time behaviour needs a fresh interpreter (TensorFlow reads its C++ level once),
so those cases run ``python -c`` with a clean ``TF_CPP_*`` environment.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tensorserve.runtime import tf_env
from tests.harness import ROOT


def python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )


def test_split_noise_holds_notices_and_keeps_other_lines() -> None:
    lines = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1.2 1 cpu_feature_guard.cc:227] This TensorFlow binary is optimized ...",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild "
        "TensorFlow with the appropriate compiler flags.",
        "E0000 00:00:1.3 1 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
        "E0000 00:00:1.4 1 op_kernel.cc:9] a real problem",
        "  its continuation",
    ]
    assert tf_env.split_noise(lines) == [lines[4], lines[5]]


QUIET_IMPORT = """
import logging, os, sys
logging.basicConfig(level=logging.DEBUG, format="REC|%(levelname)s|%(name)s|%(message)s")
logging.getLogger("tensorserve").setLevel(logging.DEBUG)
from tensorserve.runtime import tf_env
tf_env.install()
import tensorflow
print("level", os.environ.get("TF_CPP_MIN_LOG_LEVEL"))
tf_env.init_devices()
"""


def test_import_is_quiet_and_notices_become_debug_records() -> None:
    done = python(QUIET_IMPORT)
    assert "level 2" in done.stdout
    raw = [line for line in done.stderr.splitlines() if not line.startswith("REC|")]
    # The import ran at the default level: its notices come back as DEBUG records ...
    assert [line for line in raw if "absl::InitializeLog" in line] == []
    held = [line for line in done.stderr.splitlines() if line.startswith("REC|DEBUG|")]
    assert any("absl::InitializeLog" in line for line in held), done.stderr
    # (device discovery then follows the debug level: CUDA probing shown as printed)


def test_debug_before_import_lowers_tensorflow_cpp_level() -> None:
    code = (
        "import os\n"
        "from tensorserve.runtime import tf_env\n"
        "tf_env.configure('debug')\n"
        "tf_env.install()\n"
        "import tensorflow\n"
        "print('level', os.environ['TF_CPP_MIN_LOG_LEVEL'])\n"
    )
    done = python(code)
    assert "level 0" in done.stdout
    assert "absl::InitializeLog" in done.stderr  # shown as TensorFlow prints it


def test_users_tf_cpp_level_wins() -> None:
    code = (
        "import os\nfrom tensorserve.runtime import tf_env\ntf_env.install()\n"
        "import tensorflow\nprint('level', os.environ['TF_CPP_MIN_LOG_LEVEL'])\n"
    )
    assert "level 3" in python(code, TF_CPP_MIN_LOG_LEVEL="3").stdout
