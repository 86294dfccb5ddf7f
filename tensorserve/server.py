"""Composition root: flags -> settings -> one process, or a supervisor with children.

``run`` parses every config file at the edge (a bad one exits non-zero with
TF Serving's "Failed to start server" line before anything starts), then:

* ``--num_workers=1``: one process holds the models (``ModelLifecycle``) and
  serves REST and gRPC (``Frontend``) over the in-process ``Service``;
* more workers: the ports are reserved here first (a port in use is the same
  start-up error), then ``processes.Supervisor`` runs one model process and
  N protocol workers sharing the ports.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tensorserve import logs
from tensorserve.config.settings import Settings, StartupError, load_settings
from tensorserve.errors import PortInUse
from tensorserve.options import ServerOptions

log = logging.getLogger("tensorserve.server")


class SingleProcessServer:
    """Models and protocols in one process; ``serve`` returns the exit code."""

    def __init__(self, options: ServerOptions, settings: Settings) -> None:
        from tensorserve.lifecycle import ModelLifecycle  # imports TensorFlow
        from tensorserve.protocols.frontend import Frontend

        self.options = options
        self.settings = settings
        self.lifecycle = ModelLifecycle(options, settings)
        self.frontend = Frontend(options, settings, self.lifecycle.service)

    async def serve(self) -> int:
        """Run until SIGTERM/SIGINT."""
        self.lifecycle.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        initial: asyncio.Future[None] = loop.run_in_executor(None, self.lifecycle.initial_load)
        if self.options.wait_for_initial_models:
            stopping: asyncio.Future[bool] = asyncio.ensure_future(stop.wait())
            either: list[asyncio.Future[Any]] = [initial, stopping]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
        if not stop.is_set():
            await self.frontend.start()
            await initial
            self._print_ready()
            await stop.wait()
        log.info("Shutting down: finishing in-flight requests")
        grace = self.options.shutdown_grace_seconds
        await self.frontend.stop(grace)
        await loop.run_in_executor(None, self.lifecycle.stop, grace)
        log.info("Shutdown complete")
        return 0

    def _print_ready(self) -> None:
        log.info(
            "tensorserve ready: gRPC port %d, REST port %d, models %s",
            self.frontend.grpc_port,
            self.frontend.rest_port,
            ", ".join(self.lifecycle.core.model_names()),
        )


@contextmanager
def _startup_errors(json_logs: bool) -> Iterator[None]:
    """TF Serving's "Failed to start server. Error: ..." line (a JSON record with JSON logs)."""
    try:
        yield
    except StartupError as exc:
        lines = [*exc.before, f"Failed to start server. Error: {exc}"]
        if exc.after:
            lines.append(f"tensorserve: {exc.after}")
        for line in lines:
            if json_logs:
                log.critical(line)
            else:
                print(line, file=sys.stderr)
        raise SystemExit(1) from exc


@contextmanager
def reserved_ports(options: ServerOptions) -> Iterator[None]:
    """Hold the TCP ports for the workers; StartupError when one is in use.

    Each port is first bound plainly (fails if anyone holds it), then held with
    ``SO_REUSEPORT`` without listening: only sockets of this user with the same
    option (our workers) can join it, and connections go to listening ones only.
    """
    held: list[socket.socket] = []
    try:
        for name, port in (("gRPC", options.port), ("REST", options.rest_api_port)):
            if port:
                held.append(_hold(name, options.bind_address, port))
        yield
    finally:
        for sock in held:
            sock.close()


def _hold(name: str, host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock: socket.socket | None = None
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port))
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:  # in use, or an address this machine cannot bind
        if sock is not None:
            sock.close()
        raise port_error(PortInUse(name, host, port, str(exc))) from None
    return sock


EXPOSED = "calls that change what is served are reachable without a token"


def warn_no_effect(options: ServerOptions, settings: Settings) -> None:
    """One warning per flag, or ``--platform_config_file`` field, that changes nothing here."""
    for line in no_effect(options):
        log.warning(line)
    for name in settings.platform.ignored if settings.platform is not None else ():
        log.warning(
            "--platform_config_file: SessionBundleConfig.%s has no effect in tensorserve", name
        )


_NO_EFFECT = {
    "mixed_precision": "mixed precision graph rewrites are not applied on this runtime",
    "xla_cpu_compilation_enabled": "models run without XLA JIT compilation",
    "xla_gpu_compilation_enabled": "models run without XLA JIT compilation",
    "skip_initialize_tpu": "tensorserve has no TPU support to initialise",
    "thread_pool_factory_config_file": "there are no custom thread pools to configure",
    "remove_unused_fields_from_bundle_metagraph": "the MetaGraphDef is not kept after loading",
}


def no_effect(options: ServerOptions) -> list[str]:
    """One warning per TF Serving flag set to a non-default value that changes nothing here."""
    defaults = ServerOptions()
    return [
        f"--{name}={_flag_text(getattr(options, name))} has no effect in tensorserve: {why}"
        for name, why in _NO_EFFECT.items()
        if getattr(options, name) != getattr(defaults, name)
    ]


def _flag_text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def warn_exposure(options: ServerOptions, settings: Settings) -> None:
    """Log a warning when calls that change the served models (gRPC ReloadConfig; repository
    load/unload with --enable_model_management) answer anyone on a non-loopback address."""
    if settings.admin_token is not None or settings.auth_token is not None:
        return
    if _loopback(options.bind_address):
        return
    calls = []
    if options.port:
        calls.append(f"gRPC ReloadConfig on port {options.port}")
    if options.enable_model_management:
        calls.append("repository load/unload (REST and gRPC)")
    if calls:
        log.warning(
            "%s on %s: %s. Set --admin_token_file (or --auth_token_file), or bind to "
            "127.0.0.1 with --bind_address",
            EXPOSED.capitalize(),
            options.bind_address,
            "; ".join(calls),
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(options: ServerOptions) -> int:
    """Parse settings, then serve until a signal stops the server."""
    logs.configure_logging(
        options.log_format,  # type: ignore[arg-type]
        options.log_level,
        access_log=options.access_log,
    )
    workers = options.worker_count()
    if workers > 1:
        from tensorserve.processes.child import lean_tensorflow_protos

        lean_tensorflow_protos()  # the supervisor holds no model: keep TensorFlow out of it
    with _startup_errors(options.log_format == "json"):
        settings = load_settings(options)
        warn_no_effect(options, settings)
        options = settings.effective(options)
        warn_exposure(options, settings)
        if workers > 1:
            from tensorserve.processes.supervisor import Supervisor

            with reserved_ports(options):
                return Supervisor(options, settings, workers).run()
        server = SingleProcessServer(options, settings)
        try:
            import uvloop

            return uvloop.run(server.serve())
        except PortInUse as exc:
            raise port_error(exc) from exc
        except OSError as exc:
            raise StartupError(str(exc)) from exc


def port_error(exc: PortInUse) -> StartupError:
    """TF Serving's lines for a port in use, then ours."""
    before, status = exc.tf_serving_lines()
    return StartupError(status, before=before, after=str(exc))
