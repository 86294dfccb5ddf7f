"""TensorFlow's profiler server, started on the first capture and kept for the process.

TensorFlow's pip wheel has the C++ ``ProfilerService`` (``tf.profiler.experimental.server``)
but no Python stubs for it, so the gRPC frontends pass ``/tensorflow.ProfilerService/*``
calls through to this server byte for byte (``protocols/grpc/profiler.py``). It traces the
process it runs in: the one that runs the models. TensorFlow binds it to every interface
(``[::]:port``; it takes no address), so it starts only when somebody captures a profile,
on a port the kernel picks, and stays (TensorFlow cannot stop it).
"""

from __future__ import annotations

import socket
import threading

_lock = threading.Lock()
_port = 0


def server_port() -> int:
    """The profiler server's port, starting it first if needed."""
    global _port
    with _lock:
        if not _port:
            import tensorflow as tf

            port = _free_port()
            tf.profiler.experimental.server.start(port)
            _port = port
        return _port


def _free_port() -> int:
    with socket.socket(socket.AF_INET6 if socket.has_ipv6 else socket.AF_INET) as probe:
        probe.bind(("::" if socket.has_ipv6 else "", 0))
        return int(probe.getsockname()[1])
