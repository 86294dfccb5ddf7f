"""`podman kube play` of the chart's rendered ConfigMap and Deployment: the pod runs with the
chart's security context (uid 1000, read-only root, no capabilities), its liveness probe
(podman runs it as a healthcheck) passes, it becomes ready and serves, and an edit of the
ConfigMap's models.config reaches the running server through its own polling.

podman 4.3 runs the liveness probe when asked (`podman healthcheck run`; without systemd it
schedules none) and ignores readiness and startup probes, so the readiness endpoint those
probes use is polled from the host. The models come from the PVC the chart names: a podman
volume of that name, filled with `podman volume import`.
"""

from __future__ import annotations

import json
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.deploy import support
from tests.deploy.test_helm import CHART, helm_binary, run_helm
from tests.harness import free_port

RELEASE = "kp"


@pytest.fixture
def played(image: str, model_versions: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    helm = helm_binary()
    if not helm:
        pytest.skip("no helm binary to render the chart")
    grpc_port, rest_port = free_port(), free_port()
    claim = f"tensorserve-models-{os.getpid()}"
    repo, tag = image.rsplit(":", 1)
    values = {
        "replicaCount": 1,
        "image": {"repository": repo, "tag": tag, "pullPolicy": "Never"},
        "modelSource": {"type": "pvc", "mountPath": "/models", "pvc": {"claimName": claim}},
        "server": {"grpcPort": grpc_port, "restPort": rest_port},
        "modelConfigPollSeconds": 1,
        "autoscaling": {"enabled": False},
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    }
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    proc = run_helm(
        helm, "template", RELEASE, str(CHART), "-f", str(tmp_path / "values.yaml"),
        "--show-only", "templates/configmap.yaml", "--show-only", "templates/deployment.yaml",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    manifest = tmp_path / "kube.yaml"
    manifest.write_text(proc.stdout)

    tar_path = tmp_path / "models.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(model_versions / "1", arcname="half_plus_two/1")
    config_volume = next(d for d in yaml.safe_load_all(proc.stdout) if d["kind"] == "ConfigMap")
    volumes = (claim, config_volume["metadata"]["name"])
    _clean(manifest, volumes)
    support.podman("volume", "create", claim)
    support.podman("volume", "import", claim, str(tar_path))
    try:
        start = time.monotonic()
        support.podman("kube", "play", str(manifest), timeout=300)
        yield {
            "manifest": manifest,
            "rest": f"http://127.0.0.1:{rest_port}",
            "grpc_port": grpc_port,
            "start": start,
            "docs": [d for d in yaml.safe_load_all(proc.stdout) if d],
        }
    finally:
        _clean(manifest, volumes)


def _clean(manifest: Path, volumes: tuple[str, ...]) -> None:
    """What a play leaves, even an interrupted one: the pod, its containers, its volumes."""
    support.podman("kube", "down", str(manifest), check=False, timeout=120)
    support.remove_leftovers(f"{RELEASE}-")
    for volume in volumes:
        support.podman("volume", "rm", "--force", volume, check=False)


def _container(pod_name: str) -> dict[str, Any]:
    out = support.podman("ps", "--all", "--format", "json", "--filter", f"pod={pod_name}").stdout
    ours = [c for c in json.loads(out) if not c.get("IsInfra")]
    assert len(ours) == 1, out
    result: dict[str, Any] = json.loads(support.podman("inspect", ours[0]["Id"]).stdout)[0]
    return result


def test_rendered_deployment_runs_in_podman_kube_play(played: dict[str, Any]) -> None:
    rest = played["rest"]
    deployment = next(d for d in played["docs"] if d["kind"] == "Deployment")
    pod_name = f"{deployment['metadata']['name']}-pod-0"
    probe = support.Container(_container(pod_name)["Id"])

    ready = support.wait_ready_url(f"{rest}/v2/health/ready", probe, timeout=180)
    support.record("kube_play_start_to_ready_seconds", round(time.monotonic() - played["start"], 1))
    assert ready
    # The liveness probe, as podman translated the chart's httpGet (curl inside the container).
    hc = support.podman("healthcheck", "run", probe.cid, check=False)
    assert hc.returncode == 0, hc.stdout + hc.stderr + probe.logs()
    assert support.rest_predict(rest, "half_plus_two", [1.0, 2.0, 5.0]) == [2.5, 3.0, 4.5]
    assert support.grpc_predict(played["grpc_port"], "half_plus_two", [1.0]) == [2.5]
    assert support.grpc_health(played["grpc_port"]) == "SERVING"
    metrics = httpx.get(f"{rest}/monitoring/prometheus/metrics", timeout=5)
    assert metrics.status_code == 200 and ":tensorflow:serving:" in metrics.text

    info = _container(pod_name)
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert support.podman("exec", probe.cid, "id", "-u").stdout.strip() == "1000"
    write = support.podman("exec", probe.cid, "touch", "/opt/x", check=False)
    assert write.returncode != 0  # read-only root
    assert support.podman("exec", probe.cid, "touch", "/tmp/x", check=False).returncode == 0

    # A ConfigMap update as the kubelet makes it: the mounted models.config changes in place.
    config = next(m for m in info["Mounts"] if m["Destination"] == "/config")
    source = Path(config["Source"])
    text = (source / "models.config").read_text()
    added = text.rstrip().removesuffix("}") + (
        '  config {\n    name: "second"\n    base_path: "/models/half_plus_two"\n'
        '    model_platform: "tensorflow"\n  }\n}\n'
    )
    tmp = source / ".models.config.new"
    tmp.write_text(added)
    tmp.chmod(0o644)
    tmp.rename(source / "models.config")
    support.wait_for(
        lambda: httpx.get(f"{rest}/v1/models/second", timeout=5).status_code == 200
        and support.rest_predict(rest, "second", [1.0]) == [2.5],
        60, "the model added to the ConfigMap to be served", probe,
    )  # fmt: skip
    assert _container(pod_name)["RestartCount"] == 0


def test_kube_play_pod_stops_cleanly(played: dict[str, Any]) -> None:
    """`podman kube down` sends SIGTERM: the server drains and exits 0 (no SIGKILL)."""
    deployment = next(d for d in played["docs"] if d["kind"] == "Deployment")
    pod_name = f"{deployment['metadata']['name']}-pod-0"
    cid = _container(pod_name)["Id"]
    support.wait_ready_url(f"{played['rest']}/v2/health/ready", support.Container(cid), 180)
    start = time.monotonic()
    support.podman("pod", "stop", "--time", "40", pod_name, timeout=120)
    took = time.monotonic() - start
    state = json.loads(support.podman("inspect", cid).stdout)[0]["State"]
    assert state["ExitCode"] == 0, state
    assert took < 40
