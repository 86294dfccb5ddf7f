"""ServableHandle: holds one loaded version for the length of a request.

While any handle is held the version cannot be unloaded: the manager moves
an unloading version to QUIESCING and only calls ``Loader.unload`` once its
in-flight count reaches zero.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from tensorserve.core.ids import ServableId


class ServableHandle:
    """Context manager over one acquired servable; release exactly once."""

    __slots__ = ("_release", "_retain", "id", "servable")

    def __init__(
        self,
        id: ServableId,
        servable: Any,
        release: Callable[[], None],
        retain: Callable[[], ServableHandle],
    ) -> None:
        self.id = id
        self.servable = servable
        self._release: Callable[[], None] | None = release
        self._retain = retain

    def retain(self) -> ServableHandle:
        """A second, independent hold on the same version (e.g. for a background job)."""
        return self._retain()

    def release(self) -> None:
        """Give the version back; later calls do nothing."""
        release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> ServableHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
