"""TF Serving's REST URL grammar (``http_rest_api_util.cc``), plus our extra routes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tensorserve.errors import InvalidArgument

_MODEL_PATH = re.compile(
    r"(?i)^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<sub>/[^:]*)|:(?P<verb>[^/:]*))?$"
)
_V2_READY = re.compile(r"^/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>\d+))?/ready$")
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """A parsed ``/v1/models/...`` URL: ``action`` is status, metadata or a verb."""

    name: str
    version: int | None
    label: str | None
    action: str


def parse_v1(method: str, path: str) -> ModelRoute:
    """Parse a ``/v1/...`` path; InvalidArgument with TF Serving's messages otherwise."""
    if path.rstrip("/").lower() == "/v1/models" and method == "GET":
        return ModelRoute("", None, None, "list")
    match = _MODEL_PATH.match(path)
    if match is None:
        raise InvalidArgument(f"Malformed request: {method} {path}")
    version = _version(match.group("version"))
    sub, verb = match.group("sub"), match.group("verb")
    action = _action(method, sub, verb)
    if action is None:
        raise InvalidArgument(f"Malformed request: {method} {path}")
    return ModelRoute(match.group("name"), version, match.group("label"), action)


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    if int(text) > _INT64_MAX:
        raise InvalidArgument(f"Failed to convert version: {text} to numeric.")
    return int(text)


def _action(method: str, sub: str | None, verb: str | None) -> str | None:
    if method == "GET" and verb is None:
        if sub is None:
            return "status"
        if sub == "/metadata":
            return "metadata"
    if method == "POST" and sub is None and verb in ("predict", "classify", "regress"):
        return verb
    return None


def parse_v2_ready(path: str) -> tuple[str, int | None] | None:
    """``/v2/models/{name}[/versions/{v}]/ready`` -> (name, version), else None."""
    match = _V2_READY.match(path)
    if match is None:
        return None
    version = match.group("version")
    return match.group("name"), int(version) if version else None
