"""KServe: the manifests against KServe's CRDs, and both runtimes run in podman as KServe would.

KServe's own ``kserve-tensorflow-serving`` runtime is run unchanged but for its image: its
command and args with ``{{.Name}}`` rendered, its securityContext (uid 1000, no
capabilities, no privilege escalation) plus a read-only root, its resource limits, and the
model at /mnt/models as KServe's storage initializer leaves it. A real cluster with KServe
cannot run here (no Kubernetes), so that is as far as "for real" goes.
"""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from tests.deploy import support

OURS = support.REPO / "deploy" / "kserve"
CRDS = {
    "ServingRuntime": "serving.kserve.io_servingruntimes.yaml",
    "ClusterServingRuntime": "serving.kserve.io_clusterservingruntimes.yaml",
    "InferenceService": "serving.kserve.io_inferenceservices.yaml",
}
ISVC_NAME = "half-plus-two"


def kserve_file(name: str) -> Path:
    path = support.KSERVE / name
    if not path.exists():
        pytest.skip(f"{path} is missing (KServe reference files live in ../shared/testdata)")
    return path


def closed(schema: Any) -> Any:
    """The CRD schema with unknown fields made errors wherever the CRD does not keep them."""
    if isinstance(schema, dict):
        out = {k: closed(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


_SCHEMAS: dict[tuple[str, str], Any] = {}


def crd_schema(kind: str, version: str) -> Any:
    if (kind, version) not in _SCHEMAS:
        crd = yaml.safe_load(kserve_file(CRDS[kind]).read_text())
        assert crd["spec"]["names"]["kind"] == kind
        spec = next(v for v in crd["spec"]["versions"] if v["name"] == version)
        _SCHEMAS[kind, version] = closed(spec["schema"]["openAPIV3Schema"])
    return _SCHEMAS[kind, version]


def validate(doc: dict[str, Any]) -> None:
    group, version = doc["apiVersion"].split("/")
    assert group == "serving.kserve.io"
    errors = sorted(
        jsonschema.Draft7Validator(crd_schema(doc["kind"], version)).iter_errors(doc),
        key=lambda e: list(e.path),
    )
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(path.read_text())
    return doc


def test_validator_is_strict() -> None:
    """KServe's own runtime passes; a misspelt field fails (so the checks below mean something)."""
    theirs = load(kserve_file("kserve-tensorflow-serving.yaml"))
    validate(theirs)
    broken = copy.deepcopy(theirs)
    broken["spec"]["supportedModelFormat"] = broken["spec"].pop("supportedModelFormats")
    with pytest.raises(AssertionError, match="supportedModelFormat"):
        validate(broken)


@pytest.mark.parametrize(
    "name", ["clusterservingruntime.yaml", "servingruntime.yaml", "inferenceservice.yaml"]
)
def test_manifests_match_kserve_crds(name: str) -> None:
    validate(load(OURS / name))


def test_runtime_is_kserves_tf_serving_runtime_with_our_image() -> None:
    theirs = load(kserve_file("kserve-tensorflow-serving.yaml"))
    for name in ("clusterservingruntime.yaml", "servingruntime.yaml"):
        ours = load(OURS / name)
        spec = ours["spec"]
        formats = {(f["name"], f["version"]) for f in spec["supportedModelFormats"]}
        assert formats == {("tensorflow", "1"), ("tensorflow", "2")}
        assert spec["protocolVersions"] == ["v1", "grpc-v1"]
        mine, tf = spec["containers"][0], theirs["spec"]["containers"][0]
        assert mine["command"] == tf["command"] == ["/usr/bin/tensorflow_model_server"]
        assert mine["args"][: len(tf["args"])] == tf["args"]
        for key, value in tf["securityContext"].items():
            assert mine["securityContext"][key] == value
        assert spec["annotations"]["prometheus.kserve.io/path"] == "/monitoring/prometheus/metrics"
    isvc = load(OURS / "inferenceservice.yaml")
    assert isvc["metadata"]["name"] == ISVC_NAME
    assert isvc["spec"]["predictor"]["model"]["runtime"] == "kserve-tensorserve"


def podman_options(container: dict[str, Any], model_dir: Path) -> list[str]:
    """What the kubelet would do with this container spec, as podman options."""
    sc = container.get("securityContext", {})
    opts = ["--volume", f"{model_dir}:/mnt/models:ro"]
    if "runAsUser" in sc:
        opts += ["--user", str(sc["runAsUser"])]
    if "ALL" in sc.get("capabilities", {}).get("drop", []):
        opts += ["--cap-drop", "ALL"]
    if sc.get("allowPrivilegeEscalation") is False:
        opts += ["--security-opt", "no-new-privileges"]
    # KServe's runtime leaves the root writable; tensorserve also runs with it read-only,
    # with only /tmp writable (an emptyDir in our runtime).
    opts += ["--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=256m"]
    limits = container.get("resources", {}).get("limits", {})
    if "cpu" in limits:
        opts += ["--cpus", str(limits["cpu"])]
    if "memory" in limits:
        opts += ["--memory", str(limits["memory"]).replace("Gi", "g").replace("Mi", "m")]
    opts += ["--entrypoint", container["command"][0]]
    return opts


def render_args(args: list[str]) -> list[str]:
    return [re.sub(r"\{\{\s*\.Name\s*\}\}", ISVC_NAME, a) for a in args]


def mnt_models(model_versions: Path) -> Path:
    """What KServe's storage initializer leaves: the version folders under /mnt/models."""
    root = support.world_readable_dir("mnt-models")
    shutil.copytree(model_versions / "1", root / "1")
    support.make_readable(root)
    return root


def run_runtime(
    image: str, runtime: dict[str, Any], model_versions: Path, containers: list[Any]
) -> support.Container:
    spec = runtime["spec"]["containers"][0]
    assert all(v in spec["command"][0] for v in ["/usr/bin/tensorflow_model_server"])
    c = support.run_container(
        image,
        [*spec["command"][1:], *render_args(spec["args"])],
        publish=(8080, 9000),
        options=podman_options(spec, mnt_models(model_versions)),
    )
    containers.append(c)
    elapsed = support.wait_ready(c, 8080)
    support.record(
        f"kserve_start_to_ready_seconds[{runtime['metadata']['name']}]", round(elapsed, 1)
    )
    return c


def test_kserve_tf_serving_runtime_runs_unchanged(
    image: str, model_versions: Path, containers: list[Any]
) -> None:
    theirs = load(kserve_file("kserve-tensorflow-serving.yaml"))
    c = run_runtime(image, theirs, model_versions, containers)
    base = c.url(8080)
    assert support.rest_predict(base, ISVC_NAME, [1.0, 2.0, 5.0]) == [2.5, 3.0, 4.5]
    assert support.grpc_predict(c.host_port(9000), ISVC_NAME, [1.0]) == [2.5]
    status = httpx.get(f"{base}/v1/models/{ISVC_NAME}", timeout=5).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    assert support.podman("exec", c.cid, "id", "-u").stdout.strip() == "1000"


def test_tensorserve_runtime_serves_metrics_and_grpc_health(
    image: str, model_versions: Path, containers: list[Any]
) -> None:
    ours = load(OURS / "clusterservingruntime.yaml")
    c = run_runtime(image, ours, model_versions, containers)
    base = c.url(8080)
    assert support.rest_predict(base, ISVC_NAME, [3.0]) == [3.5]
    assert support.grpc_health(c.host_port(9000)) == "SERVING"
    path = ours["spec"]["annotations"]["prometheus.kserve.io/path"]
    port = int(ours["spec"]["annotations"]["prometheus.kserve.io/port"])
    # Counters from the worker processes may reach the scrape a moment after the response.
    metrics_url = c.url(port, path)
    support.wait_for(
        lambda: ":tensorflow:serving:request_count{" in httpx.get(metrics_url, timeout=5).text,
        15, "the request counter on KServe's metrics path", c,
    )  # fmt: skip
