"""Version states as reported by GetModelStatus (``ModelVersionStatus.State``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from tensorserve.errors import Code


class ManagerState(enum.IntEnum):
    """Numbering equals ``tensorflow.serving.ModelVersionStatus.State``."""

    UNKNOWN = 0
    START = 10
    LOADING = 20
    AVAILABLE = 30
    UNLOADING = 40
    END = 50


@dataclass(frozen=True, slots=True)
class VersionStatus:
    """The last known state of one version, with the error that ended it, if any.

    ``since`` is the wall-clock time (``time.time()``) the state was entered; it takes
    no part in equality.
    """

    version: int
    state: ManagerState
    error_code: Code = Code.OK
    error_message: str = ""
    since: float = field(default=0.0, compare=False)
    memory_estimate_bytes: int = field(default=0, compare=False)  # when AVAILABLE
    rss_growth_bytes: int = field(default=0, compare=False)  # the load's, when AVAILABLE
