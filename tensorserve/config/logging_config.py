"""A model's ``logging_config`` -> frozen :class:`RequestLoggingOptions`.

``tensorflow_model_server`` refuses any ``logging_config`` in the OSS build ("No
request-logger-creator provided."); tensorserve accepts it and writes sampled
``PredictionLog`` records to TFRecord files (``runtime/request_log.py``).

Accepted ``tensorflow.serving.LoggingConfig``:

- ``log_collector_config.type``: ``""`` or ``"tfrecord"`` (both mean TFRecord files).
- ``log_collector_config.filename_prefix``: required path prefix, e.g.
  ``/var/log/tfs/model_a`` gives ``/var/log/tfs/model_a.<UTC time>.<pid>.<seq>.tfrecord``;
  a prefix ending in ``/`` names a directory (files ``<dir>/<UTC time>.<pid>.<seq>.tfrecord``).
  Local paths (relative ones resolve against the working directory) or any URI
  ``tf.io.gfile`` supports. Missing directories are created.
- ``sampling_config.sampling_rate`` in ``[0, 1]`` (unset = 0 = log nothing);
  ``sampling_config.attributes`` is accepted and ignored.
- Refused: ``custom_logging_config`` and ``sampling_config.per_task_sampling_configs``.

``max_file_bytes`` (file rotation size) is not part of the proto; it comes from
tensorserve's own options. This module is pure and imports no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

from tensorflow_serving.config import logging_config_pb2

DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
SUPPORTED_COLLECTOR_TYPES = ("", "tfrecord")


class LoggingConfigError(ValueError):
    """A ``logging_config`` that tensorserve refuses; the message names the field."""


@dataclass(frozen=True, slots=True)
class RequestLoggingOptions:
    """Validated request-logging settings of one model.

    Invariants (checked on construction): ``0 <= sampling_rate <= 1``,
    ``filename_prefix`` non-empty, ``max_file_bytes > 0``.
    """

    sampling_rate: float
    filename_prefix: str
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES

    def __post_init__(self) -> None:
        _check_rate(self.sampling_rate)
        _check_prefix(self.filename_prefix)
        if self.max_file_bytes <= 0:
            raise LoggingConfigError(f"max_file_bytes must be > 0, got {self.max_file_bytes}")


def parse_logging_config(
    config: logging_config_pb2.LoggingConfig | bytes | None,
    *,
    model_name: str = "",
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> RequestLoggingOptions | None:
    """Validate a ``LoggingConfig`` (message or its serialized bytes).

    ``None`` and ``b""`` mean "no logging_config" and return ``None``. Any refused
    setting raises :class:`LoggingConfigError` prefixed with the model name, if given.
    """
    if config is None or config == b"":
        return None
    try:
        return _options(_message(config), max_file_bytes)
    except LoggingConfigError as exc:
        if not model_name:
            raise
        raise LoggingConfigError(f"model '{model_name}': {exc}") from None


def _message(
    config: logging_config_pb2.LoggingConfig | bytes,
) -> logging_config_pb2.LoggingConfig:
    if not isinstance(config, bytes):
        return config
    message = logging_config_pb2.LoggingConfig()
    try:
        message.ParseFromString(config)
    except Exception as exc:  # protobuf's DecodeError
        raise LoggingConfigError(f"logging_config is not a valid LoggingConfig: {exc}") from exc
    return message


def _options(
    config: logging_config_pb2.LoggingConfig, max_file_bytes: int
) -> RequestLoggingOptions:
    if config.HasField("custom_logging_config"):
        raise LoggingConfigError("logging_config.custom_logging_config is not supported")
    if len(config.sampling_config.per_task_sampling_configs):
        raise LoggingConfigError(
            "logging_config.sampling_config.per_task_sampling_configs is not supported; "
            "use sampling_config.sampling_rate"
        )
    collector_type = config.log_collector_config.type
    if collector_type not in SUPPORTED_COLLECTOR_TYPES:
        raise LoggingConfigError(
            f"logging_config.log_collector_config.type {collector_type!r} is not supported "
            '(use "" or "tfrecord")'
        )
    return RequestLoggingOptions(
        sampling_rate=config.sampling_config.sampling_rate,
        filename_prefix=config.log_collector_config.filename_prefix,
        max_file_bytes=max_file_bytes,
    )


def _check_rate(rate: float) -> None:
    if not 0.0 <= rate <= 1.0:  # also refuses NaN
        raise LoggingConfigError(
            f"logging_config.sampling_config.sampling_rate must be in [0, 1], got {rate}"
        )


def _check_prefix(prefix: str) -> None:
    if not prefix:
        raise LoggingConfigError(
            "logging_config.log_collector_config.filename_prefix is required "
            "(a path prefix such as /var/log/tfs/model_a)"
        )
