"""The operator dashboard's static files (``static/``), served at ``/dashboard/``.

The page is plain HTML, CSS and JavaScript with no build step and no CDN: it reads
``/dashboard/api/overview`` (``ServiceAPI.overview``) and the public REST API, and
computes rates and percentiles in the browser from the change between two reads.
Files are read on first request and kept in memory.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

PREFIX = "/dashboard/"
OVERVIEW = "/dashboard/api/overview"
_FILES = {
    "": ("index.html", b"text/html; charset=utf-8"),
    "index.html": ("index.html", b"text/html; charset=utf-8"),
    "dashboard.js": ("dashboard.js", b"text/javascript; charset=utf-8"),
    "dashboard.css": ("dashboard.css", b"text/css; charset=utf-8"),
}


def asset(path: str) -> tuple[bytes, bytes] | None:
    """``(body, content type)`` of a dashboard file under ``/dashboard/``, else None."""
    entry = _FILES.get(path[len(PREFIX) :]) if path.startswith(PREFIX) else None
    if entry is None:
        return None
    name, ctype = entry
    return _read(name), ctype


@cache
def _read(name: str) -> bytes:
    return (resources.files("tensorserve.protocols.rest") / "static" / name).read_bytes()
