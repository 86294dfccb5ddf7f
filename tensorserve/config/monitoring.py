"""``--monitoring_config_file``: ``tensorflow.serving.MonitoringConfig`` text proto -> options.

Same semantics as ``tensorflow_model_server``: metrics are served only when
``prometheus_config.enable`` is true, on the REST port, at ``prometheus_config.path`` or, when
that is empty, at ``/monitoring/prometheus/metrics`` (``PrometheusExporter::kPrometheusPath``).
TF Serving accepts any path and simply never matches a bad one; we reject, when enabled, a path
that could never match a request: not starting with ``/``, or holding whitespace, ``?`` or ``#``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from tensorserve.config import protos, textproto

DEFAULT_METRICS_PATH: Final = "/monitoring/prometheus/metrics"


class MonitoringConfigError(ValueError):
    """The monitoring config cannot be read, parsed or accepted; the message says why."""


@dataclass(frozen=True, slots=True)
class MetricsOptions:
    """Whether to serve Prometheus metrics, and at which exact path of the REST port."""

    enabled: bool = False
    path: str = DEFAULT_METRICS_PATH


def parse_monitoring_config(text: str, source: str = "monitoring config") -> MetricsOptions:
    """Parse a MonitoringConfig text proto (empty text: metrics off)."""
    message = protos.MonitoringConfig()
    try:
        textproto.parse(text, message, source)
    except textproto.TextProtoError as err:
        raise MonitoringConfigError(str(err)) from err
    prometheus = message.prometheus_config
    options = MetricsOptions(bool(prometheus.enable), prometheus.path or DEFAULT_METRICS_PATH)
    if options.enabled:
        _check_path(options.path)
    return options


def _check_path(path: str) -> None:
    if not path.startswith("/"):
        raise MonitoringConfigError(f"prometheus_config.path must start with '/' (got {path!r})")
    if any(c.isspace() or c in "?#" for c in path):
        raise MonitoringConfigError(
            f"prometheus_config.path must be a plain URL path without whitespace, "
            f"'?' or '#' (got {path!r})"
        )


def load_monitoring_file(path: str | os.PathLike[str]) -> MetricsOptions:
    """Read and parse ``path``; every error names the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as err:
        raise MonitoringConfigError(
            f"cannot read monitoring config {os.fspath(path)!r}: {err}"
        ) from err
    try:
        return parse_monitoring_config(text, os.fspath(path))
    except MonitoringConfigError as err:
        raise MonitoringConfigError(f"{os.fspath(path)}: {err}") from err
