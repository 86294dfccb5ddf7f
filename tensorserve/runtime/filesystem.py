"""``tf.io.gfile`` behind the source's FileSystem protocol, for URIs (gs://, s3://, ...)."""

from __future__ import annotations

import posixpath

import tensorflow as tf

from tensorserve.sources.filesystem import FileSystem, Fingerprint, LocalFileSystem

_LOCAL = LocalFileSystem()


class GFileSystem:
    """FileSystem over ``tf.io.gfile`` (whatever schemes TensorFlow's plugins register)."""

    def listdir(self, path: str) -> list[str]:
        return [name.rstrip("/") for name in tf.io.gfile.listdir(path)]

    def isdir(self, path: str) -> bool:
        return bool(tf.io.gfile.isdir(path))

    def exists(self, path: str) -> bool:
        return bool(tf.io.gfile.exists(path))

    def join(self, *parts: str) -> str:
        return posixpath.join(*parts)

    def fingerprint(self, path: str) -> tuple[Fingerprint, float]:
        entries: list[tuple[str, int, int]] = []
        for root, _dirs, files in tf.io.gfile.walk(path):
            for name in files:
                full = posixpath.join(root, name)
                stat = tf.io.gfile.stat(full)
                entries.append((posixpath.relpath(full, path), stat.length, stat.mtime_nsec))
        newest = max((e[2] for e in entries), default=0) / 1e9
        return tuple(sorted(entries)), newest


def filesystem_for(path: str) -> FileSystem:
    """Local paths use ``os``; anything with a scheme goes through gfile."""
    return GFileSystem() if "://" in path else _LOCAL
