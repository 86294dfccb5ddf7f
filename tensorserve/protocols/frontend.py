"""Frontend: the REST and gRPC servers of one process, over one ``ServiceAPI``.

A single-process server runs one Frontend over the in-process ``Service``; each
protocol worker of a multi-process server runs one over ``ipc.RemoteService``,
sharing the ports with its siblings (``reuse_port``). gRPC health follows the
service's readiness.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from tensorserve import logs
from tensorserve.config.settings import Settings
from tensorserve.options import ServerOptions
from tensorserve.protocols.auth import Tokens
from tensorserve.protocols.grpc.oip import OipServicer
from tensorserve.protocols.grpc.profiler import ProfilerProxy
from tensorserve.protocols.grpc.server import GrpcOptions, GrpcServer
from tensorserve.protocols.grpc.servicers import ModelServicer, PredictionServicer
from tensorserve.protocols.oip import infer
from tensorserve.protocols.rest.app import RestApp, RestOptions
from tensorserve.protocols.rest.connection import ConnectionLimits
from tensorserve.protocols.rest.server import RestServer, RestServerOptions
from tensorserve.service.api import ServiceAPI

log = logging.getLogger("tensorserve.server")


@dataclass(frozen=True, slots=True)
class Placement:
    """Where this frontend serves: shared ports, and whether it owns the gRPC Unix socket."""

    reuse_port: bool = False
    unix_socket: bool = True
    announce: bool = True  # the one start-up line per port (worker 0 of several)


class Frontend:
    """``start`` opens the configured ports; ``stop`` drains them within the grace period."""

    def __init__(
        self,
        options: ServerOptions,
        settings: Settings,
        service: ServiceAPI,
        placement: Placement = Placement(),
    ) -> None:
        self._options = options
        self._settings = settings
        self._service = service
        self._placement = placement
        self.grpc: GrpcServer | None = None
        self.rest: RestServer | None = None
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def grpc_port(self) -> int:
        return self.grpc.bound_port if self.grpc else 0

    @property
    def rest_port(self) -> int:
        return self.rest.bound_port if self.rest else 0

    async def start(self) -> None:
        """Bind and serve; OSError naming the address when a port cannot be bound."""
        opts = self._options
        socket_path = opts.grpc_socket_path if self._placement.unix_socket else ""
        if opts.port or socket_path:
            self.grpc = self._grpc_server(socket_path)
            await self.grpc.set_serving(False)
            await self.grpc.start()
            self._service.on_readiness(self._on_readiness)
        if opts.rest_api_port:
            self.rest = RestServer(self._rest_app(), self._rest_options())
            await self.rest.start()

    def _grpc_server(self, socket_path: str) -> GrpcServer:
        opts, settings = self._options, self._settings
        return GrpcServer(
            GrpcOptions(
                port=opts.port,
                host=opts.bind_address,
                socket_path=socket_path,
                channel_arguments=settings.channel_arguments,
                tls=settings.tls,
                enable_health=opts.enable_grpc_healthcheck_service,
                tensor_content_outputs=opts.enable_serialization_as_tensor_content,
                reuse_port=self._placement.reuse_port,
                announce=self._placement.announce,
                tokens=self._tokens(),
            ),
            PredictionServicer(self._service, opts.enable_serialization_as_tensor_content),
            ModelServicer(self._service),
            OipServicer(self._service, infer.extensions(opts.enable_model_management)),
            ProfilerProxy(self._service) if opts.enable_profiler else None,
        )

    def _rest_app(self) -> RestApp:
        opts, metrics = self._options, self._settings.metrics
        timeout = opts.rest_api_timeout_in_ms / 1000 if opts.rest_api_timeout_in_ms > 0 else None
        return RestApp(
            self._service,
            RestOptions(
                timeout_s=timeout,
                enable_cors=opts.rest_api_enable_cors_support,
                max_body_bytes=opts.rest_api_max_body_bytes,
                max_buffered_body_bytes=opts.rest_api_max_buffered_body_bytes,
                body_timeout_s=opts.rest_api_body_timeout_seconds,
                metrics_path=metrics.path if metrics.enabled else None,
                dashboard=opts.enable_dashboard,
                tokens=self._tokens(),
                model_management=opts.enable_model_management,
            ),
            access_log=logs.access_log if opts.access_log else None,
        )

    def _tokens(self) -> Tokens:
        return Tokens(self._settings.auth_token, self._settings.admin_token)

    def _rest_options(self) -> RestServerOptions:
        opts = self._options
        return RestServerOptions(
            host=opts.bind_address,
            port=opts.rest_api_port,
            tls=self._settings.tls,
            reuse_port=self._placement.reuse_port,
            grace_s=opts.shutdown_grace_seconds,
            announce=self._placement.announce,
            limits=ConnectionLimits(
                max_header_bytes=opts.rest_api_max_header_bytes,
                header_timeout_s=opts.rest_api_header_timeout_seconds,
                keepalive_timeout_s=opts.rest_api_keepalive_timeout_seconds,
                max_connections=opts.rest_api_max_connections,
            ),
        )

    def _on_readiness(self, ready: bool) -> None:
        grpc_server = self.grpc
        if grpc_server is None:
            return
        task = asyncio.ensure_future(grpc_server.set_serving(ready))
        self._pending.add(task)  # keep a reference until it is done
        task.add_done_callback(self._pending.discard)

    async def stop(self, grace_s: float) -> None:
        """Stop accepting; in-flight calls finish within ``grace_s``."""
        stops = []
        if self.rest is not None:
            stops.append(self.rest.stop())
        if self.grpc is not None:
            stops.append(self.grpc.stop(grace_s))
        await asyncio.gather(*stops, return_exceptions=True)
