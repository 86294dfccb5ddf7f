"""The image behaves as tensorflow/serving: conventions, the seed's `docker run`, new
versions, config polling through a ConfigMap-style mount, read-only root, SIGTERM."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.deploy import support

V1 = [2.5, 3.0, 4.5]  # half_plus_two version 1 on [1, 2, 5]
V2 = [3.5, 4.0, 5.5]  # version 2
SEED_CONFIG = """model_config_list {
  config {
    name: "half_plus_two"
    base_path: "/models/half_plus_two"
    model_platform: "tensorflow"
  }
}
"""


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    proc = subprocess.run(
        [hadolint, str(support.REPO / "Dockerfile")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_image_follows_tf_serving_conventions(image: str) -> None:
    inspect: dict[str, Any] = json.loads(support.podman("image", "inspect", image).stdout)[0]
    config = inspect["Config"]
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["MODEL_NAME"] == "model" and env["MODEL_BASE_PATH"] == "/models"
    assert set(config["ExposedPorts"]) == {"8500/tcp", "8501/tcp"}
    assert config["User"] not in ("", "0", "root")
    assert config["Entrypoint"] == ["/usr/bin/tf_serving_entrypoint.sh"]
    assert "healthcheck.py" in " ".join(inspect["Healthcheck"]["Test"])
    out = support.podman(
        "run", "--rm", "--entrypoint", "/usr/bin/tensorflow_model_server", image, "--version"
    ).stdout
    assert "tensorserve" in out.lower() or "tensorflow" in out.lower(), out
    # No build tools or caches in the final image.
    probe = support.podman(
        "run", "--rm", "--entrypoint", "sh", image, "-c",
        "command -v gcc pip pip3 /opt/tensorserve/bin/pip; ls /root/.cache 2>/dev/null; "
        "ls /var/lib/apt/lists | grep -v lock; true",
    ).stdout  # fmt: skip
    assert probe.strip() == "", probe


def test_seed_docker_run_serves_new_versions_and_stops_on_sigterm(
    image: str, model_root: Path, model_versions: Path, containers: list[Any]
) -> None:
    """docker run -p 8501:8501 -v ...:/models -v .../model_config.config:/model_config.config
    tensorflow/serving --model_config_file=/model_config.config
    --model_config_file_poll_wait_seconds=60, with tensorserve's image."""
    config = model_root.parent / f"{model_root.name}.config"
    config.write_text(SEED_CONFIG)
    config.chmod(0o644)
    start = time.monotonic()
    c = support.run_container(
        image,
        ["--model_config_file=/model_config.config", "--model_config_file_poll_wait_seconds=60"],
        options=[
            "--volume", f"{model_root}:/models",
            "--volume", f"{config}:/model_config.config:ro",
        ],
    )  # fmt: skip
    containers.append(c)
    ready = support.wait_ready(c, 8501)
    support.record("start_to_ready_seconds", round(time.monotonic() - start, 1))
    support.record("start_to_ready_seconds_after_run", round(ready, 1))
    rest = c.url(8501)
    assert support.rest_predict(rest, "half_plus_two", [1.0, 2.0, 5.0]) == V1
    assert support.grpc_predict(c.host_port(8500), "half_plus_two", [1.0, 2.0, 5.0]) == V1
    assert support.podman("healthcheck", "run", c.cid, check=False).returncode == 0
    # PID 1 is the server itself (the entrypoint exec'd it), so SIGTERM reaches it.
    cmdline = support.podman("exec", c.cid, "cat", "/proc/1/cmdline").stdout
    assert "tensorflow_model_server" in cmdline and "--model_config_file" in cmdline

    support.copy_version(model_versions / "2", model_root / "half_plus_two", 2)
    support.wait_for(
        lambda: support.rest_predict(rest, "half_plus_two", [1.0, 2.0, 5.0]) == V2,
        60, "version 2 to be served", c,
    )  # fmt: skip

    stop_start = time.monotonic()
    support.podman("kill", "--signal", "TERM", c.cid)
    code = support.podman("wait", c.cid, timeout=60).stdout.strip()
    took = time.monotonic() - stop_start
    support.record("sigterm_to_exit_seconds", round(took, 1))
    assert code == "0", c.logs()
    assert took < 30, f"took {took:.1f}s, past the 30 s grace"
    assert "Shutdown complete" in c.logs() or "shutdown" in c.logs().lower()


def _configmap_dir(root: Path, content: str, generation: int) -> None:
    """Lays the files out as the kubelet does for a ConfigMap volume and swaps them the same
    way on an update: ``..data`` -> ``..<generation>``, ``models.config`` -> ``..data/...``."""
    gen = root / f"..{generation}"
    gen.mkdir()
    (gen / "models.config").write_text(content)
    support.make_readable(gen)
    tmp_link = root / "..data_tmp"
    tmp_link.symlink_to(gen.name)
    tmp_link.rename(root / "..data")
    if not (root / "models.config").is_symlink():
        (root / "models.config").symlink_to("..data/models.config")


def test_env_defaults_read_only_root_and_config_polling(
    image: str, model_root: Path, containers: list[Any]
) -> None:
    # TF Serving's plainest form: MODEL_NAME picks /models/$MODEL_NAME.
    c = support.run_container(
        image,
        options=[
            "--env", "MODEL_NAME=half_plus_two",
            "--volume", f"{model_root}:/models:ro",
            "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=64m",
        ],
    )  # fmt: skip
    containers.append(c)
    support.wait_ready(c, 8501)
    assert support.rest_predict(c.url(8501), "half_plus_two", [1.0, 2.0, 5.0]) == V1
    c.remove()

    # The chart's ConfigMap mount: an update reaches the running server by its own polling.
    config_dir = support.world_readable_dir("configmap")
    _configmap_dir(config_dir, SEED_CONFIG, 1)
    c = support.run_container(
        image,
        ["--model_config_file=/config/models.config", "--model_config_file_poll_wait_seconds=1"],
        options=[
            "--volume", f"{model_root}:/models:ro",
            "--volume", f"{config_dir}:/config:ro",
            "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=64m",
        ],
    )  # fmt: skip
    containers.append(c)
    support.wait_ready(c, 8501)
    rest = c.url(8501)
    assert httpx.get(f"{rest}/v1/models/second", timeout=5).status_code == 404
    _configmap_dir(
        config_dir,
        SEED_CONFIG.replace(
            "}\n}\n",
            '}\n  config {\n    name: "second"\n    base_path: "/models/half_plus_two"\n'
            '    model_platform: "tensorflow"\n  }\n}\n',
        ),
        2,
    )
    support.wait_for(
        lambda: support.rest_predict(rest, "second", [1.0, 2.0, 5.0]) == V1
        if httpx.get(f"{rest}/v1/models/second", timeout=5).status_code == 200
        else False,
        60, "the model added to the ConfigMap to be served", c,
    )  # fmt: skip
    assert c.state()["Restarting"] is False
    assert support.rest_predict(rest, "half_plus_two", [1.0]) == [2.5]
