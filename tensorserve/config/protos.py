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
