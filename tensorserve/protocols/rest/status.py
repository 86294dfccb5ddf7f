"""Canonical code -> HTTP status: the one REST error table (TF Serving's ``http_server.cc``)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from tensorserve.errors import Code

HTTP_STATUS: Final = MappingProxyType(
    {
        Code.OK: 200,
        Code.CANCELLED: 499,
        Code.UNKNOWN: 500,
        Code.INVALID_ARGUMENT: 400,
        Code.DEADLINE_EXCEEDED: 504,
        Code.NOT_FOUND: 404,
        Code.ALREADY_EXISTS: 409,
        Code.PERMISSION_DENIED: 403,
        Code.RESOURCE_EXHAUSTED: 429,
        Code.FAILED_PRECONDITION: 400,
        Code.ABORTED: 409,
        Code.OUT_OF_RANGE: 400,
        Code.UNIMPLEMENTED: 501,
        Code.INTERNAL: 500,
        Code.UNAVAILABLE: 503,
        Code.DATA_LOSS: 500,
        Code.UNAUTHENTICATED: 401,
    }
)


def http_status(code: Code) -> int:
    """The HTTP status TF Serving answers for ``code``."""
    return HTTP_STATUS.get(code, 500)
