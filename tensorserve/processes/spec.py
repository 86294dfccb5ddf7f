"""What the supervisor hands a child process (pickled on its stdin) and hears back from it.

A child writes one JSON line per event to its status pipe: ``ipc-ready`` and
``loaded`` (model process), ``listening`` with its ports (worker), ``error``
with a start-up failure's message (either).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from typing import Any

from tensorserve.config.settings import Settings
from tensorserve.options import ServerOptions

MODEL = "model"
WORKER = "worker"


@dataclass(frozen=True, slots=True)
class ChildSpec:
    role: str  # MODEL or WORKER
    options: ServerOptions
    settings: Settings
    ipc_path: str  # the model process's Unix socket
    index: int = 0  # worker number (worker 0 also serves --grpc_socket_path)


class StatusPipe:
    """The child's end of its status pipe (write-only, one JSON line per event)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def send(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **fields}) + "\n"
        with contextlib.suppress(OSError):  # the supervisor is gone; PDEATHSIG ends us
            os.write(self._fd, line.encode())


def parse_status(line: bytes) -> dict[str, Any]:
    """One status line as a dict (``{"event": "garbled"}`` when it is not JSON)."""
    try:
        value = json.loads(line)
    except ValueError:
        return {"event": "garbled", "line": line.decode(errors="replace")}
    return value if isinstance(value, dict) else {"event": "garbled"}
