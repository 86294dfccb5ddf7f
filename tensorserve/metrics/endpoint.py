"""The Prometheus scrape endpoint, protocol-neutral: the REST app routes the configured path here.

TF Serving answers ``Content-Type: text/plain``; we add the format version and charset, which
Prometheus and every text-format parser accept.
"""

from __future__ import annotations

from typing import Final

from tensorserve.metrics.registry import Metrics

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


def scrape(metrics: Metrics) -> tuple[int, dict[str, str], bytes]:
    """``(200, headers, page)`` for one scrape of ``metrics``."""
    return 200, {"Content-Type": CONTENT_TYPE}, metrics.render()
