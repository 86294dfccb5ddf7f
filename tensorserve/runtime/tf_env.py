"""A quiet TensorFlow: its start-up noise kept off stderr unless a debug log level asks.

TensorFlow prints, on every start on a CPU-only machine, lines that look like failures
but are not: absl's ``All log messages before absl::InitializeLog() ...``, ``Could not
find cuda drivers``, ``failed call to cuInit`` (at error level), the oneDNN and
AVX/``cpu_feature_guard`` notices. This module (which never imports TensorFlow itself)
sets TensorFlow up at the point of its first import:

* ``TF_CPP_MIN_LOG_LEVEL`` (read by TensorFlow's C++ once, when it is first imported):
  ``0`` at ``--log_level=debug``, else ``2`` (C++ errors only: TensorFlow's warnings
  repeat each failed request's error, already returned to the client). A value the user
  set in the environment always wins.
* the import itself and the first device discovery (where CUDA is probed) run with
  file descriptor 2 captured: the known notices above are kept as DEBUG records of the
  ``tensorserve.runtime.tensorflow`` logger (shown at ``--log_level=debug``); anything
  else TensorFlow printed is written back to stderr unchanged, so a real problem stays
  visible.
* TensorFlow's Python logger (deprecation notices) at ERROR, DEBUG at debug level.

TensorFlow is imported first by whichever module needs it (its protos import the
package), so :func:`install` registers a one-shot import hook; the ``tensorserve``
package calls it. :func:`configure` sets the level before that import (entry points
that know ``--log_level`` early); it also works after, for the Python-side settings.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Final

log = logging.getLogger("tensorserve.runtime.tensorflow")

CPP_LEVEL_ENV: Final = "TF_CPP_MIN_LOG_LEVEL"
# Lines TensorFlow prints on a healthy CPU-only start (and their continuation lines).
NOISE: Final = re.compile(
    "|".join(
        [
            r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
            r"cudart_stub\.cc:\d+\] Could not find cuda drivers",
            r"failed call to cuInit",
            r"cuda_(?:platform|driver|diagnostics)\.cc:\d+\]",
            r"Unable to register cu(?:DNN|FFT|BLAS) factory",
            r"computation placer already registered",
            r"TF-TRT Warning: Could not find TensorRT",
            r"cpu_feature_guard\.cc:\d+\]",
            r"To enable the following instructions: .*rebuild TensorFlow",
            r"oneDNN custom operations are on",
            r"mlir_graph_optimization_pass\.cc:\d+\] MLIR V1 optimization pass is not enabled",
        ]
    )
)

_lock = threading.RLock()
_level = logging.INFO
_explicit = False  # configure() was called; otherwise the tensorserve logger's level is used
_configured_by_us: str | None = None  # the TF_CPP_MIN_LOG_LEVEL value this module set
_devices_ready = False
_held: list[str] = []  # captured notices, logged once logging is configured


def configure(log_level: str | int = "INFO") -> None:
    """Use ``log_level`` (a name such as ``debug`` or a ``logging`` number) for TensorFlow.

    Before TensorFlow's first import this also sets its C++ verbosity; afterwards only
    the Python-side logger follows (TensorFlow reads its C++ level once).
    """
    global _level, _explicit
    with _lock:
        _level = log_level if isinstance(log_level, int) else _parse(log_level)
        _explicit = True
        if "tensorflow" not in sys.modules:
            _set_cpp_level()
        else:
            _python_logger()


def verbose() -> bool:
    """Whether TensorFlow's own notices are shown as printed (debug, or the user's C++ 0)."""
    if _level <= logging.DEBUG:
        return True
    return _configured_by_us is None and os.environ.get(CPP_LEVEL_ENV) == "0"


def install() -> None:
    """Register the one-shot hook that prepares TensorFlow's first import (idempotent)."""
    with _lock:
        if "tensorflow" in sys.modules or any(isinstance(f, _Hook) for f in sys.meta_path):
            return
        sys.meta_path.insert(0, _Hook())


def init_devices() -> None:
    """Discover devices once (CUDA is probed here) with the notices captured.

    Called before the first model loads; also logs the notices held from the import,
    now that logging is configured.
    """
    global _devices_ready, _level
    with _lock:
        if _devices_ready:
            return
        if not _explicit:  # logging is configured by now: follow --log_level
            _level = logging.getLogger("tensorserve").getEffectiveLevel()
        import tensorflow as tf

        with captured_stderr():
            tf.config.list_physical_devices()
        _devices_ready = True
        _python_logger()
        held, _held[:] = list(_held), []
    for line in held:
        log.debug("%s", line)


@contextlib.contextmanager
def captured_stderr() -> Iterator[None]:
    """Run the block with fd 2 captured; notices held, everything else written back."""
    if verbose():
        yield
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep quiet
        yield
        return
    try:
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                tmp.seek(0)
                text = tmp.read().decode("utf-8", errors="replace")
                keep = split_noise(text.splitlines())
                if keep:
                    os.write(2, ("\n".join(keep) + "\n").encode())
    finally:
        os.close(saved)


def split_noise(lines: Sequence[str]) -> list[str]:
    """Hold the known notices (see :data:`NOISE`); return the other lines, in order."""
    keep: list[str] = []
    noise = False
    for line in lines:
        if NOISE.search(line):
            noise = True
        elif not line[:1].isspace():
            noise = False  # a new record that is not a notice (only indented lines continue one)
        if noise:
            _held.append(line)
        elif line.strip():
            keep.append(line)
    return keep


def _parse(name: str) -> int:
    level = logging.getLevelName(name.strip().upper())
    return level if isinstance(level, int) else logging.INFO


def _set_cpp_level() -> None:
    global _configured_by_us
    current = os.environ.get(CPP_LEVEL_ENV)
    if current is not None and current != _configured_by_us:
        return  # the user's choice
    wanted = "0" if _level <= logging.DEBUG else "2"
    os.environ[CPP_LEVEL_ENV] = wanted
    _configured_by_us = wanted


def _python_logger() -> None:
    logging.getLogger("tensorflow").setLevel(
        logging.DEBUG if _level <= logging.DEBUG else logging.ERROR
    )


class _Hook(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once: its import runs prepared and with stderr captured."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, real: importlib.abc.Loader) -> None:
        self._real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with _lock:
            _set_cpp_level()
        try:
            with captured_stderr():
                self._real.exec_module(module)
            _python_logger()
        finally:
            if module.__spec__ is not None:
                module.__spec__.loader = self._real
            module.__loader__ = self._real


def tensorflow_version() -> str:
    """The installed TensorFlow's version, from its package metadata (no import)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tensorflow")
    except PackageNotFoundError:
        return "unknown"
