"""ModelLifecycle: everything that owns models, in the one process that holds them.

Source -> ServerCore -> AspiredVersionsManager, the load/unload/compute pools,
the loader factory (SavedModel, batching wrapper, warm-up), request logging,
the Prometheus registry and the protocol-neutral :class:`Service` on top. A
single-process server and the model process of a multi-process server build
exactly this; protocols reach it only through ``service``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from typing import Any

from tensorserve import __version__, logs
from tensorserve.batching.batcher import BatchingServable
from tensorserve.batching.scheduler import SharedBatchScheduler
from tensorserve.config import batching as batching_config
from tensorserve.config.model_config import ModelConfigError, from_proto
from tensorserve.config.models import ModelConfig
from tensorserve.config.reloader import ConfigFilePoller
from tensorserve.config.settings import Settings
from tensorserve.core.manager import AspiredVersionsManager
from tensorserve.core.monitor import ServableStateMonitor, StateEvent
from tensorserve.core.policy import POLICIES
from tensorserve.core.server_core import ServerCore
from tensorserve.core.states import ManagerState
from tensorserve.errors import InvalidArgument, ServingError
from tensorserve.metrics.registry import BatchingMetrics, Metrics
from tensorserve.options import ServerOptions
from tensorserve.runtime import profiler, saved_model, tf_env
from tensorserve.runtime.filesystem import filesystem_for
from tensorserve.runtime.loader import SavedModelLoader, resident_bytes
from tensorserve.servable import Servable
from tensorserve.service.repository import ModelRepository, RepositoryOptions
from tensorserve.service.request_logging import RequestLogging
from tensorserve.service.service import Service
from tensorserve.service.warmup import Warmup
from tensorserve.sources.filesystem import FileSystemSource

log = logging.getLogger("tensorserve.server")


class ModelLifecycle:
    """Build with the parsed settings; ``start`` runs the loops, ``stop`` unloads everything."""

    def __init__(self, options: ServerOptions, settings: Settings) -> None:
        self.started_at = time.time()
        self.last_config: dict[str, Any] | None = None  # the last model list applied
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
        self._compute = ThreadPoolExecutor(_compute_threads(options, settings), "compute")
        self.manager = AspiredVersionsManager(
            self.monitor,
            self._load_pool,
            self._unload_pool,
            policy=POLICIES[options.version_swap_policy],
            max_load_retries=options.max_num_load_retries,
            load_retry_interval_s=max(0, options.load_retry_interval_micros) / 1e6,
            memory_limit_bytes=options.total_model_memory_limit_bytes,
            rss=resident_bytes,
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
        self.repository = ModelRepository(
            RepositoryOptions(
                enabled=options.enable_model_management,
                root=options.model_repository,
                allow_base_path=options.allow_load_base_path,
                config_file_polled=bool(options.model_config_file)
                and options.model_config_file_poll_wait_seconds > 0,
            ),
            lambda: self.core.configs,
            self.monitor.versions,
            lambda configs: self.apply_config(configs, None),
        )
        self.service = Service(
            self.core,
            self._compute,
            self.metrics,
            self.request_logging,
            inline_budget_us=options.compute_inline_budget_us,
            reload=self.reload,
            scrape=self.metrics.render if settings.metrics.enabled else None,
            describe=self.describe,
            statistics=self.metrics.statistics.report,
            repository=self.repository,
            max_tensor_elements=options.max_request_tensor_elements,
            profiler=profiler.server_port if options.enable_profiler else None,
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
        if event.memory is not None or event.state is not ManagerState.AVAILABLE:
            self.metrics.set_model_memory(event.id.name, event.id.version, event.memory)
        fields: dict[str, object] = {
            "model": event.id.name,
            "version": event.id.version,
            "state": event.state.name,
        }
        if event.error is not None:
            fields["error"] = event.error.message
        level = logging.ERROR if event.error is not None else logging.INFO
        logs.log_event(log, level, "servable state changed", **fields)

    # ---- lifecycle ------------------------------------------------------------------------
    def _thread(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def start(self) -> None:
        """Start the manager loop and the polling threads (no models yet)."""
        saved_model.configure_process(self.settings.runtime)
        tf_env.init_devices()  # fd 2 is captured meanwhile: before any thread logs
        self._thread("manager", lambda: self.manager.run(self._stop))
        poll = self.options.file_system_poll_wait_seconds
        if poll > 0:
            self._thread("fs-poll", lambda: self.source.run(self._stop, poll))
        interval = self.options.model_config_file_poll_wait_seconds
        if self.options.model_config_file and interval > 0:
            poller = ConfigFilePoller(
                self.options.model_config_file, self.settings.models, self.apply_config
            )
            self._thread("config-poll", lambda: poller.run(self._stop, interval))

    def initial_load(self) -> None:
        """Apply the start-up model list; returns once every model is available or failed."""
        try:
            self.apply_config(self.settings.models, None)
        except ServingError as exc:
            log.error("Some models did not load; serving the others: %s", exc)

    def apply_config(self, configs: tuple[ModelConfig, ...], wait: float | None) -> None:
        """Apply a model list (start-up, file poll, ReloadConfig); raises ServingError."""
        applied: dict[str, Any] = {"time": time.time(), "models": len(configs), "error": ""}
        self.last_config = applied
        self.request_logging.configure(configs)
        try:
            self.core.apply_config(configs, wait)
        except ServingError as exc:
            applied["error"] = exc.message
            raise

    def describe(self) -> dict[str, Any]:
        """The server panel of ``Service.overview``: version, start, flags, configuration."""
        options = self.options
        return {
            "server": {
                "name": "tensorserve",
                "version": __version__,
                "tensorflow_version": tf_env.tensorflow_version(),
                "pid": os.getpid(),
                "started_at": self.started_at,
                "now": time.time(),
                "num_workers": options.worker_count(),
                "model_config_file": options.model_config_file,
                "model_config_file_poll_wait_seconds": options.model_config_file_poll_wait_seconds,
                "last_config": self.last_config,
                "batching": self.settings.batching is not None,
                "monitoring": self.settings.metrics.enabled,
                "flags": {f.name: getattr(options, f.name) for f in fields(options)},
            },
            "metrics": self.metrics.summary(),
        }

    async def reload(self, config_proto: Any) -> None:
        """The ReloadConfig RPC: validate, apply, wait for added models."""
        try:
            configs = from_proto(config_proto, "ReloadConfigRequest")
        except ModelConfigError as exc:
            raise InvalidArgument(str(exc)) from exc
        await asyncio.get_running_loop().run_in_executor(None, self.apply_config, configs, None)

    def stop(self, timeout_s: float) -> None:
        """Refuse new calls, unload every model, stop the threads and pools."""
        self.service.close()
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


def _compute_threads(options: ServerOptions, settings: Settings) -> int:
    workers = max(options.rest_api_num_threads, options.grpc_max_threads)
    if settings.batching is not None:
        workers = max(workers, min(1024, 2 * settings.batching.max_batch_size))
    return workers
