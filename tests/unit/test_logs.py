"""Logging: text and JSON lines, structured fields, no duplicates via root, access log switch."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tensorserve.errors import Code
from tensorserve.logs import access_log, configure_logging, log_event, parse_level

TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (?P<level>[A-Z]+) (?P<logger>[\w.]+): (?P<rest>.*)$"
)


@pytest.fixture(autouse=True)
def restore_loggers() -> Iterator[None]:
    """Put the tensorserve loggers back as they were, so other tests' caplog still works."""
    saved = []
    for name in ("tensorserve", "tensorserve.access"):
        logger = logging.getLogger(name)
        saved.append((logger, list(logger.handlers), logger.level, logger.propagate))
    yield
    for logger, handlers, level, propagate in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = stream.getvalue().splitlines()
    return [orjson.loads(line) for line in lines]


def test_text_format_with_fields() -> None:
    out = io.StringIO()
    configure_logging("text", "info", stream=out)
    log = logging.getLogger("tensorserve.core.manager")
    log_event(log, logging.INFO, "version loaded", model="m", version=3, state="AVAILABLE")
    (line,) = out.getvalue().splitlines()
    match = TEXT_LINE.match(line)
    assert match, line
    assert match["level"] == "INFO" and match["logger"] == "tensorserve.core.manager"
    assert match["rest"] == "version loaded model=m version=3 state=AVAILABLE"


def test_text_format_quotes_values_with_spaces() -> None:
    out = io.StringIO()
    configure_logging("text", "debug", stream=out)
    log_event(logging.getLogger("tensorserve.x"), logging.ERROR, "load failed", error='no "x" here')
    assert out.getvalue().rstrip().endswith('load failed error="no \\"x\\" here"')


def test_json_format_one_object_per_line() -> None:
    out = io.StringIO()
    configure_logging("json", "INFO", stream=out)
    log = logging.getLogger("tensorserve.core.manager")
    log_event(log, logging.INFO, "version loaded", model="m", version=3, state="AVAILABLE")
    log_event(log, logging.WARNING, "request failed", code=Code.NOT_FOUND, msg="clash")
    first, second = json_lines(out)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first.pop("ts"))
    assert first == {
        "level": "INFO",
        "logger": "tensorserve.core.manager",
        "msg": "version loaded",
        "model": "m",
        "version": 3,
        "state": "AVAILABLE",
    }
    assert second["code"] == "NOT_FOUND"
    assert second["msg"] == "request failed" and second["msg_"] == "clash"


def test_json_includes_traceback_and_unencodable_values() -> None:
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    log = logging.getLogger("tensorserve.runtime")
    try:
        raise ZeroDivisionError("nope")
    except ZeroDivisionError:
        log.exception("load crashed", extra={"fields": {"path": object()}})
    (obj,) = json_lines(out)
    assert obj["level"] == "ERROR"
    assert "ZeroDivisionError: nope" in obj["exc"]
    assert obj["path"].startswith("<object object")


def test_lines_do_not_reach_root_handlers() -> None:
    root_capture = Capture()
    logging.getLogger().addHandler(root_capture)
    try:
        configure_logging("text", "info", stream=io.StringIO())
        logging.getLogger("tensorserve.core").info("hello")
    finally:
        logging.getLogger().removeHandler(root_capture)
    assert root_capture.records == []


def test_reconfiguring_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("text", "info", stream=first)
    configure_logging("json", "info", stream=second)
    logging.getLogger("tensorserve").info("once")
    assert first.getvalue() == ""
    assert [obj["msg"] for obj in json_lines(second)] == ["once"]


def test_level_filters() -> None:
    out = io.StringIO()
    configure_logging("text", "warning", stream=out)
    log = logging.getLogger("tensorserve.core")
    log_event(log, logging.INFO, "hidden")
    log_event(log, logging.WARNING, "shown")
    assert [TEXT_LINE.match(line)["rest"] for line in out.getvalue().splitlines()] == ["shown"]  # type: ignore[index]


def test_log_event_attributes_the_caller() -> None:
    capture = Capture()
    configure_logging("text", "info", stream=io.StringIO())
    logging.getLogger("tensorserve").addHandler(capture)
    log_event(logging.getLogger("tensorserve.core"), logging.INFO, "where", model="m")
    (record,) = capture.records
    assert record.funcName == "test_log_event_attributes_the_caller"
    assert record.fields == {"model": "m"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(("fmt", "level", "message"), [
    ("xml", "info", "invalid log format 'xml'"),
    ("text", "verbose", "invalid log level 'verbose'"),
])  # fmt: skip
def test_invalid_format_or_level(fmt: Any, level: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        configure_logging(fmt, level, stream=io.StringIO())


def test_parse_level_accepts_names_case_insensitively() -> None:
    assert parse_level("debug") == logging.DEBUG
    assert parse_level(" Warn ") == logging.WARNING
    assert parse_level("CRITICAL") == logging.CRITICAL


def test_access_log_off_by_default() -> None:
    out = io.StringIO()
    configure_logging("json", "debug", stream=out)
    access_log("POST", "/v1/models/m:predict", 200, 1.5, "m", 1, "REST")
    assert out.getvalue() == ""


def test_access_log_on() -> None:
    out = io.StringIO()
    configure_logging("json", "error", access_log=True, stream=out)
    access_log("POST", "/v1/models/m:predict", 200, 1.23456, "m", 3, "REST")
    access_log("GET", "/healthz", 503, 0.2, None, None, "REST")
    first, second = json_lines(out)
    assert first["logger"] == "tensorserve.access" and first["msg"] == "request"
    fields = {k: first[k] for k in first if k not in {"ts", "level", "logger", "msg"}}
    assert fields == {
        "method": "POST",
        "path": "/v1/models/m:predict",
        "status": 200,
        "latency_ms": 1.235,
        "model": "m",
        "version": 3,
        "entrypoint": "REST",
    }
    assert "model" not in second and "version" not in second and second["status"] == 503
