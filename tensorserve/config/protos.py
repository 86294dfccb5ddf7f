"""Official TF Serving config messages that the ``tensorflow-serving-api`` wheel omits.

The wheel ships ``model_server_config``, ``logging_config`` and friends but not
``BatchingParameters`` (``servables/tensorflow/session_bundle_config.proto``),
``SSLConfig`` (``config/ssl_config.proto``) or ``MonitoringConfig``
(``config/monitoring_config.proto``). They are declared here with the same
package, message names, field names and numbers, so text-format files written
for ``tensorflow_model_server`` parse unchanged. Built lazily on first use.
"""

from __future__ import annotations

import functools
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf import wrappers_pb2 as _wrappers

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "tensorflow.serving"


def _field(
    msg: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    ftype: int,
    type_name: str = "",
    repeated: bool = False,
) -> None:
    field = msg.field.add(name=name, number=number, type=ftype)  # type: ignore[arg-type]
    field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if type_name:
        field.type_name = type_name


def _file(name: str, deps: list[str]) -> descriptor_pb2.FileDescriptorProto:
    return descriptor_pb2.FileDescriptorProto(
        name=name, package=_PACKAGE, syntax="proto3", dependency=deps
    )


def _batching_file() -> descriptor_pb2.FileDescriptorProto:
    fdp = _file("tensorserve/batching_parameters.proto", ["google/protobuf/wrappers.proto"])
    msg = fdp.message_type.add(name="BatchingParameters")
    i64 = ".google.protobuf.Int64Value"
    s = ".google.protobuf.StringValue"
    b = ".google.protobuf.BoolValue"
    _field(msg, "max_batch_size", 1, _F.TYPE_MESSAGE, i64)
    _field(msg, "batch_timeout_micros", 2, _F.TYPE_MESSAGE, i64)
    _field(msg, "max_enqueued_batches", 3, _F.TYPE_MESSAGE, i64)
    _field(msg, "num_batch_threads", 4, _F.TYPE_MESSAGE, i64)
    _field(msg, "thread_pool_name", 5, _F.TYPE_MESSAGE, s)
    _field(msg, "allowed_batch_sizes", 6, _F.TYPE_INT64, repeated=True)
    _field(msg, "pad_variable_length_inputs", 7, _F.TYPE_BOOL)
    _field(msg, "enable_large_batch_splitting", 8, _F.TYPE_MESSAGE, b)
    _field(msg, "max_execution_batch_size", 9, _F.TYPE_MESSAGE, i64)
    _field(msg, "batch_padding_policy", 10, _F.TYPE_MESSAGE, s)
    return fdp


def _ssl_file() -> descriptor_pb2.FileDescriptorProto:
    fdp = _file("tensorserve/ssl_config.proto", [])
    msg = fdp.message_type.add(name="SSLConfig")
    _field(msg, "server_key", 1, _F.TYPE_STRING)
    _field(msg, "server_cert", 2, _F.TYPE_STRING)
    _field(msg, "custom_ca", 3, _F.TYPE_STRING)
    _field(msg, "client_verify", 4, _F.TYPE_BOOL)
    return fdp


def _monitoring_file() -> descriptor_pb2.FileDescriptorProto:
    fdp = _file("tensorserve/monitoring_config.proto", [])
    prom = fdp.message_type.add(name="PrometheusConfig")
    _field(prom, "enable", 1, _F.TYPE_BOOL)
    _field(prom, "path", 2, _F.TYPE_STRING)
    mon = fdp.message_type.add(name="MonitoringConfig")
    _field(mon, "prometheus_config", 1, _F.TYPE_MESSAGE, f".{_PACKAGE}.PrometheusConfig")
    return fdp


