"""Canonical code -> gRPC status: identity on the code, plus TF Serving's message cap."""

from __future__ import annotations

from typing import Final

import grpc

from tensorserve.errors import Code

MAX_MESSAGE_BYTES: Final = 1024
_SUFFIX: Final = "...TRUNCATED"
_BY_VALUE: Final = {c.value[0]: c for c in grpc.StatusCode}


def grpc_code(code: Code) -> grpc.StatusCode:
    """The gRPC status code with the same number."""
    return _BY_VALUE.get(int(code), grpc.StatusCode.UNKNOWN)


def grpc_message(message: str) -> str:
    """TF Serving's cap (``grpc_status_util.cc``): a message longer than 1024 bytes keeps its
    first 1024 bytes, followed by ``...TRUNCATED`` (a UTF-8 sequence cut in two is dropped)."""
    data = message.encode("utf-8")
    if len(data) <= MAX_MESSAGE_BYTES:
        return message
    return data[:MAX_MESSAGE_BYTES].decode("utf-8", errors="ignore") + _SUFFIX
