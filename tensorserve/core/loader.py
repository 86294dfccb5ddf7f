"""The Loader contract (TF Serving ``core/loader.h``)."""

from __future__ import annotations

from typing import Any, Protocol


class Loader(Protocol):
    """Knows how to load and unload one servable version.

    Creating a Loader is cheap and does no I/O; ``load`` is expensive (reads
    the model, may warm it up) and runs on a load thread; it returns the
    servable or raises (ideally a ``ServingError``), and may be called again
    after a failure (retries). ``unload`` is called once, on an unload thread,
    only after a successful ``load`` and after every request holding the
    servable has finished.
    """

    def load(self) -> Any:
        """Load and return the servable; raise on failure."""
        ...

    def unload(self) -> None:
        """Release everything ``load`` acquired."""
        ...

    def estimate_bytes(self) -> int:
        """Memory the loaded servable will take, estimated before loading (0: unknown).

        Called on a load thread (it may read the files' sizes), before ``load``.
        """
        ...
