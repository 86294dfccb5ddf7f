"""Composition root: options -> sources, manager, service, protocols; start/stop order.

Start: parse every config file at the edge (a bad one exits non-zero with the
reason), build the lifecycle (monitor, manager, ServerCore, file-system source),
load the initial models, then open gRPC and REST. Stop (SIGTERM/SIGINT): stop
accepting, let in-flight calls finish (``--shutdown_grace_seconds``), unload
every model, stop the threads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from google.protobuf import text_format

from tensorserve import logs
from tensorserve.batching.batcher import BatchingServable
from tensorserve.batching.scheduler import SharedBatchScheduler
from tensorserve.config import batching as batching_config
from tensorserve.config import monitoring, protos
from tensorserve.config.model_config import (
    ModelConfig,
    ModelConfigError,
    from_proto,
    load_model_config_file,
    single_model_config,
)
from tensorserve.core.manager import AspiredVersionsManager
from tensorserve.core.monitor import ServableStateMonitor, StateEvent
from tensorserve.core.policy import POLICIES
from tensorserve.core.server_core import ServerCore
from tensorserve.errors import InvalidArgument, ServingError
from tensorserve.metrics.endpoint import scrape
from tensorserve.metrics.registry import BatchingMetrics, Metrics
from tensorserve.options import ServerOptions
from tensorserve.protocols.grpc.server import (
    GrpcConfigError,
    GrpcOptions,
    GrpcServer,
    TlsConfig,
    parse_channel_arguments,
)
from tensorserve.protocols.grpc.servicers import ModelServicer, PredictionServicer
from tensorserve.protocols.rest.app import RestApp, RestOptions
from tensorserve.runtime import saved_model
from tensorserve.runtime.filesystem import filesystem_for
from tensorserve.runtime.loader import SavedModelLoader
from tensorserve.servable import Servable
from tensorserve.service.request_logging import RequestLogging
from tensorserve.service.service import Service
from tensorserve.service.warmup import Warmup
from tensorserve.sources.filesystem import FileSystemSource

log = logging.getLogger("tensorserve.server")


class StartupError(Exception):
    """The server cannot start; the message names the problem."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Every config file, parsed and validated at the edge."""

    models: tuple[ModelConfig, ...]
    batching: batching_config.BatchingOptions | None
    metrics: monitoring.MetricsOptions
    tls: TlsConfig | None
    runtime: saved_model.RuntimeOptions
    channel_arguments: tuple[tuple[str, str | int], ...]


def load_settings(options: ServerOptions) -> Settings:
    """Read and validate every file the flags name; StartupError on any problem."""
    try:
        return Settings(
            models=_models(options),
            batching=_batching(options),
            metrics=_metrics(options),
            tls=_tls(options.ssl_config_file),
            runtime=_runtime(options),
            channel_arguments=parse_channel_arguments(options.grpc_channel_arguments),
        )
    except (
        ModelConfigError,
        batching_config.BatchingConfigError,
        monitoring.MonitoringConfigError,
        GrpcConfigError,
        OSError,
        text_format.ParseError,
    ) as exc:
        raise StartupError(str(exc)) from exc


def _models(options: ServerOptions) -> tuple[ModelConfig, ...]:
    if options.model_config_file:
        return load_model_config_file(options.model_config_file)
    return single_model_config(options.model_name, options.model_base_path)


def _batching(options: ServerOptions) -> batching_config.BatchingOptions | None:
    if not options.enable_batching:
        return None
    if options.batching_parameters_file:
        return batching_config.load_batching_file(options.batching_parameters_file)
    return batching_config.default_batching_options()


def _metrics(options: ServerOptions) -> monitoring.MetricsOptions:
    if options.monitoring_config_file:
        return monitoring.load_monitoring_file(options.monitoring_config_file)
    return monitoring.MetricsOptions(enabled=False)


def _tls(path: str) -> TlsConfig | None:
    if not path:
        return None
    with open(path, encoding="utf-8") as fh:
        try:
            message = text_format.Parse(fh.read(), protos.SSLConfig())
        except text_format.ParseError as exc:
            raise StartupError(f"Invalid --ssl_config_file {path}: {exc}") from exc
    if not message.server_key or not message.server_cert:
        raise StartupError(f"--ssl_config_file {path}: server_key and server_cert are required")
    return TlsConfig(
        message.server_key, message.server_cert, message.custom_ca, message.client_verify
    )


