"""ServerOptions: every command-line flag, its default and help, in one place.

Flag names and defaults are ``tensorflow_model_server``'s (``main.cc``); the
CLI and its ``--help`` are generated from these fields. Fields marked
``extra`` are tensorserve's own additions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

_CPUS = os.cpu_count() or 1


def _opt(default: Any, help: str, extra: bool = False) -> Any:
    return field(default=default, metadata={"help": help, "extra": extra})


@dataclass(frozen=True, slots=True)
class ServerOptions:
    """Parsed command line; frozen and passed inward as a plain object."""

    port: int = _opt(8500, "gRPC port (0 disables TCP gRPC; then --grpc_socket_path is needed)")
    grpc_socket_path: str = _opt("", "Unix socket path for gRPC, in addition to --port")
    rest_api_port: int = _opt(0, "REST (HTTP/JSON) port; 0 disables REST. Must differ from --port")
    rest_api_num_threads: int = _opt(4 * _CPUS, "Worker threads that run model computations")
    rest_api_timeout_in_ms: int = _opt(30000, "Timeout of a REST call's computation (<=0: none)")
    rest_api_enable_cors_support: bool = _opt(False, "Add CORS headers to REST responses")
    enable_batching: bool = _opt(False, "Batch concurrent requests per model-version-signature")
    batching_parameters_file: str = _opt("", "BatchingParameters text proto (needs batching)")
    enable_per_model_batching_parameters: bool = _opt(
        False, "Read batching_params.pbtxt from each SavedModel folder"
    )
    allow_version_labels_for_unavailable_models: bool = _opt(
        False, "Allow new version labels to point at versions not loaded yet"
    )
    model_config_file: str = _opt("", "ModelServerConfig text proto; overrides --model_name")
    model_config_file_poll_wait_seconds: int = _opt(
        0, "Re-read --model_config_file every N seconds (0: read once)"
    )
    model_name: str = _opt("default", "Model name when no --model_config_file is given")
    model_base_path: str = _opt("", "Absolute path (or URI) holding numbered version folders")
    num_load_threads: int = _opt(0, "Threads loading versions (0: one per CPU, at least 2)")
    num_unload_threads: int = _opt(0, "Threads unloading versions (0: 1)")
    max_num_load_retries: int = _opt(5, "Retries after a failed load (0: a single attempt)")
    load_retry_interval_micros: int = _opt(60_000_000, "Wait between load retries")
    file_system_poll_wait_seconds: int = _opt(
        1, "Poll base paths for new versions every N seconds (0: once; <0: never)"
    )
    flush_filesystem_caches: bool = _opt(True, "Accepted for compatibility (no effect)")
    tensorflow_session_parallelism: int = _opt(0, "Sets both intra- and inter-op threads")
    tensorflow_intra_op_parallelism: int = _opt(0, "TensorFlow intra-op threads (0: auto)")
    tensorflow_inter_op_parallelism: int = _opt(0, "TensorFlow inter-op threads (0: auto)")
    tensorflow_session_config_file: str = _opt("", "tensorflow.ConfigProto text proto")
    per_process_gpu_memory_fraction: float = _opt(0.0, "GPU memory fraction (0: TF default)")
    saved_model_tags: str = _opt("serve", "Comma-separated MetaGraphDef tags to load")
    ssl_config_file: str = _opt("", "SSLConfig text proto (PEM contents); secures gRPC and REST")
    grpc_channel_arguments: str = _opt("", "Extra gRPC channel arguments: k=v,k=v")
    grpc_max_threads: int = _opt(4 * _CPUS, "Upper bound of concurrently served gRPC calls")
    enable_grpc_healthcheck_service: bool = _opt(False, "Serve grpc.health.v1.Health")
    enable_model_warmup: bool = _opt(True, "Replay assets.extra/tf_serving_warmup_requests")
    num_request_iterations_for_warmup: int = _opt(0, "Replays per warm-up record (0: 1)")
    monitoring_config_file: str = _opt("", "MonitoringConfig text proto (Prometheus)")
    enable_signature_method_name_check: bool = _opt(
        False, "Reject signatures whose method_name does not fit the API"
    )
    enable_serialization_as_tensor_content: bool = _opt(
        False, "gRPC Predict outputs in tensor_content"
    )
    prefer_tflite_model: bool = _opt(
        False, "Serve model.tflite from a version folder when it has one (TF Lite)"
    )
    num_tflite_pools: int = _opt(
        len(os.sched_getaffinity(0)),
        "TF Lite interpreters per model (times --num_tflite_interpreters_per_pool): how many "
        "calls of one TF Lite model run at once",
    )
    num_tflite_interpreters_per_pool: int = _opt(
        1, "Multiplies --num_tflite_pools (request batching for TF Lite: --enable_batching)"
    )
    enable_profiler: bool = _opt(
        True,
        "Serve tensorflow.ProfilerService on the gRPC port (TensorBoard's capture profile; "
        "TensorFlow's profiler server starts on the first capture)",
    )
    platform_config_file: str = _opt(
        "",
        "PlatformConfigMap text proto; its tensorflow SessionBundleConfig (session config, "
        "batching_parameters, saved_model_tags, warm-up) replaces the matching flags",
    )
    use_alts_credentials: bool = _opt(False, "Google ALTS credentials (refused: not available)")
    mixed_precision: str = _opt("", "Mixed precision mode (accepted; no effect on CPU here)")
    xla_cpu_compilation_enabled: bool = _opt(False, "XLA:CPU JIT (accepted; no effect)")
    xla_gpu_compilation_enabled: bool = _opt(False, "XLA:GPU JIT (accepted; no effect)")
    skip_initialize_tpu: bool = _opt(False, "Skip TPU initialisation (no TPU support; no effect)")
    remove_unused_fields_from_bundle_metagraph: bool = _opt(
        True, "Drop unused MetaGraphDef fields (the MetaGraphDef is not kept here)"
    )
    thread_pool_factory_config_file: str = _opt(
        "", "ThreadPoolConfig text proto for custom thread pools (accepted; no effect)"
    )
    # tensorserve's own flags
    num_workers: int = _opt(
        0,
        "Protocol worker processes sharing the ports in front of one model process "
        "(0: one per core; 1: everything in one process)",
        extra=True,
    )
    bind_address: str = _opt("0.0.0.0", "Address both ports bind to", extra=True)
    rest_api_max_body_bytes: int = _opt(
        256 << 20, "Largest REST request body, after gzip (413 above)", extra=True
    )
    rest_api_max_buffered_body_bytes: int = _opt(
        1 << 30,
        "REST request bodies one process holds at once; further requests wait to be read "
        "(429 if still waiting after --rest_api_body_timeout_seconds)",
        extra=True,
    )
    rest_api_max_header_bytes: int = _opt(
        64 << 10, "Largest REST request line plus headers (431 above)", extra=True
    )
    rest_api_header_timeout_seconds: int = _opt(
        30,
        "A REST request's headers must arrive within this time of its first byte (408)",
        extra=True,
    )
    rest_api_body_timeout_seconds: int = _opt(
        60,
        "A REST request's body must arrive within this time of its headers (408)",
        extra=True,
    )
    rest_api_keepalive_timeout_seconds: int = _opt(
        75, "Close a REST connection idle this long (before or between requests)", extra=True
    )
    rest_api_max_connections: int = _opt(
        4096,
        "Open REST connections per protocol process; a request beyond gets 429",
        extra=True,
    )
    total_model_memory_limit_bytes: int = _opt(
        0,
        "Memory budget of all loaded versions together, by TF Serving's estimate (files' size "
        "x 1.2); a load beyond it fails with RESOURCE_EXHAUSTED (0: no budget)",
        extra=True,
    )
    max_request_tensor_elements: int = _opt(
        1 << 28,
        "Most elements the input tensors of one predict/infer call may hold together "
        "(RESOURCE_EXHAUSTED / 429 above; 0: no limit)",
        extra=True,
    )
    wait_for_initial_models: bool = _opt(
        True, "Open ports only after the initial models loaded or failed", extra=True
    )
    version_swap_policy: str = _opt(
        "availability_preserving",
        "availability_preserving (load new, then unload old) or resource_preserving",
        extra=True,
    )
    enable_synthetic_warmup: bool = _opt(
        False, "Warm models without a warm-up file with zero-filled inputs", extra=True
    )
    log_format: str = _opt("text", "text or json", extra=True)
    log_level: str = _opt("INFO", "DEBUG, INFO, WARNING or ERROR", extra=True)
    access_log: bool = _opt(False, "Log every request (method, path, status, latency)", extra=True)
    compute_inline_budget_us: float = _opt(
        250.0,
        "Run a lone request on the event loop when its signature takes less than this "
        "(saves two thread hand-offs); 0 always uses the compute threads",
        extra=True,
    )
    enable_dashboard: bool = _opt(
        True, "Serve the operator dashboard at /dashboard/ on the REST port", extra=True
    )
    auth_token_file: str = _opt(
        "",
        "File holding a bearer token every REST and gRPC call must carry "
        "(health checks stay open); empty: no authentication",
        extra=True,
    )
    enable_model_management: bool = _opt(
        False,
        "Accept the Open Inference Protocol's repository load/unload calls (REST "
        "/v2/repository/models/{name}/load|unload and the gRPC RPCs); changes are in memory",
        extra=True,
    )
    model_repository: str = _opt(
        "",
        "Folder whose subfolders (TF Serving layout: <name>/<version>/) repository load "
        "calls take models from",
        extra=True,
    )
    allow_load_base_path: bool = _opt(
        False,
        "Let a repository load call name any base_path in its parameters (not only "
        "--model_repository subfolders)",
        extra=True,
    )
    admin_token_file: str = _opt(
        "",
        "File holding the bearer token that calls changing what is served (ReloadConfig, "
        "repository load/unload) must carry; empty: they take --auth_token_file's token",
        extra=True,
    )
    shutdown_grace_seconds: float = _opt(
        30.0, "On SIGTERM, how long in-flight requests may take to finish", extra=True
    )

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.saved_model_tags.split(",") if t.strip())

    def worker_count(self) -> int:
        """``--num_workers``; 0 means one per core this process may run on."""
        if self.num_workers > 0:
            return self.num_workers
        return max(1, len(os.sched_getaffinity(0)))


def option_fields() -> list[Any]:
    """The dataclass fields, for the CLI generator."""
    return list(fields(ServerOptions))
