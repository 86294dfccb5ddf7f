"""Command line with ``tensorflow_model_server``'s flag names -> :class:`ServerOptions`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from tensorserve import __version__
from tensorserve.options import ServerOptions, option_fields

_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}


class CliError(ValueError):
    """A flag combination that cannot start a server.

    ``tf_serving`` is TF Serving's own message for it (printed as its ``Failed to start
    server. Error: INVALID_ARGUMENT: ...`` line, which scripts grep); ``str()`` is ours.
    """

    def __init__(self, message: str, tf_serving: str = "") -> None:
        super().__init__(message)
        self.tf_serving = tf_serving


def _bool(text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def build_parser() -> argparse.ArgumentParser:
    """An argparse parser generated from ServerOptions' fields."""
    parser = argparse.ArgumentParser(
        prog="tensorserve",
        description="Serve TensorFlow SavedModels over TF Serving's REST and gRPC APIs.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--version",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="print the version and exit (also --version=true, as TF Serving)",
    )
    for f in option_fields():
        kind = (
            f.type
            if isinstance(f.type, type)
            else {"int": int, "str": str, "bool": bool, "float": float}[str(f.type)]
        )
        help_text = f"{f.metadata['help']} (default: {f.default})"
        if kind is bool:
            parser.add_argument(
                f"--{f.name}",
                type=_bool,
                nargs="?",
                const=True,
                default=f.default,
                help=help_text,
                metavar="true|false",
            )
        else:
            parser.add_argument(f"--{f.name}", type=kind, default=f.default, help=help_text)
    return parser


def parse_args(argv: Sequence[str]) -> ServerOptions | None:
    """Flags -> options; None when --version was asked. argparse exits on bad flags."""
    ns = build_parser().parse_args(list(argv))
    if ns.version:
        return None
    values: dict[str, Any] = {f.name: getattr(ns, f.name) for f in option_fields()}
    options = ServerOptions(**values)
    validate(options)
    return options


_POSITIVE = (  # the request limits: 0 would refuse everything, not lift the limit
    "rest_api_max_body_bytes",
    "rest_api_max_buffered_body_bytes",
    "rest_api_max_header_bytes",
    "rest_api_header_timeout_seconds",
    "rest_api_body_timeout_seconds",
    "rest_api_keepalive_timeout_seconds",
    "rest_api_max_connections",
)


def validate(options: ServerOptions) -> None:
    """Start-up checks TF Serving makes, with messages that name the problem."""
    if not options.model_config_file and not options.model_base_path:
        raise CliError(
            "Both --model_config_file and --model_base_path are empty! Give one of them.",
            "Both server_options.model_base_path and server_options.model_config_file are empty!",
        )
    if options.port == 0 and not options.grpc_socket_path and options.rest_api_port == 0:
        raise CliError(
            "Nothing to serve on: --port is 0 and no --grpc_socket_path or --rest_api_port is set",
            "At least one of server_options.grpc_port or server_options.grpc_socket_path must "
            "be set.",
        )
    if options.rest_api_port and options.rest_api_port == options.port:
        raise CliError(
            f"--rest_api_port ({options.rest_api_port}) must differ from --port (TF Serving "
            "would start without REST; tensorserve does not start half of what was asked)",
            "server_options.http_port cannot be same as grpc_port. Please use a different port "
            "for HTTP/REST API. Skipped exporting HTTP/REST API.",
        )
    if options.batching_parameters_file and not options.enable_batching:
        raise CliError(
            "--batching_parameters_file is set but --enable_batching is not",
            "server_options.batching_parameters_file is set without setting "
            "server_options.enable_batching to true.",
        )
    parallel = (
        options.tensorflow_session_parallelism,
        options.tensorflow_intra_op_parallelism,
        options.tensorflow_inter_op_parallelism,
    )
    if all(p > 0 for p in parallel):
        raise CliError(
            "Set either --tensorflow_session_parallelism or the intra/inter-op flags, not all "
            "three",
            "Either configure server_options.tensorflow_session_parallelism or "
            "(server_options.tensorflow_intra_op_parallelism, "
            "server_options.tensorflow_inter_op_parallelism) separately. You cannot configure "
            "all.",
        )
    if options.version_swap_policy not in ("availability_preserving", "resource_preserving"):
        raise CliError(f"--version_swap_policy: unknown policy '{options.version_swap_policy}'")
    if options.log_format not in ("text", "json"):
        raise CliError(f"--log_format must be text or json, got '{options.log_format}'")
    if not options.tags:
        raise CliError("--saved_model_tags is empty")
    for name in _POSITIVE:
        value = getattr(options, name)
        if value < 1:
            raise CliError(f"--{name} must be at least 1, got {value}")
    if options.use_alts_credentials:
        raise CliError(
            "--use_alts_credentials=true cannot be honoured: tensorserve has no ALTS "
            "(Google's Application Layer Transport Security needs GCP's handshaker service). "
            "Use --ssl_config_file for TLS; refusing rather than serving without the "
            "security asked for",
            "Either use_alts_credentials must be false or ssl_config_file must be empty."
            if options.ssl_config_file
            else "",
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tensorserve`` command and ``python -m tensorserve``."""
    args = sys.argv[1:] if argv is None else argv
    try:
        options = parse_args(args)
    except CliError as exc:
        if exc.tf_serving:
            print(
                f"Failed to start server. Error: INVALID_ARGUMENT: {exc.tf_serving}",
                file=sys.stderr,
            )
        print(f"tensorserve: error: {exc}", file=sys.stderr)
        return 2
    if options is None:
        print(f"TensorFlow ModelServer: tensorserve {__version__}")
        from importlib.metadata import version

        print(f"TensorFlow Library: {version('tensorflow')}")
        return 0
    from tensorserve.runtime import tf_env  # imports nothing heavy

    tf_env.configure(options.log_level)  # TensorFlow's C++ level is read at its first import
    tf_env.install()
    from tensorserve.server import run

    return run(options)
