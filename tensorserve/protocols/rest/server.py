"""The REST server: uvicorn (httptools + uvloop) on a socket this module binds itself.

Connections get the limits of ``connection.py`` (header size and time, idle time,
connections per process).

Binding here, not in uvicorn, gives a clear error for a port in use and lets
several worker processes share one port (``SO_REUSEPORT``). Only uvicorn's
public ``Server.startup`` / ``main_loop`` / ``shutdown`` are used; signals
stay with the process owner. TLS key material is written to a private
temporary folder just long enough for the SSL context to read it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import ssl
import tempfile
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from tensorserve.config.settings import TlsConfig
from tensorserve.errors import PortInUse
from tensorserve.protocols.rest.connection import ConnectionLimits, protocol_class

log = logging.getLogger(__name__)
BACKLOG = 2048


@dataclass(frozen=True, slots=True)
class RestServerOptions:
    host: str
    port: int
    tls: TlsConfig | None = None
    reuse_port: bool = False
    grace_s: float = 30.0
    announce: bool = True  # log the "Exporting HTTP/REST API at" line (one worker does)
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)


class RestServer:
    """Owns one uvicorn server; ``start`` binds and serves, ``stop`` drains."""

    def __init__(self, app: Any, options: RestServerOptions) -> None:
        self._app = app
        self._options = options
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._main: asyncio.Task[None] | None = None
        self.bound_port = 0

    async def start(self) -> None:
        """Bind (OSError naming the address when it cannot) and start serving."""
        opts = self._options
        self._socket = bind_tcp(opts.host, opts.port, opts.reuse_port)
        self.bound_port = int(self._socket.getsockname()[1])
        config = uvicorn.Config(
            self._app,
            http=protocol_class(opts.limits),  # httptools, with header/idle/connection limits
            loop="none",
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            proxy_headers=False,  # no X-Forwarded-* rewriting: one middleware less per request
            timeout_graceful_shutdown=max(1, int(opts.grace_s)),
            backlog=BACKLOG,
            timeout_keep_alive=opts.limits.keepalive_timeout_s,  # type: ignore[arg-type]
        )
        if opts.tls is not None:
            _load_tls(config, opts.tls)
        else:
            config.load()
        self._server = uvicorn.Server(config)
        self._server.lifespan = config.lifespan_class(config)  # "off": what serve() would set
        await self._server.startup(sockets=[self._socket])
        self._main = asyncio.create_task(self._server.main_loop())
        level = logging.INFO if opts.announce else logging.DEBUG
        log.log(level, "Exporting HTTP/REST API at:%s:%d ...", opts.host, self.bound_port)

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish (within the grace period)."""
        server = self._server
        if server is None:
            return
        server.should_exit = True
        if self._main is not None:
            await self._main
        await server.shutdown(sockets=[self._socket] if self._socket else None)


def bind_tcp(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A listening, non-blocking TCP socket on ``host:port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise PortInUse("REST", host, port, str(exc)) from None
    return sock


def _load_tls(config: uvicorn.Config, tls: TlsConfig) -> None:
    folder = tempfile.mkdtemp(prefix="tensorserve-tls-")
    try:
        files = {}
        for name, pem in (
            ("key", tls.server_key),
            ("cert", tls.server_cert),
            ("ca", tls.custom_ca),
        ):
            if pem:
                path = os.path.join(folder, f"{name}.pem")
                with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
                    fh.write(pem)
                files[name] = path
        config.ssl_keyfile = files["key"]
        config.ssl_certfile = files["cert"]
        config.ssl_ca_certs = files.get("ca")
        if tls.client_verify:
            config.ssl_cert_reqs = ssl.CERT_REQUIRED
        config.load()  # reads the files into the SSL context
    finally:
        shutil.rmtree(folder, ignore_errors=True)
