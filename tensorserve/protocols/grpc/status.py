"""Canonical code -> gRPC status: identity on the code, plus TF Serving's message cap."""

from __future__ import annotations

from typing import Final

import grpc

from tensorserve.errors import Code

MAX_MESSAGE_CHARS: Final = 1024
_SUFFIX: Final = "...TRUNCATED"
_BY_VALUE: Final = {c.value[0]: c for c in grpc.StatusCode}


def grpc_code(code: Code) -> grpc.StatusCode:
    """The gRPC status code with the same number."""
    return _BY_VALUE.get(int(code), grpc.StatusCode.UNKNOWN)


def grpc_message(message: str) -> str:
    """Cap a message at 1024 characters as TF Serving does (``grpc_status_util.cc``)."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - len(_SUFFIX)] + _SUFFIX
