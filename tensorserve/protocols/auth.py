"""Bearer-token checks shared by the REST and gRPC adapters (``--auth_token_file``).

Comparisons are constant-time (``hmac.compare_digest``), so response timing says
nothing about how much of a guess was right.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

BEARER = "bearer "
# gRPC methods that change what is served (the admin token's, with --admin_token_file)
STATE_CHANGING_RPCS = frozenset(
    {
        "/tensorflow.serving.ModelService/HandleReloadConfigRequest",
        "/inference.GRPCInferenceService/RepositoryModelLoad",
        "/inference.GRPCInferenceService/RepositoryModelUnload",
    }
)
COOKIE = "tensorserve_token"  # set by /dashboard/?token=..., so a browser page can call the API


def bearer(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (scheme case-insensitive)."""
    if header[: len(BEARER)].lower() != BEARER:
        return None
    return header[len(BEARER) :].strip()


def matches(presented: str | None, token: str) -> bool:
    """Whether ``presented`` is ``token``, in time independent of where they differ."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "replace"), token.encode())


def cookie_token(header: str) -> str | None:
    """The dashboard cookie's value in a ``Cookie:`` header, if present."""
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE:
            return value
    return None


@dataclass(frozen=True, slots=True)
class Tokens:
    """``inference``: every call but health checks; ``admin``: calls that change what is
    served (falls back to ``inference`` when not set). None: that kind of call is open."""

    inference: str | None = None
    admin: str | None = None

    def required(self, changes_state: bool) -> str | None:
        if changes_state and self.admin is not None:
            return self.admin
        return self.inference

    @property
    def any(self) -> bool:
        return self.inference is not None or self.admin is not None


def missing_message(where: str, admin: bool = False) -> str:
    """What a caller without a valid token is told (never whether a guess was close)."""
    if admin:
        return (
            f"Missing or invalid bearer token: {where} changes what is served and needs "
            "'Authorization: Bearer <token>' with the token in the server's --admin_token_file"
        )
    return (
        f"Missing or invalid bearer token: {where} needs 'Authorization: Bearer <token>' "
        "with the token in the server's --auth_token_file"
    )