def _runtime(options: ServerOptions) -> saved_model.RuntimeOptions:
    config = b""
    if options.tensorflow_session_config_file:
        from tensorflow.core.protobuf import config_pb2

        with open(options.tensorflow_session_config_file, encoding="utf-8") as fh:
            proto = text_format.Parse(fh.read(), config_pb2.ConfigProto())
        config = proto.SerializeToString()
    both = options.tensorflow_session_parallelism
    return saved_model.RuntimeOptions(
        tags=options.tags,
        session_config=config,
        intra_op_parallelism=options.tensorflow_intra_op_parallelism or both,
        inter_op_parallelism=options.tensorflow_inter_op_parallelism or both,
    )


class ModelServer:
    """One running server; ``serve`` returns the process exit code."""

    def __init__(self, options: ServerOptions, settings: Settings) -> None:
        self.options = options
        self.settings = settings
        self.metrics = Metrics()
        self.monitor = ServableStateMonitor()
        self.monitor.add_listener(self._on_state)
        loads = options.num_load_threads or max(2, os.cpu_count() or 1)
        self._load_pool = ThreadPoolExecutor(loads, thread_name_prefix="load")
        self._unload_pool = ThreadPoolExecutor(
            max(1, options.num_unload_threads), thread_name_prefix="unload"
        )
        workers = max(options.rest_api_num_threads, options.grpc_max_threads)
        if settings.batching is not None:
            workers = max(workers, min(1024, 2 * settings.batching.max_batch_size))
        self._compute = ThreadPoolExecutor(workers, thread_name_prefix="compute")
        self.manager = AspiredVersionsManager(
            self.monitor,
            self._load_pool,
            self._unload_pool,
            policy=POLICIES[options.version_swap_policy],
            max_load_retries=options.max_num_load_retries,
            load_retry_interval_s=max(0, options.load_retry_interval_micros) / 1e6,
        )
        self.core = ServerCore(
            self.manager,
            self.monitor,
            self._make_loader,
            allow_labels_for_unavailable=options.allow_version_labels_for_unavailable_models,
        )
        self.source = FileSystemSource(
            filesystem_for,
            self.core.on_aspired,
            require_stable=options.file_system_poll_wait_seconds > 0,
        )
        self.core.attach_source(self.source)
        self.request_logging = RequestLogging(self.metrics)
        self.service = Service(
            self.core,
            self._compute,
            self.metrics,
            self.request_logging,
            inline_budget_us=options.compute_inline_budget_us,
        )
        self.warmup = Warmup(
            options.enable_model_warmup,
            options.num_request_iterations_for_warmup,
            options.enable_synthetic_warmup,
            settings.batching,
            self.metrics,
        )
        self._scheduler: SharedBatchScheduler | None = None
        if settings.batching is not None:
            self._scheduler = SharedBatchScheduler.from_options(settings.batching)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.grpc: GrpcServer | None = None
        self._rest_task: asyncio.Task[None] | None = None
        self.rest_port = 0

    # ---- loaders --------------------------------------------------------------------------
    def _make_loader(self, config: ModelConfig, version: int, path: str) -> SavedModelLoader:
        return SavedModelLoader(
            config.name,
            version,
            path,
            self.settings.runtime,
            wrap=self._wrap if self._scheduler is not None else None,
            warm=self.warmup.warm,
            on_load=self.metrics.record_load,
        )

    def _wrap(self, servable: Servable, model: str, version: int, path: str) -> Servable:
        assert self._scheduler is not None and self.settings.batching is not None
        options = self.settings.batching
        if self.options.enable_per_model_batching_parameters:
            per_model = os.path.join(path, "batching_params.pbtxt")
            if os.path.exists(per_model):
                options = batching_config.load_batching_file(per_model)
        return BatchingServable(
            servable,
            self._scheduler,
            options,
            model,
            version,
            observer=BatchingMetrics(self.metrics),
        )

    def _on_state(self, event: StateEvent) -> None:
        self.metrics.set_model_state(event.id.name, event.id.version, event.state.name)
        fields: dict[str, object] = {
            "model": event.id.name,
            "version": event.id.version,
            "state": event.state.name,
        }
        if event.error is not None:
            fields["error"] = event.error.message
        level = logging.ERROR if event.error is not None else logging.INFO
        logs.log_event(log, level, "servable state changed", **fields)

    def _follow_health(self, loop: asyncio.AbstractEventLoop) -> None:
        """Keep grpc.health.v1 in step with readiness: SERVING once every model is available."""
        grpc_server = self.grpc
        assert grpc_server is not None

        pending: set[asyncio.Task[None]] = set()

        def refresh() -> None:
            task = asyncio.ensure_future(grpc_server.set_serving(self.service.ready()))
            pending.add(task)  # keep a reference until it is done
            task.add_done_callback(pending.discard)

        def on_event(_event: StateEvent) -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(refresh)

        self.monitor.add_listener(on_event)
        refresh()

    # ---- lifecycle ------------------------------------------------------------------------
    def _thread(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def start_lifecycle(self) -> None:
        """Start the manager loop and the polling threads (no models yet)."""
        saved_model.configure_process(self.settings.runtime)
        self._thread("manager", lambda: self.manager.run(self._stop))
        poll = self.options.file_system_poll_wait_seconds
        if poll > 0:
            self._thread("fs-poll", lambda: self.source.run(self._stop, poll))
        if self.options.model_config_file and self.options.model_config_file_poll_wait_seconds > 0:
            self._thread("config-poll", self._poll_config_file)

    def apply_config(self, configs: tuple[ModelConfig, ...], wait: float | None) -> None:
        """Apply a model list (start-up, file poll, ReloadConfig); raises ServingError."""
        self.request_logging.configure(configs)
        self.core.apply_config(configs, wait)

    def _poll_config_file(self) -> None:
        path = self.options.model_config_file
        interval = self.options.model_config_file_poll_wait_seconds
        last = self.settings.models
        while not self._stop.wait(interval):
            try:
                configs = load_model_config_file(path)
            except ModelConfigError as exc:
                log.error("Ignoring the new model config (keeping the previous one): %s", exc)
                continue
            if configs == last:
                continue
            last = configs
            log.info("Model config file %s changed; reloading", path)
            try:
                self.apply_config(configs, None)
            except ServingError as exc:
                log.error("Model config reload finished with errors: %s", exc)

    async def reload(self, config_proto: object) -> None:
        """The ReloadConfig RPC: validate, apply, wait for added models."""
        try:
            configs = from_proto(config_proto, "ReloadConfigRequest")  # type: ignore[arg-type]
        except ModelConfigError as exc:
            raise InvalidArgument(str(exc)) from exc
        await asyncio.get_running_loop().run_in_executor(None, self.apply_config, configs, None)

    async def serve(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit code."""
        self.start_lifecycle()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        initial: asyncio.Future[None] = loop.run_in_executor(None, self._initial_load)
        if self.options.wait_for_initial_models:
            stopping: asyncio.Future[bool] = asyncio.ensure_future(stop.wait())
            either: list[asyncio.Future[Any]] = [initial, stopping]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
        uvicorn_server = None if stop.is_set() else await self._start_protocols()
        if self.grpc is not None:
            self._follow_health(loop)
        if not stop.is_set():
            await initial
            self._print_ready()
            await stop.wait()
        await self._shutdown(uvicorn_server)
        return 0

    def _initial_load(self) -> None:
        try:
            self.apply_config(self.settings.models, None)
        except ServingError as exc:
            log.error("Some models did not load; serving the others: %s", exc)

    async def _start_protocols(self) -> object | None:
        opts, settings = self.options, self.settings
        if opts.port or opts.grpc_socket_path:
            self.grpc = GrpcServer(
                GrpcOptions(
                    port=opts.port,
                    host=opts.bind_address,
                    socket_path=opts.grpc_socket_path,
                    channel_arguments=settings.channel_arguments,
                    tls=settings.tls,
                    enable_health=opts.enable_grpc_healthcheck_service,
                    tensor_content_outputs=opts.enable_serialization_as_tensor_content,
                ),
                PredictionServicer(self.service, opts.enable_serialization_as_tensor_content),
                ModelServicer(self.service, self.reload),
            )
            await self.grpc.set_serving(False)
            await self.grpc.start()
        if not opts.rest_api_port:
            return None
        return await self._start_rest()

    async def _start_rest(self) -> object:
        import uvicorn

        opts = self.options
        metrics_opts = self.settings.metrics
        app = RestApp(
            self.service,
            RestOptions(
                timeout_s=opts.rest_api_timeout_in_ms / 1000
                if opts.rest_api_timeout_in_ms > 0
                else None,
                enable_cors=opts.rest_api_enable_cors_support,
                max_body_bytes=opts.rest_api_max_body_bytes,
                metrics_path=metrics_opts.path if metrics_opts.enabled else None,
            ),
            scrape=(lambda: scrape(self.metrics)) if metrics_opts.enabled else None,
            access_log=logs.access_log if opts.access_log else None,
        )
        config = uvicorn.Config(
            app,
            host=opts.bind_address,
            port=opts.rest_api_port,
            http="httptools",
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            proxy_headers=False,  # no X-Forwarded-* rewriting: one middleware less per request
            timeout_graceful_shutdown=max(1, int(opts.shutdown_grace_seconds)),
            **self._rest_tls(),
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(_run_uvicorn(server))
        while not server.started:
            if task.done():
                reason = task.exception() if not task.cancelled() else None
                raise StartupError(
                    f"REST server could not start on {opts.bind_address}:{opts.rest_api_port}"
                    " (port in use?)" + (f": {reason}" if reason else "")
                )
            await asyncio.sleep(0.01)
        sockets = [s for srv in server.servers for s in (srv.sockets or ())]
        self.rest_port = sockets[0].getsockname()[1] if sockets else opts.rest_api_port
        log.info("Exporting HTTP/REST API at:%s:%d ...", opts.bind_address, self.rest_port)
        self._rest_task = task
        return server

    def _rest_tls(self) -> dict[str, Any]:
        tls = self.settings.tls
        if tls is None:
            return {}
        import ssl

        folder = tempfile.mkdtemp(prefix="tensorserve-tls-")
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
        extra: dict[str, Any] = {"ssl_keyfile": files["key"], "ssl_certfile": files["cert"]}
        if "ca" in files:
            extra["ssl_ca_certs"] = files["ca"]
        if tls.client_verify:
            extra["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        return extra

    def _print_ready(self) -> None:
        grpc_port = self.grpc.bound_port if self.grpc else 0
        log.info(
            "tensorserve ready: gRPC port %d, REST port %d, models %s",
            grpc_port,
            self.rest_port,
            ", ".join(self.core.model_names()),
        )

    async def _shutdown(self, uvicorn_server: object | None) -> None:
        log.info("Shutting down: finishing in-flight requests")
        grace = self.options.shutdown_grace_seconds
        tasks: list[asyncio.Future[None]] = []
        if uvicorn_server is not None and self._rest_task is not None:
            uvicorn_server.should_exit = True  # type: ignore[attr-defined]
            tasks.append(self._rest_task)
        if self.grpc is not None:
            tasks.append(asyncio.ensure_future(self.grpc.stop(grace)))
        await asyncio.gather(*tasks, return_exceptions=True)
        self.service.close()
        await asyncio.get_running_loop().run_in_executor(None, self.unload_all, grace)
        log.info("Shutdown complete")

    def unload_all(self, timeout_s: float) -> None:
        """Unload every model and stop the lifecycle threads."""
        self.source.set_models([])
        deadline = time.monotonic() + timeout_s
        while not self.manager.idle() and time.monotonic() < deadline:
            self.monitor.wait_until(self.manager.idle, 0.05)
        self._stop.set()
        self.manager.wake()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._scheduler is not None:
            self._scheduler.shutdown()
        self.request_logging.close()
        for pool in (self._compute, self._load_pool, self._unload_pool):
            pool.shutdown(wait=False, cancel_futures=True)


async def _run_uvicorn(server: Any) -> None:
    """uvicorn's serve loop without its signal handlers (the server owns those)."""
    try:
        await server._serve()
    except SystemExit as exc:  # uvicorn exits when it cannot bind
        raise OSError(f"uvicorn stopped at start-up (exit code {exc.code})") from None


@contextmanager
def _startup_errors(json_logs: bool) -> Iterator[None]:
    """TF Serving's "Failed to start server. Error: ..." line (a JSON record with JSON logs)."""
    try:
        yield
    except StartupError as exc:
        message = f"Failed to start server. Error: {exc}"
        if json_logs:
            log.critical(message)
        else:
            print(message, file=sys.stderr)
        raise SystemExit(1) from exc


def run(options: ServerOptions) -> int:
    """Parse settings, then run the server on uvloop until a signal stops it."""
    logs.configure_logging(
        options.log_format,  # type: ignore[arg-type]
        options.log_level,
        access_log=options.access_log,
    )
    with _startup_errors(options.log_format == "json"):
        settings = load_settings(options)
        server = ModelServer(options, settings)
        try:
            import uvloop

            return uvloop.run(server.serve())
        except OSError as exc:
            raise StartupError(str(exc)) from exc
