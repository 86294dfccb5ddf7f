"""The grpc.aio server: ports, message limits, channel arguments, TLS and health."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tensorserve.config.settings import TlsConfig
from tensorserve.errors import PortInUse
from tensorserve.protocols.auth import Tokens
from tensorserve.protocols.grpc.interceptor import ServingInterceptor
from tensorserve.protocols.grpc.oip import OipServicer
from tensorserve.protocols.grpc.oip import add_to_server as add_oip
from tensorserve.protocols.grpc.profiler import ProfilerProxy
from tensorserve.protocols.grpc.servicers import ModelServicer, PredictionServicer

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 2**31 - 1  # INT32_MAX both ways, as TF Serving
HEALTH_SERVICES = ("", "tensorflow.serving.ModelService", "tensorflow.serving.PredictionService")


@dataclass(frozen=True, slots=True)
class GrpcOptions:
    port: int = 8500
    host: str = "0.0.0.0"
    socket_path: str = ""
    channel_arguments: tuple[tuple[str, str | int], ...] = ()
    max_concurrent_rpcs: int | None = None
    tls: TlsConfig | None = None
    enable_health: bool = False
    tensor_content_outputs: bool = False
    reuse_port: bool = False  # several worker processes share the port (SO_REUSEPORT)
    announce: bool = True  # log the "Running gRPC ModelServer at" line (one worker does)
    tokens: Tokens = field(default_factory=Tokens)  # bearer tokens; grpc.health.v1 stays open


def credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """Server credentials; ``client_verify`` requires and checks client certificates."""
    return grpc.ssl_server_credentials(
        [(tls.server_key.encode(), tls.server_cert.encode())],
        root_certificates=tls.custom_ca.encode() if tls.custom_ca else None,
        require_client_auth=tls.client_verify,
    )


class GrpcServer:
    """Owns the grpc.aio server; ``start`` binds, ``stop`` drains with a grace period."""

    def __init__(
        self,
        options: GrpcOptions,
        prediction: PredictionServicer,
        models: ModelServicer,
        oip: OipServicer | None = None,
        profiler: ProfilerProxy | None = None,
    ) -> None:
        self._options = options
        defaults: dict[str, str | int] = {
            "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
            "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
            # one process: a port already in use is an error, not shared; several: the
            # supervisor holds the port, so only this server's own workers can join it
            "grpc.so_reuseport": int(options.reuse_port),
        }
        # --grpc_channel_arguments override the defaults (grpc would take the first of two)
        channel_options: Sequence[tuple[str, str | int]] = tuple(
            {**defaults, **dict(options.channel_arguments)}.items()
        )
        self._server = grpc.aio.server(
            options=channel_options,
            maximum_concurrent_rpcs=options.max_concurrent_rpcs,
            interceptors=[ServingInterceptor(tokens=options.tokens)],
        )
        prediction_service_pb2_grpc_add(self._server, prediction, models)
        if oip is not None:
            add_oip(self._server, oip)
        self._profiler = profiler
        if profiler is not None:
            self._server.add_generic_rpc_handlers((profiler.handler(),))
            level = logging.INFO if options.announce else logging.DEBUG
            log.log(level, "Profiler service is enabled")
        self.health: health.aio.HealthServicer | None = None
        if options.enable_health:
            self.health = health.aio.HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        self.bound_port = 0

    async def start(self) -> None:
        """Bind the TCP port and/or the Unix socket, then start serving."""
        opts = self._options
        creds = credentials(opts.tls) if opts.tls else None
        if opts.port:
            self.bound_port = self._bind(f"{opts.host}:{opts.port}", creds)
        if opts.socket_path:
            self._bind(f"unix:{opts.socket_path}", creds)
        await self._server.start()

    def _bind(self, address: str, creds: grpc.ServerCredentials | None) -> int:
        try:
            port = (
                self._server.add_secure_port(address, creds)
                if creds
                else self._server.add_insecure_port(address)
            )
        except RuntimeError as exc:  # grpc.aio reports a failed bind this way
            raise self._in_use(address, str(exc)) from exc
        if port == 0 and not address.startswith("unix:"):
            raise self._in_use(address, "the address could not be bound")
        level = logging.INFO if self._options.announce else logging.DEBUG
        log.log(level, "Running gRPC ModelServer at %s ...", address)
        return int(port)

    def _in_use(self, address: str, reason: str) -> OSError:
        if address.startswith("unix:"):
            return OSError(f"Could not bind gRPC to {address}: {reason}")
        return PortInUse("gRPC", self._options.host, self._options.port, reason)

    async def set_serving(self, serving: bool) -> None:
        """Model-aware health: SERVING once the initial models are available."""
        if self.health is None:
            return
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in HEALTH_SERVICES:
            await self.health.set(name, status)

    async def stop(self, grace_s: float) -> None:
        """Stop accepting RPCs, let in-flight ones finish within ``grace_s``."""
        if self.health is not None:
            await self.health.enter_graceful_shutdown()
        await self._server.stop(grace_s)
        if self._profiler is not None:
            await self._profiler.close()


def prediction_service_pb2_grpc_add(
    server: grpc.aio.Server, prediction: PredictionServicer, models: ModelServicer
) -> None:
    """Register both TF Serving services."""
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(prediction, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(models, server)
