"""The deploy tier: the container image, Helm chart and KServe runtime, run for real.

Collected only with ``TENSORSERVE_DEPLOY_TESTS=1`` (``make test-deploy`` sets it, after
``tests/deploy/prepare.sh`` installed podman, the pinned tools, helm, the wheels and a
debootstrap base image), so ``make test`` stays fast. The image is built once per session
(podman's layer cache makes a rebuild of unchanged sources quick) unless
``TENSORSERVE_IMAGE`` names one that exists already.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy import support

if os.environ.get("TENSORSERVE_DEPLOY_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]

BASE_IMAGE = os.environ.get("DEPLOY_BASE_IMAGE", "localhost/tensorserve-base:bookworm")
TEST_IMAGE = "localhost/tensorserve:test"


def _podman_problem() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (tests/deploy/prepare.sh installs it with apt as root)"
    proc = support.podman("info", check=False, timeout=60)
    if proc.returncode != 0:
        return f"podman cannot run here: {proc.stderr.strip()[-500:]}"
    return None


@pytest.fixture(scope="session")
def podman_ok() -> None:
    problem = _podman_problem()
    if problem:
        pytest.skip(problem)
    support.renumber_locks()


@pytest.fixture(scope="session")
def image(podman_ok: None) -> str:
    """The project's image, built from the working tree with the offline base and wheels."""
    given = os.environ.get("TENSORSERVE_IMAGE")
    if given and support.podman("image", "exists", given, check=False).returncode == 0:
        return given
    if support.podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        pytest.fail(f"base image {BASE_IMAGE} missing: run tests/deploy/prepare.sh first")
    wheels = support.REPO / "build" / "wheels"
    flags = f"-v {wheels}:/wheels:ro --build-arg PIP_EXTRA_ARGS='--no-index --find-links=/wheels'"
    support.BUILD.mkdir(parents=True, exist_ok=True)
    log = support.BUILD / "image-build.log"
    start = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.run(
            [
                "nice", "-n", "10", "make", "--no-print-directory", "image",
                "CONTAINER_ENGINE=podman", f"IMAGE={TEST_IMAGE}",
                f"BASE_IMAGE={BASE_IMAGE}", f"IMAGE_BUILD_FLAGS={flags}",
            ],
            cwd=support.REPO, stdout=fh, stderr=subprocess.STDOUT,
            env=support.podman_env(), check=False, timeout=1800,
        )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"make image failed ({proc.returncode}):\n{log.read_text()[-4000:]}")
    support.record("image_build_seconds", round(time.monotonic() - start, 1))
    size = json.loads(support.podman("image", "inspect", TEST_IMAGE).stdout)[0]["Size"]
    support.record("image_size_mb", round(size / 1e6))
    return TEST_IMAGE


@pytest.fixture(scope="session")
def model_versions() -> Path:
    """half_plus_two versions 1 (y = 0.5x + 2) and 2 (y = 0.5x + 3), exported once with the
    same code as tests/fixture_models.py, in a folder the container's uid 1000 can read."""
    out = support.world_readable_dir("models")
    code = (
        "import sys; from tests.fixture_models import demo_models as d; "
        "d.export_half_plus_two(sys.argv[1], 1, 0.5, 2.0); "
        "d.export_half_plus_two(sys.argv[1], 2, 0.5, 3.0)"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(out / "half_plus_two")],
        cwd=support.REPO, check=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    support.make_readable(out)
    return out / "half_plus_two"


@pytest.fixture
def model_root(model_versions: Path) -> Iterator[Path]:
    """A fresh /models-style folder holding ``half_plus_two/1`` only."""
    root = support.world_readable_dir("root")
    (root / "half_plus_two").mkdir()
    shutil.copytree(model_versions / "1", root / "half_plus_two" / "1")
    support.make_readable(root)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def containers() -> Iterator[list[support.Container]]:
    """Containers a test started; removed afterwards whatever happened."""
    started: list[support.Container] = []
    yield started
    for c in started:
        c.remove()


def pytest_sessionstart(session: pytest.Session) -> None:
    support.MEASUREMENTS.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if support.MEASUREMENTS.exists():
        terminalreporter.section("deploy measurements")
        for key, value in json.loads(support.MEASUREMENTS.read_text()).items():
            terminalreporter.write_line(f"{key}: {value}")
