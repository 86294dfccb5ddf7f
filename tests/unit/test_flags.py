"""Every ``tensorflow_model_server`` flag is a tensorserve flag of the same type and default.

The list is TF Serving's ``model_servers/main.cc`` (tensorflow/serving at 9d981c5, 48 flags),
held here as data: name, C++ type, default (None: computed from the CPU count, as
``4 * NumSchedulableCPUs()`` or ``NumSchedulableCPUs()``).
"""

from __future__ import annotations

import os

import pytest

from tensorserve.cli import build_parser, parse_args
from tensorserve.options import ServerOptions, option_fields

TFS_FLAGS = [
    ("port", "int32", 8500),
    ("grpc_socket_path", "string", ""),
    ("rest_api_port", "int32", 0),
    ("rest_api_num_threads", "int32", None),  # computed: int(4.0 * NumSchedulableCPUs())
    ("rest_api_timeout_in_ms", "int32", 30000),
    ("rest_api_enable_cors_support", "bool", False),
    ("enable_batching", "bool", False),
    ("allow_version_labels_for_unavailable_models", "bool", False),
    ("batching_parameters_file", "string", ""),
    ("enable_per_model_batching_parameters", "bool", False),
    ("model_config_file", "string", ""),
    ("model_config_file_poll_wait_seconds", "int32", 0),
    ("model_name", "string", "default"),
    ("model_base_path", "string", ""),
    ("num_load_threads", "int32", 0),
    ("num_unload_threads", "int32", 0),
    ("max_num_load_retries", "int32", 5),
    ("load_retry_interval_micros", "int64", 60000000),
    ("file_system_poll_wait_seconds", "int32", 1),
    ("flush_filesystem_caches", "bool", True),
    ("tensorflow_session_parallelism", "int64", 0),
    ("tensorflow_session_config_file", "string", ""),
    ("tensorflow_intra_op_parallelism", "int64", 0),
    ("tensorflow_inter_op_parallelism", "int64", 0),
    ("use_alts_credentials", "bool", False),
    ("ssl_config_file", "string", ""),
    ("platform_config_file", "string", ""),
    ("per_process_gpu_memory_fraction", "float", 0.0),
    ("saved_model_tags", "string", "serve"),
    ("grpc_channel_arguments", "string", ""),
    ("grpc_max_threads", "int32", None),  # computed: int(4.0 * NumSchedulableCPUs())
    ("enable_model_warmup", "bool", True),
    ("num_request_iterations_for_warmup", "int32", 0),
    ("version", "bool", False),
    ("monitoring_config_file", "string", ""),
    ("remove_unused_fields_from_bundle_metagraph", "bool", True),
    ("prefer_tflite_model", "bool", False),
    ("num_tflite_pools", "int32", None),  # computed: NumSchedulableCPUs()
    ("num_tflite_interpreters_per_pool", "int32", 1),
    ("enable_signature_method_name_check", "bool", False),
    ("xla_cpu_compilation_enabled", "bool", False),
    ("xla_gpu_compilation_enabled", "bool", False),
    ("enable_profiler", "bool", True),
    ("thread_pool_factory_config_file", "string", ""),
    ("mixed_precision", "string", ""),
    ("skip_initialize_tpu", "bool", False),
    ("enable_grpc_healthcheck_service", "bool", False),
    ("enable_serialization_as_tensor_content", "bool", False),
]

PYTHON_TYPE = {"int32": int, "int64": int, "bool": bool, "string": str, "float": float}
CPUS = len(os.sched_getaffinity(0))
COMPUTED = {
    "rest_api_num_threads": 4 * CPUS,
    "grpc_max_threads": 4 * CPUS,
    "num_tflite_pools": CPUS,
}
FIELDS = {f.name: f for f in option_fields()}


def test_the_list_is_tf_servings_whole_list() -> None:
    assert len(TFS_FLAGS) == 48
    assert len({name for name, _, _ in TFS_FLAGS}) == 48


@pytest.mark.parametrize(("name", "kind", "default"), [f for f in TFS_FLAGS])
def test_flag_is_known_with_the_same_type_and_default(
    name: str, kind: str, default: object
) -> None:
    if name == "version":
        assert parse_args(["--version"]) is None
        return
    field = FIELDS[name]
    assert field.type in (PYTHON_TYPE[kind].__name__, PYTHON_TYPE[kind]), (name, field.type)
    expected = COMPUTED.get(name, default)
    actual = getattr(ServerOptions(), name)
    if kind == "float":
        assert actual == pytest.approx(expected)
    else:
        assert actual == expected and type(actual) is PYTHON_TYPE[kind], (name, actual)


@pytest.mark.parametrize(("name", "kind", "default"), [f for f in TFS_FLAGS])
def test_flag_parses_on_the_command_line(name: str, kind: str, default: object) -> None:
    value = {"bool": "true", "string": "x", "float": "0.5"}.get(kind, "7")
    ns = build_parser().parse_args([f"--{name}={value}"])
    assert getattr(ns, name) == PYTHON_TYPE[kind](True if kind == "bool" else value)
