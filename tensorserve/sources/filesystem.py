"""FileSystemStoragePathSource: finds numbered version folders under each base path.

Each :meth:`poll` lists every model's ``base_path``, keeps children whose name
is an unsigned integer (``00000123`` -> 123; anything else is ignored), applies
the model's version policy and reports the full aspired set through the
callback (omission means unload). One model's failure (missing base path,
unreadable folder) is logged and leaves that model's previous set in place;
it never stops the others. A version folder is reported only once it looks
complete: it holds ``saved_model.pb`` (or ``.pbtxt``) and either its newest
file is older than ``settle_s`` or nothing in it changed for ``settle_s``.
"Newest" counts a file's status-change time too, so a copy that preserves
modification times (``cp -a``, ``rsync -a``, ``shutil.copytree``) still looks
new while it is being written.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from tensorserve.config.models import ModelConfig

log = logging.getLogger(__name__)
_VERSION = re.compile(r"^\d+$")
_SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt", "model.tflite")
Fingerprint = tuple[tuple[str, int, int], ...]
AspiredCallback = Callable[[ModelConfig, dict[int, str]], None]


class FileSystem(Protocol):
    """The few file operations the source needs; local paths or URIs."""

    def listdir(self, path: str) -> list[str]: ...

    def isdir(self, path: str) -> bool: ...

    def exists(self, path: str) -> bool: ...

    def join(self, *parts: str) -> str: ...

    def fingerprint(self, path: str) -> tuple[Fingerprint, float]:
        """Files below ``path`` as (relative path, size, mtime_ns), and the newest change (s)."""
        ...


class LocalFileSystem:
    """:class:`FileSystem` over ``os`` for plain paths."""

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def join(self, *parts: str) -> str:
        return os.path.join(*parts)

    def fingerprint(self, path: str) -> tuple[Fingerprint, float]:
        entries: list[tuple[str, int, int]] = []
        newest_ns = 0
        for root, _dirs, files in os.walk(path):
            try:  # folders count too: one just created, still empty, is new
                st = os.stat(root)
                newest_ns = max(newest_ns, st.st_mtime_ns, st.st_ctime_ns)
            except OSError:
                continue
            for name in files:
                full = os.path.join(root, name)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                entries.append((os.path.relpath(full, path), st.st_size, st.st_mtime_ns))
                newest_ns = max(newest_ns, st.st_mtime_ns, st.st_ctime_ns)
        return tuple(sorted(entries)), newest_ns / 1e9


def parse_version(name: str) -> int | None:
    """The version number a folder name stands for, or None if it is not one."""
    return int(name) if _VERSION.match(name) else None


class FileSystemSource:
    """Polls base paths and reports aspired versions; see the module docstring."""

    def __init__(
        self,
        filesystems: Callable[[str], FileSystem],
        on_aspired: AspiredCallback,
        *,
        settle_s: float = 2.0,
        require_stable: bool = True,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._filesystems = filesystems
        self._on_aspired = on_aspired
        self._settle_s = settle_s
        self._require_stable = require_stable
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()  # one poll at a time (poll thread vs. reloads)
        self._models: dict[str, ModelConfig] = {}
        self._seen: dict[str, tuple[Fingerprint, float]] = {}  # path -> (files, first seen)
        self._complete: set[str] = set()
        self._last_problem: dict[str, str] = {}

    def set_models(self, configs: Sequence[ModelConfig]) -> None:
        """Replace the served models; dropped models are reported with an empty set."""
        with self._lock:
            dropped = [c for n, c in self._models.items() if n not in {c.name for c in configs}]
            self._models = {c.name: c for c in configs}
        for config in dropped:
            self._on_aspired(config, {})

    def poll(self) -> None:
        """One pass over every model; never raises for one model's problem."""
        with self._poll_lock:
            self._poll()

    def _poll(self) -> None:
        with self._lock:
            models = list(self._models.values())
        for config in models:
            try:
                found = self._aspired(config)
            except Exception as exc:
                self._problem(config, f"Could not poll base path {config.base_path}: {exc}")
                continue
            if found is not None:
                with self._lock:
                    current = self._models.get(config.name) is config
                if current:
                    self._on_aspired(config, found)

    def run(self, stop: threading.Event, interval_s: float) -> None:
        """Poll every ``interval_s`` seconds until ``stop`` is set."""
        while not stop.wait(interval_s):
            self.poll()

    def _aspired(self, config: ModelConfig) -> dict[int, str] | None:
        fs = self._filesystems(config.base_path)
        if not fs.isdir(config.base_path):
            self._problem(  # TF Serving's words, then what happens here
                config,
                "FileSystemStoragePathSource encountered a filesystem access error: Could not "
                f"find base path {config.base_path} for servable {config.name} with error "
                f"NOT_FOUND: {config.base_path} not found. The other models are served; this "
                "path is polled again (logged once until it changes)",
            )
            return None
        versions = self._versions(fs, config)
        self._forget_removed(fs.join(config.base_path, ""), set(versions.values()))
        if not versions:
            self._problem(
                config,
                f"No versions of servable {config.name} found under base path "
                f"{config.base_path}. Did you forget to name your leaf directory as a number "
                "(eg. '/1/')?",
            )
            return {}
        self._last_problem.pop(config.name, None)
        complete = {v: p for v, p in versions.items() if self._is_complete(fs, config, p)}
        return {v: complete[v] for v in config.policy.select(complete)}

    def _versions(self, fs: FileSystem, config: ModelConfig) -> dict[int, str]:
        versions: dict[int, str] = {}
        for child in sorted(fs.listdir(config.base_path)):
            child = child.rstrip("/")
            number = parse_version(child)
            path = fs.join(config.base_path, child)
            if number is None or not fs.isdir(path):
                continue
            if number in versions:
                log.warning(
                    "Servable %s: folders %s and %s both name version %d; using %s",
                    config.name,
                    versions[number],
                    path,
                    number,
                    versions[number],
                )
                continue
            versions[number] = path
        return versions

    def _forget_removed(self, prefix: str, present: set[str]) -> None:
        """Drop what is known of deleted folders: one copied in again is checked afresh."""
        for path in [p for p in (*self._complete, *self._seen) if p.startswith(prefix)]:
            if path not in present:
                self._complete.discard(path)
                self._seen.pop(path, None)

    def _is_complete(self, fs: FileSystem, config: ModelConfig, path: str) -> bool:
        if path in self._complete:
            return True
        has_model = any(fs.exists(fs.join(path, f)) for f in _SAVED_MODEL_FILES)
        if not has_model and not self._require_stable:
            return True  # polled once: let the load fail with the reason, as TF Serving
        if not has_model and path not in self._seen:
            log.info("Servable %s: %s has no saved_model.pb yet; waiting", config.name, path)
        ok = True
        if self._require_stable:
            fingerprint, newest = fs.fingerprint(path)
            now = self._wall_clock()
            seen = self._seen.get(path)
            if seen is None or seen[0] != fingerprint:
                seen = self._seen[path] = (fingerprint, now)
            ok = now - min(newest, seen[1]) >= self._settle_s
            # A folder that stopped changing without a saved_model.pb is not being copied:
            # aspire it so its load fails and the status says why (e.g. a TFLite-only folder).
        if ok:
            self._complete.add(path)
            self._seen.pop(path, None)
        return ok

    def _problem(self, config: ModelConfig, message: str) -> None:
        if self._last_problem.get(config.name) != message:
            log.warning(message)
            self._last_problem[config.name] = message
        else:
            log.debug(message)