def _session_bundle_file() -> descriptor_pb2.FileDescriptorProto:
    """``SessionBundleConfig`` and ``SavedModelBundleSourceAdapterConfig``: what a
    ``--platform_config_file``'s ``source_adapter_config`` Any holds."""
    fdp = _file(
        "tensorserve/session_bundle_config.proto",
        [
            "google/protobuf/wrappers.proto",
            "tensorflow/core/protobuf/config.proto",
            "tensorflow/core/protobuf/named_tensor.proto",
            "tensorserve/batching_parameters.proto",
        ],
    )
    i32 = ".google.protobuf.Int32Value"
    named_tensor = ".tensorflow.NamedTensorProto"
    warm = fdp.message_type.add(name="ModelWarmupOptions")
    _field(warm, "num_request_iterations", 1, _F.TYPE_MESSAGE, i32)
    _field(warm, "num_model_warmup_threads", 2, _F.TYPE_MESSAGE, i32)
    _field(warm, "model_name", 3, _F.TYPE_STRING)
    _field(warm, "model_version", 4, _F.TYPE_INT64)
    _field(warm, "enable_all_batch_sizes_warmup", 5, _F.TYPE_BOOL)
    msg = fdp.message_type.add(name="SessionBundleConfig")
    for name, number, ftype, type_name, repeated in (
        ("session_target", 1, _F.TYPE_STRING, "", False),
        ("session_config", 2, _F.TYPE_MESSAGE, ".tensorflow.ConfigProto", False),
        ("batching_parameters", 3, _F.TYPE_MESSAGE, f".{_PACKAGE}.BatchingParameters", False),
        ("session_run_load_threadpool_index", 4, _F.TYPE_MESSAGE, i32, False),
        ("experimental_transient_ram_bytes_during_load", 5, _F.TYPE_UINT64, "", False),
        ("saved_model_tags", 6, _F.TYPE_STRING, "", True),
        ("in_graph_batching_parameters", 7, _F.TYPE_MESSAGE, ".tensorflow.BatchingOptions", False),
        ("experimental_fixed_input_tensors", 778, _F.TYPE_MESSAGE, named_tensor, True),
        ("enable_model_warmup", 779, _F.TYPE_BOOL, "", False),
        ("model_warmup_options", 780, _F.TYPE_MESSAGE, f".{_PACKAGE}.ModelWarmupOptions", False),
        ("enable_session_metadata", 781, _F.TYPE_BOOL, "", False),
        ("remove_unused_fields_from_bundle_metagraph", 782, _F.TYPE_BOOL, "", False),
        ("prefer_tflite_model", 783, _F.TYPE_BOOL, "", False),
        ("resource_estimation_uses_validation_result", 784, _F.TYPE_BOOL, "", False),
        ("num_tflite_interpreters", 785, _F.TYPE_INT32, "", False),
        ("num_tflite_interpreters_per_pool", 786, _F.TYPE_INT32, "", False),
        ("num_tflite_pools", 787, _F.TYPE_INT32, "", False),
        ("wrap_session_with_no_threading_params", 788, _F.TYPE_BOOL, "", False),
        ("enable_per_model_batching_params", 789, _F.TYPE_BOOL, "", False),
        ("enable_saved_model_config", 790, _F.TYPE_BOOL, "", False),
        ("mixed_precision", 791, _F.TYPE_STRING, "", False),
    ):  # fmt: skip
        _field(msg, name, number, ftype, type_name, repeated)
    adapter = fdp.message_type.add(name="SavedModelBundleSourceAdapterConfig")
    _field(adapter, "legacy_config", 1000, _F.TYPE_MESSAGE, f".{_PACKAGE}.SessionBundleConfig")
    return fdp


def _add_with_dependencies(pool: descriptor_pool.DescriptorPool, file: Any, seen: set[str]) -> None:
    if file.name in seen:
        return
    seen.add(file.name)
    for dependency in file.dependencies:
        _add_with_dependencies(pool, dependency, seen)
    pool.AddSerializedFile(file.serialized_pb)


@functools.cache
def platform_pool() -> descriptor_pool.DescriptorPool:
    """The pool that resolves a platform config's Any: ours plus TensorFlow's ConfigProto."""
    from tensorflow.core.protobuf import config_pb2, named_tensor_pb2

    pool = descriptor_pool.DescriptorPool()
    seen: set[str] = set()
    for file in (_wrappers.DESCRIPTOR, config_pb2.DESCRIPTOR, named_tensor_pb2.DESCRIPTOR):
        _add_with_dependencies(pool, file, seen)
    for fdp in (_batching_file(), _session_bundle_file()):
        pool.Add(fdp)
    return pool


def SavedModelBundleSourceAdapterConfig() -> Any:
    """A new ``tensorflow.serving.SavedModelBundleSourceAdapterConfig`` (of platform_pool)."""
    name = f"{_PACKAGE}.SavedModelBundleSourceAdapterConfig"
    return message_factory.GetMessageClass(platform_pool().FindMessageTypeByName(name))()


@functools.cache
def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(_wrappers.DESCRIPTOR.serialized_pb)
    for fdp in (_batching_file(), _ssl_file(), _monitoring_file()):
        pool.Add(fdp)
    return pool


@functools.cache
def message_class(name: str) -> Any:
    """The generated class of ``tensorflow.serving.<name>`` (one of the three above)."""
    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(f"{_PACKAGE}.{name}"))


def BatchingParameters() -> Any:
    """A new, empty ``tensorflow.serving.BatchingParameters``."""
    return message_class("BatchingParameters")()


def SSLConfig() -> Any:
    """A new, empty ``tensorflow.serving.SSLConfig``."""
    return message_class("SSLConfig")()


def MonitoringConfig() -> Any:
    """A new, empty ``tensorflow.serving.MonitoringConfig``."""
    return message_class("MonitoringConfig")()
