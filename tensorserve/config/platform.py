"""``--platform_config_file``: TF Serving's PlatformConfigMap, as far as it applies here.

The file maps a platform name to a source adapter config; for ``tensorflow`` that is a
``SavedModelBundleSourceAdapterConfig`` whose ``legacy_config`` (a ``SessionBundleConfig``)
replaces what the session, batching, tag and warm-up flags would say, as in TF Serving
(which then ignores those flags). Honoured: ``session_config`` (threads and the rest of the
ConfigProto), ``batching_parameters`` (batching is on exactly when present),
``saved_model_tags``, ``enable_model_warmup`` and ``model_warmup_options.num_request_iterations``.
Fields set that have no effect here are listed in :attr:`PlatformConfig.ignored`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from google.protobuf import message as message_lib
from tensorflow_serving.config import platform_config_pb2

from tensorserve.config import batching as batching_config
from tensorserve.config import protos, textproto
from tensorserve.options import ServerOptions

_HONOURED = frozenset(
    {
        "session_config",
        "batching_parameters",
        "saved_model_tags",
        "enable_model_warmup",
        "model_warmup_options",
        "remove_unused_fields_from_bundle_metagraph",  # nothing is kept that it would drop
    }
)
_ADAPTER = "type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig"


class PlatformConfigError(ValueError):
    """A platform config tensorserve cannot serve with."""


@dataclass(frozen=True, slots=True)
class PlatformConfig:
    """The ``tensorflow`` platform's SessionBundleConfig, as tensorserve applies it."""

    session_config: bytes  # a serialized tensorflow.ConfigProto, or b""
    batching: batching_config.BatchingOptions | None
    tags: tuple[str, ...]
    enable_model_warmup: bool
    warmup_iterations: int
    ignored: tuple[str, ...]

    def apply(self, options: ServerOptions) -> ServerOptions:
        """``options`` with the flags this config replaces replaced."""
        return dataclasses.replace(
            options,
            saved_model_tags=",".join(self.tags) or options.saved_model_tags,
            enable_model_warmup=self.enable_model_warmup,
            num_request_iterations_for_warmup=self.warmup_iterations,
            enable_batching=self.batching is not None,
            batching_parameters_file="",
            tensorflow_session_config_file="",
            tensorflow_session_parallelism=0,
            tensorflow_intra_op_parallelism=0,
            tensorflow_inter_op_parallelism=0,
        )


def load(path: str) -> PlatformConfig:
    """Read ``path``; TextProtoError, OSError or PlatformConfigError when it cannot be used."""
    message = platform_config_pb2.PlatformConfigMap()
    textproto.parse(textproto.read(path), message, path, protos.platform_pool())
    names = sorted(message.platform_configs)
    if names != ["tensorflow"]:
        raise PlatformConfigError(
            f"--platform_config_file {path} configures platforms {names}; tensorserve serves "
            "only the 'tensorflow' platform (a SavedModelBundleSourceAdapterConfig)"
        )
    any_config = message.platform_configs["tensorflow"].source_adapter_config
    if any_config.type_url != _ADAPTER:
        raise PlatformConfigError(
            f"--platform_config_file {path}: the tensorflow platform's source_adapter_config "
            f"is a {any_config.type_url or 'nothing'}; expected {_ADAPTER}"
        )
    adapter = protos.SavedModelBundleSourceAdapterConfig()
    try:
        any_config.Unpack(adapter)
    except message_lib.DecodeError as exc:  # an Any written as raw `value: "..."` bytes
        raise PlatformConfigError(
            f"--platform_config_file {path}: the tensorflow platform's source_adapter_config "
            f"does not hold a {_ADAPTER.rsplit('/', 1)[1]} ({exc}); write it as "
            f"[{_ADAPTER}] {{ legacy_config {{ ... }} }}"
        ) from None
    return _from_legacy(adapter.legacy_config)


def _from_legacy(legacy: Any) -> PlatformConfig:
    fields = [f.name for f, _ in legacy.ListFields()]
    batching = None
    if legacy.HasField("batching_parameters"):
        batching = batching_config.options_from_proto(legacy.batching_parameters)
    warm = legacy.model_warmup_options
    iterations = warm.num_request_iterations.value if warm.HasField("num_request_iterations") else 0
    session = legacy.session_config
    return PlatformConfig(
        session_config=session.SerializeToString() if legacy.HasField("session_config") else b"",
        batching=batching,
        tags=tuple(legacy.saved_model_tags),
        enable_model_warmup=bool(legacy.enable_model_warmup),
        warmup_iterations=int(iterations),
        ignored=tuple(name for name in fields if name not in _HONOURED),
    )
