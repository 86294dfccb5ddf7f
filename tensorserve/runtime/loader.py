"""SavedModelLoader: the Loader the manager drives for one TensorFlow version folder.

Load = read the SavedModel (``runtime.saved_model``), optionally wrap it (the
batching layer, injected so the runtime does not depend on it), then warm it
up (injected too: the service layer replays the warm-up records). Any failure
closes what was opened and raises, so the harness can retry.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from tensorserve import logs
from tensorserve.config.settings import RuntimeSettings
from tensorserve.core.manager import RAM_MULTIPLIER
from tensorserve.runtime import saved_model, tflite
from tensorserve.runtime.tflite import TfLiteServable
from tensorserve.servable import Servable

log = logging.getLogger(__name__)
Wrap = Callable[[Servable, str, int, str], Servable]  # (servable, model, version, path)
Warm = Callable[[Servable, str, int, str], None]
LoadObserver = Callable[[str, bool, float], None]  # (path, ok, latency_us)


class SavedModelLoader:
    """Loader protocol (``core/loader.py``); cheap to create, ``load`` does the work."""

    def __init__(
        self,
        model: str,
        version: int,
        path: str,
        options: RuntimeSettings,
        wrap: Wrap | None = None,
        warm: Warm | None = None,
        on_load: LoadObserver | None = None,
    ) -> None:
        self.model, self.version, self.path = model, version, path
        self._options = options
        self._wrap = wrap
        self._warm = warm
        self._on_load = on_load
        self._servable: Servable | None = None

    def load(self) -> Any:
        start = time.perf_counter()
        logs.log_event(
            log,
            logging.INFO,
            "Loading servable",
            model=self.model,
            version=self.version,
            path=self.path,
        )
        try:
            loaded = self._open()
            loaded.name(self.model, self.version)  # errors name the served model
            servable: Servable = loaded
            self._record(start, True)
        except Exception:
            self._record(start, False)
            raise
        try:
            if self._wrap is not None:
                servable = self._wrap(servable, self.model, self.version, self.path)
            if self._warm is not None:
                self._warm(servable, self.model, self.version, self.path)
        except Exception:
            servable.close()
            raise
        self._servable = servable
        logs.log_event(
            log,
            logging.INFO,
            "Successfully loaded servable version",
            model=self.model,
            version=self.version,
        )
        return servable

    def _open(self) -> saved_model.SessionServable | saved_model.FunctionServable | TfLiteServable:
        if self._options.prefer_tflite:
            path = tflite.model_file(self.path)
            if path is not None:
                logs.log_event(
                    log, logging.INFO, "Loading TF Lite model (--prefer_tflite_model)",
                    model=self.model, version=self.version, path=path,
                )  # fmt: skip
                return TfLiteServable(path, self._options.tflite_interpreters)
        return saved_model.load(self.path, self._options)

    def _record(self, start: float, ok: bool) -> None:
        if self._on_load is not None:
            self._on_load(self.path, ok, (time.perf_counter() - start) * 1e6)

    def estimate_bytes(self) -> int:
        """TF Serving's estimate: the version folder's files' size x 1.2 (no padding)."""
        return int(folder_bytes(self.path) * RAM_MULTIPLIER)

    def unload(self) -> None:
        servable, self._servable = self._servable, None
        if servable is not None:
            servable.close()
        logs.log_event(
            log, logging.INFO, "Unloaded servable version", model=self.model, version=self.version
        )


def folder_bytes(path: str) -> int:
    """Total size of the files under ``path`` (any filesystem TensorFlow reads)."""
    import tensorflow as tf

    total = 0
    for folder, _dirs, files in tf.io.gfile.walk(path):
        for name in files:
            total += tf.io.gfile.stat(tf.io.gfile.join(folder, name)).length
    return total


def resident_bytes() -> int:
    """This process's resident memory (``/proc/self/statm``; 0 where there is none)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
