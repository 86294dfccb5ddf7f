"""Shared by the REST JSON codec modules: limits, value-level errors, message snippets."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Final

from tensorserve.errors import InvalidArgument

SNIPPET_CHARS: Final = 200
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
UINT64_MAX: Final = 2**64 - 1


class BadValue(Exception):
    """Internal: a value-level error; callers add input context and wrap it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def float_token(value: float) -> bytes:
    if math.isnan(value):
        return b"NaN"
    return b"Infinity" if value > 0 else b"-Infinity"


def is_b64(value: Any) -> bool:
    """TF's base64 object: exactly one key, ``b64``, holding a string."""
    return type(value) is dict and len(value) == 1 and type(value.get("b64")) is str


def require_object(doc: Any) -> dict[str, Any]:
    if type(doc) is not dict:
        raise InvalidArgument(f"JSON Value: {snippet(doc)} Is not object")
    return doc


# ------------------------------------------------------------------ message helpers


def json_type(value: Any) -> str:
    """rapidjson's type name of a parsed JSON value."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if type(value) is dict:
        return "Object"
    if type(value) is list:
        return "Array"
    return "String" if type(value) is str else "Number"


def snippet(value: Any, limit: int = SNIPPET_CHARS) -> str:
    """Compact JSON text of a value for messages, cut after ``limit`` characters."""
    parts: list[str] = []
    _render(value, parts, limit)
    text = "".join(parts)
    return text if len(text) <= limit else text[:limit] + "..."


def _render(value: Any, parts: list[str], budget: int) -> int:
    """Append JSON text of ``value``; stop early once ``budget`` chars are spent."""
    if budget <= 0:
        return budget
    if type(value) is list:
        return _render_items(value, parts, budget, "[]", lambda item: ("", item))
    if type(value) is dict:
        return _render_items(
            list(value.items()), parts, budget, "{}", lambda kv: (_scalar(kv[0]) + ":", kv[1])
        )
    text = _scalar(value)
    parts.append(text)
    return budget - len(text)


def _render_items(
    items: list[Any],
    parts: list[str],
    budget: int,
    brackets: str,
    split: Callable[[Any], tuple[str, Any]],
) -> int:
    parts.append(brackets[0])
    budget -= 1
    for index, item in enumerate(items):
        if budget <= 0:
            return budget
        prefix, value = split(item)
        prefix = ("," if index else "") + prefix
        parts.append(prefix)
        budget = _render(value, parts, budget - len(prefix))
    parts.append(brackets[1])
    return budget - 1


def _scalar(value: Any) -> str:
    if type(value) is float:
        return value.__repr__() if math.isfinite(value) else float_token(value).decode()
    if type(value) is int:
        return int.__repr__(value) if abs(value) < 10**100 else "<very large integer>"
    return json.dumps(value, ensure_ascii=False)
