"""Typed serving errors carrying one canonical code (gRPC's code space).

Every layer below ``protocols/`` raises a :class:`ServingError` subclass; each
protocol maps ``error.code`` exactly once (``protocols/grpc/status.py`` and
``protocols/rest/status.py``). Nothing here knows about HTTP or grpc.
"""

from __future__ import annotations

import enum


class Code(enum.IntEnum):
    """Canonical status codes; numbering equals ``tensorflow.error.Code`` and gRPC."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class ServingError(Exception):
    """An error with a canonical :class:`Code` and a client-facing message."""

    code: Code = Code.UNKNOWN

    def __init__(self, message: str, code: Code | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class InvalidArgument(ServingError):
    code = Code.INVALID_ARGUMENT


class NotFound(ServingError):
    code = Code.NOT_FOUND


class FailedPrecondition(ServingError):
    code = Code.FAILED_PRECONDITION


class Unavailable(ServingError):
    code = Code.UNAVAILABLE


class Unimplemented(ServingError):
    code = Code.UNIMPLEMENTED


class Internal(ServingError):
    code = Code.INTERNAL


class DeadlineExceeded(ServingError):
    code = Code.DEADLINE_EXCEEDED


class ResourceExhausted(ServingError):
    code = Code.RESOURCE_EXHAUSTED


class DataLoss(ServingError):
    code = Code.DATA_LOSS


class Unknown(ServingError):
    code = Code.UNKNOWN


class AlreadyExists(ServingError):
    code = Code.ALREADY_EXISTS


class Cancelled(ServingError):
    code = Code.CANCELLED


class Unauthenticated(ServingError):
    code = Code.UNAUTHENTICATED


def drop_traceback(exc: BaseException | None) -> None:
    """Forget the frames ``exc`` and the errors it was raised from hold.

    An error kept past its handler (in a ``PredictCall``, a response being written, an
    ipc reply) keeps every local of the frames it passed through alive, whole request
    bodies among them; and once a frame refers back to the error, as a ``PredictCall``
    holding its ``decode_error`` does, only the cyclic garbage collector frees them,
    late and in bulk. The protocols call this where an error becomes an answer.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__


class PortInUse(OSError):
    """A port the server could not bind; ``protocol`` is ``"gRPC"`` or ``"REST"``."""

    def __init__(self, protocol: str, host: str, port: int, reason: str) -> None:
        super().__init__(f"{protocol} server could not start on {host}:{port} (in use?): {reason}")
        self.protocol = protocol
        self.host = host
        self.port = port

    def tf_serving_lines(self) -> tuple[tuple[str, ...], str]:
        """TF Serving's lines before ``Failed to start server``, and its status."""
        if self.protocol == "gRPC":
            return (), "INVALID_ARGUMENT: Failed to BuildAndStart gRPC server"
        return (f"Couldn't bind to port {self.port}",), (
            f"UNAVAILABLE: Failed to start HTTP Server at {self.host}:{self.port}"
        )
