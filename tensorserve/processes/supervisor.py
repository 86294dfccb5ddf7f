"""The supervisor: starts, watches, restarts and stops the children; runs no request code.

Order at start: the model process first (it listens on the IPC socket at
once and loads the models), the workers beside it (they connect, then wait);
once the initial models are loaded (or at once, without
``--wait_for_initial_models``) the workers are told to bind the shared
ports. A child that dies is restarted (with a growing delay if it keeps dying
young); while the model process is away the workers answer UNAVAILABLE. On
SIGTERM/SIGINT: workers drain first, then the model process unloads; exit 0.
A start-up failure of any child stops everything and exits 1 with its message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from tensorserve.config.settings import Settings, StartupError
from tensorserve.ipc import wire
from tensorserve.options import ServerOptions
from tensorserve.processes.spec import MODEL, WORKER, ChildSpec, parse_status

log = logging.getLogger("tensorserve.server")
_TICK_S = 0.1
_YOUNG_S = 5.0  # a child that dies sooner than this after starting is restarted with backoff
_MAX_DELAY_S = 10.0
_KILL_SLACK_S = 10.0


@dataclass
class Child:
    """One running child and what the supervisor knows of it."""

    role: str
    index: int
    process: subprocess.Popen[bytes]
    status_fd: int
    started: float = field(default_factory=time.monotonic)
    buffer: bytes = b""
    listening: bool = False

    @property
    def name(self) -> str:
        return "model process" if self.role == MODEL else f"worker {self.index}"


class Supervisor:
    """``run`` returns the exit code; signals are handled only inside it."""

    def __init__(self, options: ServerOptions, settings: Settings, workers: int) -> None:
        self._options = options
        self._settings = settings
        self._num_workers = workers
        wire.enable_pickling()
        self._folder = tempfile.mkdtemp(prefix="tensorserve-")  # 0700: only we can connect
        self._ipc_path = os.path.join(self._folder, "model.sock")
        self._selector = selectors.DefaultSelector()
        self._children: dict[tuple[str, int], Child] = {}
        self._failures: dict[tuple[str, int], int] = {}
        self._due: dict[tuple[str, int], float] = {}  # restarts waiting for their delay
        self._stopping = False
        self._loaded = False  # the initial models are loaded (or failed): workers may bind
        self._ready_logged = False
        self._ports = (0, 0)

    # ---- running --------------------------------------------------------------------------
    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            return self._run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            shutil.rmtree(self._folder, ignore_errors=True)

    def _on_signal(self, _signum: int, _frame: Any) -> None:
        self._stopping = True

    def _run(self) -> int:
        self._spawn(MODEL, 0)
        for index in range(self._num_workers):
            self._spawn(WORKER, index)
        try:
            while not self._stopping:
                self._tick()
        except StartupError as exc:
            self._stop_all()
            raise exc
        log.info("Shutting down: finishing in-flight requests")
        self._stop_all()
        log.info("Shutdown complete")
        return 0

    def _tick(self) -> None:
        for key, _events in self._selector.select(_TICK_S):
            self._read_status(self._children_by_fd(key.fd))
        for child in list(self._children.values()):
            if child.process.poll() is not None:
                self._on_exit(child)
        now = time.monotonic()
        for (role, index), due in list(self._due.items()):
            if now >= due and not self._stopping:
                del self._due[(role, index)]
                self._spawn(role, index)

    # ---- children -------------------------------------------------------------------------
    def _spawn(self, role: str, index: int) -> None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        args = [sys.executable, "-m", "tensorserve.processes.child", role, str(os.getpid())]
        process = subprocess.Popen(
            [*args, str(write_fd)],
            stdin=subprocess.PIPE,
            pass_fds=(write_fd,),
            start_new_session=True,  # a terminal's Ctrl-C reaches only the supervisor
        )
        os.close(write_fd)
        spec = ChildSpec(role, self._options, self._settings, self._ipc_path, index)
        assert process.stdin is not None
        data = pickle.dumps(spec)
        process.stdin.write(len(data).to_bytes(8, "big") + data)  # child.read_spec's framing
        process.stdin.flush()
        child = Child(role, index, process, read_fd)
        self._children[(role, index)] = child
        self._selector.register(read_fd, selectors.EVENT_READ)
        if role == WORKER and self._loaded:
            _tell_listen(child)

    def _children_by_fd(self, fd: int) -> Child:
        return next(c for c in self._children.values() if c.status_fd == fd)

    def _read_status(self, child: Child) -> None:
        try:
            data = os.read(child.status_fd, 65536)
        except BlockingIOError:
            return
        child.buffer += data
        *lines, child.buffer = child.buffer.split(b"\n")
        for line in lines:
            self._on_status(child, parse_status(line))

    def _on_status(self, child: Child, status: dict[str, Any]) -> None:
        event = status.get("event")
        if event == "error":
            raise StartupError(str(status.get("message", "")))
        if event == "loaded" and not self._loaded:
            self._loaded = True
            for worker in self._workers():
                _tell_listen(worker)
        if event == "ipc-ready" and not self._options.wait_for_initial_models and not self._loaded:
            self._on_status(child, {"event": "loaded"})
        if event == "listening":
            child.listening = True
            self._ports = (int(status.get("grpc_port", 0)), int(status.get("rest_port", 0)))
            self._maybe_log_ready()

    def _maybe_log_ready(self) -> None:
        workers = self._workers()
        if self._ready_logged or not all(w.listening for w in workers):
            return
        self._ready_logged = True
        grpc_port, rest_port = self._ports
        log.info(
            "tensorserve ready: gRPC port %d, REST port %d, models %s, %d worker processes",
            grpc_port,
            rest_port,
            ", ".join(sorted(m.name for m in self._settings.models)),
            len(workers),
        )

    def _workers(self) -> list[Child]:
        return [c for c in self._children.values() if c.role == WORKER]

    def _on_exit(self, child: Child) -> None:
        self._forget(child)
        code = child.process.returncode
        if self._stopping:
            return
        if not self._ready_logged:
            raise StartupError(f"the {child.name} exited during start-up (exit code {code})")
        key = (child.role, child.index)
        young = time.monotonic() - child.started < _YOUNG_S
        self._failures[key] = self._failures.get(key, 0) + 1 if young else 0
        delay = min(_MAX_DELAY_S, 0.25 * 2 ** self._failures[key]) if young else 0.0
        log.error("The %s exited (exit code %s); restarting it", child.name, code)
        self._due[key] = time.monotonic() + delay

    def _forget(self, child: Child) -> None:
        self._children.pop((child.role, child.index), None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(child.status_fd)
        os.close(child.status_fd)
        if child.process.stdin is not None:
            child.process.stdin.close()

    # ---- stopping -------------------------------------------------------------------------
    def _stop_all(self) -> None:
        """Workers first (they drain), then the model process (it unloads)."""
        self._stopping = True
        self._due.clear()
        grace = self._options.shutdown_grace_seconds
        self._terminate(self._workers(), grace + _KILL_SLACK_S)
        self._terminate(list(self._children.values()), grace + _KILL_SLACK_S)

    def _terminate(self, children: list[Child], timeout_s: float) -> None:
        for child in children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for child in children:
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("The %s did not stop in time; killing it", child.name)
                child.process.kill()
                child.process.wait()
            self._forget(child)


def _tell_listen(worker: Child) -> None:
    stdin = worker.process.stdin
    if stdin is None or stdin.closed:
        return
    with contextlib.suppress(OSError):  # it died: the exit is handled on the next tick
        stdin.write(b"listen\n")
        stdin.flush()
        stdin.close()
