"""The sample config files (examples/configs, shown in the README) parse with the server's parsers.

Each file must also appear verbatim in README.md, so the README cannot drift from them.
"""

from __future__ import annotations

from pathlib import Path

from tensorserve.config.batching import parse_batching_parameters
from tensorserve.config.model_config import parse_model_server_config
from tensorserve.config.monitoring import parse_monitoring_config
from tests.harness import ROOT

CONFIGS = ROOT / "examples" / "configs"


def text(name: str) -> str:
    return (CONFIGS / name).read_text(encoding="utf-8")


def test_models_config_parses_with_policies_and_labels() -> None:
    models = {m.name: m for m in parse_model_server_config(text("models.config"))}
    assert set(models) == {"mnist", "half_plus_two", "resnet"}
    assert models["mnist"].policy.kind == "specific"
    assert models["mnist"].policy.versions == (1, 2)
    assert dict(models["mnist"].labels) == {"stable": 1, "canary": 2}
    assert (models["half_plus_two"].policy.kind, models["half_plus_two"].policy.num_versions) == (
        "latest",
        2,
    )
    assert models["resnet"].policy.kind == "all"


def test_batching_config_parses() -> None:
    options = parse_batching_parameters(text("batching.config"))
    assert options.max_batch_size == 32
    assert options.allowed_batch_sizes == (8, 16, 32)


def test_monitoring_config_parses() -> None:
    options = parse_monitoring_config(text("monitoring.config"))
    assert options.enabled
    assert options.path == "/monitoring/prometheus/metrics"


def test_readme_shows_each_sample_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in sorted(Path(CONFIGS).glob("*.config")):
        assert path.read_text(encoding="utf-8").rstrip() in readme, path.name
