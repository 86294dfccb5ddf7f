"""``ModelServerConfig`` text proto -> frozen :class:`ModelConfig` objects.

Parsed with ``google.protobuf.text_format`` into the official
``tensorflow.serving.ModelServerConfig`` message, validated here at the edge
(names, paths, platforms, policies, labels), then passed inward as plain
frozen objects. Every problem raises :class:`ModelConfigError` naming it.
"""

from __future__ import annotations

import os
from types import MappingProxyType

from tensorflow_serving.config import model_server_config_pb2

from tensorserve.config import textproto
from tensorserve.config.logging_config import LoggingConfigError, parse_logging_config
from tensorserve.config.models import PLATFORM, ModelConfig, VersionPolicy


class ModelConfigError(ValueError):
    """A model config that tensorserve refuses, with the reason."""


def parse_model_server_config(
    text: str, source: str = "model config", path: str = ""
) -> tuple[ModelConfig, ...]:
    """Parse and validate a ``ModelServerConfig`` text proto (``path``: the file it is)."""
    message = model_server_config_pb2.ModelServerConfig()
    try:
        textproto.parse(text, message, path or source)
    except textproto.TextProtoError as exc:
        raise ModelConfigError(str(exc)) from exc
    return from_proto(message, source)


def load_model_config_file(path: str) -> tuple[ModelConfig, ...]:
    """Read, parse and validate ``--model_config_file``."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelConfigError(f"Cannot read model config file {path}: {exc}") from exc
    return parse_model_server_config(text, f"model config file {path}", path)


def single_model_config(name: str, base_path: str) -> tuple[ModelConfig, ...]:
    """The config implied by ``--model_name`` / ``--model_base_path``."""
    config = ModelConfig(name=name, base_path=base_path)
    _check_model(config, "--model_base_path")
    return (config,)


def from_proto(
    message: model_server_config_pb2.ModelServerConfig, source: str = "model config"
) -> tuple[ModelConfig, ...]:
    """Validate an official ``ModelServerConfig`` message (also used by ReloadConfig)."""
    kind = message.WhichOneof("config")
    if kind == "custom_model_config":
        raise ModelConfigError(f"Invalid {source}: custom_model_config is not supported")
    if kind is None:
        return ()
    configs = tuple(_model(c, source) for c in message.model_config_list.config)
    names = [c.name for c in configs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ModelConfigError(
            f"Invalid {source}: Illegal to list model {duplicates[0]} multiple times in config list"
        )
    return configs


def _model(proto: model_server_config_pb2.ModelConfig, source: str) -> ModelConfig:
    where = f"{source}, model '{proto.name}'"
    config = ModelConfig(
        name=proto.name,
        base_path=proto.base_path,
        platform=_platform(proto, where),
        policy=_policy(proto, where),
        labels=MappingProxyType(dict(proto.version_labels)),
        logging_config=proto.logging_config.SerializeToString()
        if proto.HasField("logging_config")
        else b"",
    )
    _check_model(config, where)
    try:
        parse_logging_config(config.logging_config)
    except LoggingConfigError as exc:
        raise ModelConfigError(f"Invalid {where}: logging_config: {exc}") from exc
    return config


def _platform(proto: model_server_config_pb2.ModelConfig, where: str) -> str:
    model_type = proto.model_type  # deprecated enum: 0 = unset, 1 = TENSORFLOW
    if model_type and proto.model_platform:
        raise ModelConfigError(f"Invalid {where}: set model_platform or model_type, not both")
    if model_type == 1:
        return PLATFORM
    if model_type:
        raise ModelConfigError(f"Invalid {where}: unsupported model_type {model_type}")
    if not proto.model_platform:
        raise ModelConfigError(f'Invalid {where}: model_platform is required ("tensorflow")')
    if proto.model_platform != PLATFORM:
        raise ModelConfigError(
            f"Invalid {where}: model_platform '{proto.model_platform}' is not supported;"
            f" the only platform is '{PLATFORM}'"
        )
    return PLATFORM


def _policy(proto: model_server_config_pb2.ModelConfig, where: str) -> VersionPolicy:
    policy = proto.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return VersionPolicy("all")
    if kind == "specific":
        versions = tuple(policy.specific.versions)
        if not versions:
            raise ModelConfigError(f"Invalid {where}: specific version policy lists no versions")
        if any(v < 0 for v in versions):
            raise ModelConfigError(f"Invalid {where}: version numbers must be >= 0")
        return VersionPolicy("specific", versions=versions)
    num = policy.latest.num_versions if kind == "latest" else 1
    if num < 0:
        raise ModelConfigError(f"Invalid {where}: latest.num_versions must be >= 1, got {num}")
    return VersionPolicy("latest", num_versions=num or 1)


def _check_model(config: ModelConfig, where: str) -> None:
    if not config.name:
        raise ModelConfigError(f"Invalid {where}: model name is empty")
    if "/" in config.name or ":" in config.name:
        raise ModelConfigError(f"Invalid {where}: model name must not contain '/' or ':'")
    if not config.base_path:
        raise ModelConfigError(f"Invalid {where}: base_path is empty")
    if not (os.path.isabs(config.base_path) or "://" in config.base_path):
        raise ModelConfigError(
            f"Invalid {where}: base_path '{config.base_path}' must be an absolute path or a URI"
        )
    for label, version in config.labels.items():
        if not label or "/" in label or ":" in label:
            raise ModelConfigError(f"Invalid {where}: bad version label '{label}'")
        if version < 0:
            raise ModelConfigError(f"Invalid {where}: label '{label}' points at version {version}")
