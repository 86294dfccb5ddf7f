"""Entry point of a child process: ``python -m tensorserve.processes.child ROLE PARENT_PID FD``.

Dies with its parent (``PR_SET_PDEATHSIG``), so a killed supervisor leaves no
orphans. A protocol worker never imports TensorFlow: the proto modules it
needs (``tensorflow.core.*``) are imported without running TensorFlow's
package initialiser, which would load the whole runtime (~600 MB, seconds).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import pickle
import signal
import sys
import types

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to SIGKILL this process when its parent exits."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the status pipe's EOF still ends us
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def lean_tensorflow_protos() -> None:
    """Make ``tensorflow.core.*`` proto imports work without importing TensorFlow itself."""
    if "tensorflow" in sys.modules:
        return
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        return
    package = types.ModuleType("tensorflow")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    sys.modules["tensorflow"] = package


def read_spec(fd: int) -> bytes:
    """The supervisor's pickled spec: an 8-byte big-endian length, then that many bytes.

    Read with ``os.read``, never through a buffered file: a buffer would also swallow the
    ``listen`` line the supervisor writes right after the spec to a replacement worker,
    which then never opens its ports.
    """
    header = _read_exactly(fd, 8)
    return _read_exactly(fd, int.from_bytes(header, "big"))


def _read_exactly(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError(f"the supervisor closed stdin with {left} of {size} bytes unread")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def main(argv: list[str]) -> int:
    role, parent_pid, status_fd = argv[0], int(argv[1]), int(argv[2])
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when to stop
    if role == "worker":
        lean_tensorflow_protos()
    from tensorserve.ipc.wire import enable_pickling
    from tensorserve.processes.spec import StatusPipe

    enable_pickling()
    spec = pickle.loads(read_spec(sys.stdin.fileno()))

    status = StatusPipe(status_fd)
    if role == "model":
        from tensorserve.runtime import tf_env

        tf_env.configure(spec.options.log_level)
        tf_env.install()
    if role == "worker":
        from tensorserve.protocols.worker import run_worker

        return run_worker(spec, status)
    from tensorserve.processes.model import run_model_process

    return run_model_process(spec, status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
