"""Text-format config files, failing with TF Serving's words.

``tensorflow_model_server`` reports a file that does not parse with protobuf's line
``Error parsing text-format <type>: <line>:<column>: <reason>`` and then
``Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file: '<path>'``;
scripts and tests grep for both. :class:`TextProtoError` carries what those lines need,
and its ``str()`` is tensorserve's own explanation, printed after them.
"""

from __future__ import annotations

import errno
from typing import TypeVar

from google.protobuf import descriptor_pool, text_format
from google.protobuf.message import Message

M = TypeVar("M", bound=Message)


class TextProtoError(ValueError):
    """A text proto that does not parse; ``line``/``column`` are 1-based (0: unknown)."""

    def __init__(
        self, type_name: str, source: str, line: int, column: int, reason: str, context: str = ""
    ) -> None:
        self.type_name = type_name
        self.source = source
        self.line = line
        self.column = column
        self.reason = reason
        where = f" line {line}, column {column}" if line else ""
        shown = context.strip()
        shown = f" (in: {shown[:120]}{'...' if len(shown) > 120 else ''})" if shown else ""
        super().__init__(f"{source} is not a valid {type_name} text proto:{where}: {reason}{shown}")

    @property
    def protobuf_line(self) -> str:
        """protobuf's own report, as TF Serving's log shows it."""
        where = f"{self.line}:{self.column}: " if self.line else ""
        return f"Error parsing text-format {self.type_name}: {where}{self.reason}"

    @property
    def status(self) -> str:
        """TF Serving's status for it (``ParseProtoTextFile``)."""
        return f"INVALID_ARGUMENT: Invalid protobuf file: '{self.source}'"


def parse(
    text: str, message: M, source: str, pool: descriptor_pool.DescriptorPool | None = None
) -> M:
    """``text_format.Parse`` into ``message``; :class:`TextProtoError` when it fails."""
    try:
        text_format.Parse(text, message, descriptor_pool=pool)
    except text_format.ParseError as exc:
        line, column = exc.GetLine() or 0, exc.GetColumn() or 0
        lines = text.splitlines()
        context = lines[line - 1] if 0 < line <= len(lines) else ""
        raise TextProtoError(
            message.DESCRIPTOR.full_name, source, line, column, _reason(str(exc), context), context
        ) from None
    return message


def _reason(message: str, context: str) -> str:
    """protobuf's reason alone: without Python's ``l:c : `` and quoted-line prefixes."""
    prefix = message.split(" : ", 1)
    if len(prefix) == 2 and prefix[0].replace(":", "").isdigit():
        message = prefix[1]
    quoted = f"'{context}': "
    return message[len(quoted) :] if context and message.startswith(quoted) else message


def read(path: str) -> str:
    """A config file's text; OSError (with its errno) when it cannot be read."""
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def os_error_status(exc: OSError) -> str:
    """TF Serving's status for a file it cannot read: ``NOT_FOUND: <path>; <reason>``."""
    code = {errno.ENOENT: "NOT_FOUND", errno.EACCES: "PERMISSION_DENIED"}.get(
        exc.errno or 0, "UNKNOWN"
    )
    return f"{code}: {exc.filename}; {exc.strerror}"
