"""Every file the flags name, parsed and validated once, at the edge, into frozen objects.

``load_settings`` is called by the supervisor before any port is bound or any
process is spawned; a bad file is a ``StartupError`` naming the problem. The
resulting :class:`Settings` pickles, so child processes receive it as is.
"""

from __future__ import annotations

from dataclasses import dataclass

from tensorserve.config import batching as batching_config
from tensorserve.config import monitoring, platform, protos, textproto
from tensorserve.config.model_config import (
    ModelConfigError,
    load_model_config_file,
    single_model_config,
)
from tensorserve.config.models import ModelConfig
from tensorserve.options import ServerOptions


class StartupError(Exception):
    """The server cannot start; the message names the problem.

    ``before`` are lines printed ahead of TF Serving's ``Failed to start server`` line
    (protobuf's parse error), ``after`` tensorserve's explanation printed below it.
    """

    def __init__(self, message: str, before: tuple[str, ...] = (), after: str = "") -> None:
        super().__init__(message)
        self.before = before
        self.after = after


class ChannelArgumentsError(ValueError):
    """A bad ``--grpc_channel_arguments`` value."""


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """PEM contents from ``--ssl_config_file`` (SSLConfig); secures gRPC and REST."""

    server_key: str
    server_cert: str
    custom_ca: str = ""
    client_verify: bool = False


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """How SavedModels are loaded (from ``--saved_model_tags`` and the session flags)."""

    tags: tuple[str, ...]
    session_config: bytes  # a serialized tensorflow.ConfigProto, or b""
    intra_op_parallelism: int
    inter_op_parallelism: int
    prefer_tflite: bool = False  # --prefer_tflite_model: model.tflite over the SavedModel
    tflite_interpreters: int = 1  # interpreters per TF Lite model (calls run in parallel)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every config file, parsed and validated."""

    models: tuple[ModelConfig, ...]
    batching: batching_config.BatchingOptions | None
    metrics: monitoring.MetricsOptions
    tls: TlsConfig | None
    runtime: RuntimeSettings
    channel_arguments: tuple[tuple[str, str | int], ...]
    auth_token: str | None = None
    admin_token: str | None = None  # state-changing calls; None: auth_token covers them
    platform: platform.PlatformConfig | None = None  # --platform_config_file, when given

    def effective(self, options: ServerOptions) -> ServerOptions:
        """``options`` with the flags ``--platform_config_file`` replaces replaced."""
        return self.platform.apply(options) if self.platform is not None else options


def load_settings(options: ServerOptions) -> Settings:
    """Read and validate every file the flags name; StartupError on any problem.

    ``--platform_config_file`` is read once, here; it replaces the batching, session, tag
    and warm-up flags (``Settings.effective`` gives the options as it leaves them)."""
    try:
        loaded = (
            platform.load(options.platform_config_file) if options.platform_config_file else None
        )
        if loaded is not None:
            options = loaded.apply(options)
        return Settings(
            models=_models(options),
            batching=loaded.batching if loaded is not None else _batching(options),
            metrics=_metrics(options),
            tls=_tls(options.ssl_config_file),
            runtime=_runtime(options, loaded),
            platform=loaded,
            channel_arguments=parse_channel_arguments(options.grpc_channel_arguments),
            auth_token=read_auth_token(options.auth_token_file),
            admin_token=read_auth_token(options.admin_token_file, "--admin_token_file"),
        )
    except (
        ModelConfigError,
        batching_config.BatchingConfigError,
        monitoring.MonitoringConfigError,
        ChannelArgumentsError,
        OSError,
        UnicodeDecodeError,
        textproto.TextProtoError,
        platform.PlatformConfigError,
    ) as exc:
        raise startup_error(exc) from exc


def startup_error(exc: Exception) -> StartupError:
    """TF Serving's status for a config file that does not parse or cannot be read (with
    protobuf's line before it), then tensorserve's explanation; other errors as they are."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, textproto.TextProtoError):
            return StartupError(seen.status, before=(seen.protobuf_line,), after=str(exc))
        if isinstance(seen, OSError) and seen.filename:
            return StartupError(textproto.os_error_status(seen), after=str(exc))
        seen = seen.__cause__
    return StartupError(str(exc))


def read_auth_token(path: str, flag: str = "--auth_token_file") -> str | None:
    """The bearer token in ``path`` (surrounding whitespace removed); None without a path."""
    if not path:
        return None
    with open(path, encoding="utf-8") as handle:
        token = handle.read().strip()
    if not token or any(c.isspace() or not c.isprintable() for c in token):
        raise StartupError(
            f"{flag}: {path} must hold one token of printable, non-space "
            "characters (e.g. the output of `openssl rand -hex 32`)"
        )
    return token


def parse_channel_arguments(text: str) -> tuple[tuple[str, str | int], ...]:
    """``k=v,k=v`` -> channel options; integer-looking values become ints (as TF Serving)."""
    pairs: list[tuple[str, str | int]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ChannelArgumentsError(
                f"--grpc_channel_arguments: '{item}' is not of the form key=value"
            )
        pairs.append((key, int(value) if value.lstrip("-").isdigit() else value))
    return tuple(pairs)


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
    message = textproto.parse(textproto.read(path), protos.SSLConfig(), path)
    if not message.server_key or not message.server_cert:
        raise StartupError(f"--ssl_config_file {path}: server_key and server_cert are required")
    return TlsConfig(
        message.server_key, message.server_cert, message.custom_ca, message.client_verify
    )


def _runtime(options: ServerOptions, loaded: platform.PlatformConfig | None) -> RuntimeSettings:
    config = b""
    if loaded is not None:
        config = loaded.session_config
    elif options.tensorflow_session_config_file:
        from tensorflow.core.protobuf import config_pb2

        path = options.tensorflow_session_config_file
        proto = textproto.parse(textproto.read(path), config_pb2.ConfigProto(), path)
        config = proto.SerializeToString()
    both = options.tensorflow_session_parallelism
    return RuntimeSettings(
        tags=options.tags,
        session_config=config,
        intra_op_parallelism=options.tensorflow_intra_op_parallelism or both,
        inter_op_parallelism=options.tensorflow_inter_op_parallelism or both,
        prefer_tflite=options.prefer_tflite_model,
        tflite_interpreters=max(1, options.num_tflite_pools)
        * max(1, options.num_tflite_interpreters_per_pool),
    )
