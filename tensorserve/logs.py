"""Logging for the ``tensorserve`` logger hierarchy: text or JSON lines, structured fields.

:func:`configure_logging` installs one handler on the ``tensorserve`` logger and stops
propagation, so the root logger (where TensorFlow's absl handler lives) never sees, and never
duplicates, our lines; other libraries' logging is left alone. Timestamps are UTC.

Structured fields travel as ``extra={"fields": {...}}``; :func:`log_event` is the shorthand::

    log_event(log, logging.INFO, "version loaded", model="m", version=3, state="AVAILABLE")

text: ``2026-11-25 18:00:00.123 INFO tensorserve.core.manager: version loaded model=m version=3
state=AVAILABLE``; json: ``{"ts":"2026-11-25T18:00:00.123Z","level":"INFO",
"logger":"tensorserve.core.manager","msg":"version loaded","model":"m","version":3,...}``.

Access lines go to ``tensorserve.access`` through :func:`access_log`, a cheap no-op unless
``configure_logging(..., access_log=True)`` enabled them.
"""

from __future__ import annotations

import enum
import functools
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, Final, Literal, TextIO

import orjson

ROOT_LOGGER: Final = "tensorserve"
ACCESS_LOGGER: Final = "tensorserve.access"
_RESERVED: Final = frozenset({"ts", "level", "logger", "msg", "exc", "stack"})
_LEVELS: Final = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
    "FATAL": logging.CRITICAL,
}
_ACCESS_OFF: Final = logging.CRITICAL + 1


def parse_level(level: str) -> int:
    """The numeric level for a name such as ``info`` or ``WARNING``; ValueError otherwise."""
    try:
        return _LEVELS[level.strip().upper()]
    except KeyError:
        choices = ", ".join(name.lower() for name in _LEVELS)
        raise ValueError(f"invalid log level {level!r}: expected one of {choices}") from None


def _plain(value: Any) -> Any:
    """Enums log by name (``Code.NOT_FOUND`` -> ``NOT_FOUND``); everything else as is."""
    return value.name if isinstance(value, enum.Enum) else value


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields attached to ``record`` (empty when none)."""
    fields = getattr(record, "fields", None)
    if not isinstance(fields, Mapping):
        return {}
    return {str(k): _plain(v) for k, v in fields.items()}


def _utc(record: logging.LogRecord, sep: str) -> str:
    millis = int(record.msecs)
    return time.strftime(f"%Y-%m-%d{sep}%H:%M:%S", time.gmtime(record.created)) + f".{millis:03d}"


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if text and not any(c in text for c in ' "=\n\t'):
        return text
    return orjson.dumps(text).decode()


class TextFormatter(logging.Formatter):
    """``<UTC ts> <LEVEL> <logger>: <msg> key=value ...``, then any traceback lines."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_utc(record, ' ')} {record.levelname} {record.name}: {record.getMessage()}"
        pairs = [f"{k}={_text_value(v)}" for k, v in record_fields(record).items()]
        if pairs:
            line += " " + " ".join(pairs)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, then the fields.

    A field named like a reserved key (``ts``, ``level``, ``logger``, ``msg``, ``exc``,
    ``stack``) is written with a trailing underscore; values orjson cannot encode are ``str()``-ed.
    """

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "ts": _utc(record, "T") + "Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record_fields(record).items():
            obj[key + "_" if key in _RESERVED else key] = value
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            obj["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(obj, default=str).decode()


class _OurHandler(logging.StreamHandler[TextIO]):
    """The handler :func:`configure_logging` owns (a second call replaces it).

    Every record reaches the file descriptor in one ``write`` (after a flush of anything
    buffered), so the records of several processes sharing stderr (a multi-process
    server's supervisor, model process and workers) never interleave mid-line.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):  # not a real file (tests, StringIO)
            super().emit(record)
            return
        try:
            data = (self.format(record) + self.terminator).encode("utf-8", "replace")
            self.stream.flush()
            while data:
                data = data[os.write(fd, data) :]
        except Exception:
            self.handleError(record)


def configure_logging(
    fmt: Literal["text", "json"],
    level: str,
    *,
    access_log: bool = False,
    stream: TextIO | None = None,
) -> None:
    """Route the ``tensorserve`` hierarchy to ``stream`` (default stderr) in ``fmt`` at ``level``.

    Idempotent: a later call replaces the earlier handler. The root logger is not touched and
    ``tensorserve`` stops propagating to it. ``access_log`` turns ``tensorserve.access`` on (at
    INFO, whatever ``level`` is). Raises ValueError for an unknown format or level.
    """
    formatter = _formatter(fmt)
    numeric = parse_level(level)
    logger = logging.getLogger(ROOT_LOGGER)
    for old in [h for h in logger.handlers if isinstance(h, _OurHandler)]:
        logger.removeHandler(old)
    handler = _OurHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    logger.setLevel(numeric)
    logger.propagate = False
    _access_logger().setLevel(logging.INFO if access_log else _ACCESS_OFF)


def _formatter(fmt: str) -> logging.Formatter:
    if fmt == "text":
        return TextFormatter()
    if fmt == "json":
        return JsonFormatter()
    raise ValueError(f"invalid log format {fmt!r}: expected 'text' or 'json'")


def log_event(logger: logging.Logger, level: int, msg: str, /, **fields: Any) -> None:
    """Log ``msg`` once with structured ``fields`` (attributed to the caller's line)."""
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={"fields": fields}, stacklevel=2)


@functools.cache
def _access_logger() -> logging.Logger:
    return logging.getLogger(ACCESS_LOGGER)


def access_log(
    method: str,
    path: str,
    status: int,
    latency_ms: float,
    model: str | None,
    version: int | None,
    entrypoint: str,
) -> None:
    """Log message ``request`` with these as fields (``None`` ones left out).

    A no-op costing one cached level check unless access logging is on.
    """
    logger = _access_logger()
    if not logger.isEnabledFor(logging.INFO):
        return
    fields: dict[str, Any] = {"method": method, "path": path, "status": status}
    fields["latency_ms"] = round(latency_ms, 3)
    if model is not None:
        fields["model"] = model
    if version is not None:
        fields["version"] = version
    fields["entrypoint"] = entrypoint
    logger.info("request", extra={"fields": fields})
