"""Polls ``--model_config_file`` and applies a changed, valid model list.

A file that no longer parses keeps the previous config (logged); an unchanged
one does nothing. ``run`` returns when ``stop`` is set.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from tensorserve.config.model_config import ModelConfigError, load_model_config_file
from tensorserve.config.models import ModelConfig
from tensorserve.errors import ServingError

log = logging.getLogger("tensorserve.server")
Apply = Callable[[tuple[ModelConfig, ...], float | None], None]


class ConfigFilePoller:
    """Re-reads ``path``; ``apply(configs, None)`` when the model list changed."""

    def __init__(self, path: str, current: tuple[ModelConfig, ...], apply: Apply) -> None:
        self._path = path
        self._last = current
        self._apply = apply

    def poll(self) -> None:
        """One check of the file."""
        try:
            configs = load_model_config_file(self._path)
        except ModelConfigError as exc:
            log.error("Ignoring the new model config (keeping the previous one): %s", exc)
            return
        if configs == self._last:
            return
        self._last = configs
        log.info("Model config file %s changed; reloading", self._path)
        try:
            self._apply(configs, None)
        except ServingError as exc:
            log.error("Model config reload finished with errors: %s", exc)

    def run(self, stop: threading.Event, interval_s: float) -> None:
        """``poll`` every ``interval_s`` until ``stop`` is set."""
        while not stop.wait(interval_s):
            self.poll()
