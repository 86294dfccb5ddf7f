"""``--total_model_memory_limit_bytes``: TF Serving's estimate (files' size x 1.2) decides what
may load; a version beyond the budget ends with RESOURCE_EXHAUSTED while the others serve, and
the estimate and the load's RSS growth are published per version."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.harness import model_config, start_server


def _estimate(folder: Path) -> int:
    return int(sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) * 1.2)


def test_the_version_beyond_the_budget_is_refused(models_dir: Path, tmp_path: Path) -> None:
    pinned = "model_version_policy { specific { versions: 1 } }"
    hp, mlp = models_dir / "half_plus_two", models_dir / "mlp"
    estimates = {"hp": _estimate(hp / "1"), "mlp": _estimate(mlp / "1")}
    config = tmp_path / "models.config"
    config.write_text(model_config([("hp", str(hp), pinned), ("mlp", str(mlp), pinned)]))
    monitoring = tmp_path / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true path: "/metrics" }')
    budget = sum(estimates.values()) - 1  # either fits alone, not both
    server = start_server(
        [
            f"--model_config_file={config}",
            f"--monitoring_config_file={monitoring}",
            f"--total_model_memory_limit_bytes={budget}",
            "--num_workers=1",
        ]
    )
    try:
        states = {}
        for name in estimates:
            (status,) = httpx.get(f"{server.rest}/v1/models/{name}").json()["model_version_status"]
            states[name] = status
        served = [n for n, s in states.items() if s["state"] == "AVAILABLE"]
        refused = [n for n, s in states.items() if s["state"] == "END"]
        assert len(served) == 1 and len(refused) == 1, states
        error = states[refused[0]]["status"]
        assert error["error_code"] == "RESOURCE_EXHAUSTED"
        assert error["error_message"].startswith(
            f"Insufficient resources to load servable {{name: {refused[0]} version: 1}}: its "
            f"memory estimate of {estimates[refused[0]]} bytes"
        )
        assert f"--total_model_memory_limit_bytes={budget}" in error["error_message"]
        metrics = httpx.get(f"{server.rest}/metrics").text
        labels = f'model_name="{served[0]}",version="1"'
        estimate = re.search(
            rf"^tensorserve_model_memory_estimate_bytes{{{labels}}} (\S+)$", metrics, re.M
        )
        assert estimate is not None and float(estimate.group(1)) == estimates[served[0]]
        assert re.search(
            rf"^tensorserve_model_load_rss_growth_bytes{{{labels}}} \S+$", metrics, re.M
        )
        assert f'tensorserve_model_memory_estimate_bytes{{model_name="{refused[0]}"' not in metrics
        overview = httpx.get(f"{server.rest}/dashboard/api/overview").json()
        models = {m["name"]: m for m in overview["models"]}
        (version,) = models[served[0]]["versions"]
        assert version["memory_estimate_bytes"] == estimates[served[0]]
    finally:
        server.stop()
