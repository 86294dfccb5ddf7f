"""Bearer-token checks shared by the REST and gRPC adapters (``--auth_token_file``).

Comparisons are constant-time (``hmac.compare_digest``), so response timing says
nothing about how much of a guess was right.
"""

from __future__ import annotations

import hmac

BEARER = "bearer "
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


def missing_message(where: str) -> str:
    """What a caller without a valid token is told (never whether a guess was close)."""
    return (
        f"Missing or invalid bearer token: {where} needs 'Authorization: Bearer <token>' "
        "with the token in the server's --auth_token_file"
    )
