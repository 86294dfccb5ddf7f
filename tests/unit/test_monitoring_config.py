"""MonitoringConfig text proto -> MetricsOptions, with TF Serving's defaults and our checks."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from tensorserve.config.monitoring import (
    DEFAULT_METRICS_PATH,
    MetricsOptions,
    MonitoringConfigError,
    load_monitoring_file,
    parse_monitoring_config,
)

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "tfserving"


def test_tf_serving_testdata_file() -> None:
    path = TESTDATA / "monitoring_config.txt"
    if not path.exists():
        pytest.skip(f"missing {path}")
    assert load_monitoring_file(path) == MetricsOptions(True, "/monitoring/prometheus/metrics")


def test_empty_config_disables_metrics() -> None:
    assert parse_monitoring_config("") == MetricsOptions(False, DEFAULT_METRICS_PATH)


def test_enabled_without_path_uses_tf_default() -> None:
    options = parse_monitoring_config("prometheus_config { enable: true }")
    assert options == MetricsOptions(True, "/monitoring/prometheus/metrics")


def test_custom_path() -> None:
    text = 'prometheus_config: { enable: true, path: "/metrics" }'
    assert parse_monitoring_config(text) == MetricsOptions(True, "/metrics")


def test_disabled_config_is_not_validated() -> None:
    text = 'prometheus_config { enable: false path: "metrics" }'
    assert parse_monitoring_config(text) == MetricsOptions(False, "metrics")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prometheus_config {", "is not a valid tensorflow.serving.MonitoringConfig text proto"),
        ("prometheus_config { enabled: true }", 'no field named "enabled"'),
        ("monitoring { }", 'no field named "monitoring"'),
        ('prometheus_config { enable: true path: "metrics" }', "must start with '/'"),
        ('prometheus_config { enable: true path: "/a b" }', "without whitespace"),
        ('prometheus_config { enable: true path: "/m?x=1" }', "'?' or '#'"),
        ('prometheus_config { enable: true path: "/m#x" }', "'?' or '#'"),
    ],
)
def test_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(MonitoringConfigError, match=re.escape(message)):
        parse_monitoring_config(text)


def test_error_is_a_value_error() -> None:
    assert issubclass(MonitoringConfigError, ValueError)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(MonitoringConfigError, match=r"cannot read monitoring config .*nope\.txt"):
        load_monitoring_file(missing)


def test_bad_file_content_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "monitoring.txt"
    bad.write_text('prometheus_config { enable: true path: "x" }')
    with pytest.raises(MonitoringConfigError, match=r"monitoring\.txt: .*start with '/'"):
        load_monitoring_file(str(bad))


def test_options_are_frozen() -> None:
    options = MetricsOptions()
    assert options == MetricsOptions(False, "/monitoring/prometheus/metrics")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.enabled = True  # type: ignore[misc]
