"""SavedModel warm-up: replay ``<version>/assets.extra/tf_serving_warmup_requests``.

Mirrors ``tensorflow_serving/servables/tensorflow/saved_model_warmup{,_util}.cc``:

- The file is optional; absent means nothing to do.
- It is a TFRecord file of serialized ``tensorflow.serving.PredictionLog``; at most
  :data:`MAX_WARMUP_RECORDS` records. Each record is replayed ``iterations`` times
  (``--num_request_iterations_for_warmup`` when > 0, else once) and responses are
  discarded. The first error fails the load of the version.
- Errors, with TF Serving's codes and messages: more than 1000 records -> INVALID_ARGUMENT
  ``Number of warmup records exceeds the maximum (1000) at <path>``; an unparsable record
  -> INVALID_ARGUMENT ``Failed to parse warmup record: <bytes> from <path>``; a corrupt or
  truncated TFRecord -> DATA_LOSS ``<reader message>. Please verify your warmup data is in
  TFRecord format.``; a log that is not predict/classify/regress/multi_inference
  -> UNIMPLEMENTED ``Unsupported log_type for warmup: <oneof field number, 0 = unset>``;
  I/O errors keep TensorFlow's code and message.

Differences, on purpose: every record is read and checked before the first replay (TF
Serving interleaves reading and replaying, so it may replay some records before failing);
an unset or ``predict_streamed_log`` record is refused like ``session_run_log`` (classic TF
Serving silently skips them; its TFRT runtime refuses them); the raw record quoted in the
parse error is cut to :data:`_QUOTE_LIMIT` bytes. All functions are thread-safe (no state).
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from tensorserve.errors import Code, DataLoss, InvalidArgument, ServingError, Unimplemented

if TYPE_CHECKING:
    from tensorflow_serving.apis.prediction_log_pb2 import PredictionLog

WARMUP_FILENAME = "tf_serving_warmup_requests"
ASSETS_EXTRA_DIRECTORY = "assets.extra"
MAX_WARMUP_RECORDS = 1000
SUPPORTED_LOG_TYPES = frozenset(
    {"predict_log", "classify_log", "regress_log", "multi_inference_log"}
)
_DATA_LOSS_HINT = ". Please verify your warmup data is in TFRecord format."
_QUOTE_LIMIT = 1024

_log = logging.getLogger(__name__)


def warmup_file(version_dir: str) -> str | None:
    """Path of the version's warm-up file, or ``None`` when there is none.

    Local paths use ``os.path``; URIs (``gs://…``) use ``tf.io.gfile``. Like TF Serving,
    anything at that path counts as present (a directory then fails in reading).
    """
    path = _expected_path(version_dir)
    return path if _exists(path) else None


def read_warmup_records(path: str) -> list[PredictionLog]:
    """Read, parse and check every record of a warm-up file.

    Raises :class:`~tensorserve.errors.ServingError` subclasses as listed in the module
    docstring; never returns more than :data:`MAX_WARMUP_RECORDS` records.
    """
    import tensorflow as tf

    records: list[PredictionLog] = []
    try:
        for data in _record_iterator(path):
            records.append(_checked_log(data, path))
            if len(records) > MAX_WARMUP_RECORDS:
                raise InvalidArgument(
                    f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}"
                )
    except tf.errors.OpError as exc:
        raise _read_error(exc) from None
    return records


def run_warmup(
    records: Sequence[PredictionLog],
    replay: Callable[[PredictionLog], None],
    iterations: int,
) -> int:
    """Replay each record ``iterations`` times in file order; returns the replay count.

    ``iterations`` is ``--num_request_iterations_for_warmup``: values <= 0 mean once per
    record (TF Serving's default). The first exception from ``replay`` propagates.
    Runs on the calling thread; ``replay`` needs to be safe only for that thread.
    """
    per_record = iterations if iterations > 0 else 1
    replays = 0
    for record in records:
        for _ in range(per_record):
            replay(record)
            replays += 1
    return replays


def warm_up(version_dir: str, replay: Callable[[PredictionLog], None], iterations: int) -> int:
    """Find, read and replay a version's warm-up file, logging like TF Serving.

    Returns the number of replays (0 without a file); raises like
    :func:`read_warmup_records` or whatever ``replay`` raises.
    """
    path = warmup_file(version_dir)
    if path is None:
        _log.info("No warmup data file found at %s", _expected_path(version_dir))
        return 0
    start = time.monotonic()
    _log.info("Starting to read warmup data for model at %s", path)
    records = read_warmup_records(path)
    replays = run_warmup(records, replay, iterations)
    _log.info(
        "Finished reading warmup data for model at %s. Number of warmup records read: %d. "
        "Elapsed time (microseconds): %d.",
        path,
        len(records),
        int((time.monotonic() - start) * 1e6),
    )
    return replays


def _checked_log(data: bytes, path: str) -> PredictionLog:
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog()
    try:
        log.ParseFromString(data)
    except Exception:  # protobuf's DecodeError
        raise InvalidArgument(
            f"Failed to parse warmup record: {_quote(data)} from {path}"
        ) from None
    kind = log.WhichOneof("log_type")
    if kind not in SUPPORTED_LOG_TYPES:
        raise Unimplemented(f"Unsupported log_type for warmup: {_log_type_number(log, kind)}")
    return log


def _log_type_number(log: PredictionLog, kind: str | None) -> int:
    """The C++ ``log_type_case()`` value: the oneof field's number, 0 when unset."""
    if kind is None:
        return 0
    return int(log.DESCRIPTOR.fields_by_name[kind].number)


def _record_iterator(path: str) -> Iterator[bytes]:
    """TensorFlow's TFRecord reader (the one TF Serving uses), without its deprecation log."""
    import tensorflow as tf

    silence: Any = contextlib.nullcontext
    with contextlib.suppress(ImportError):
        from tensorflow.python.util import deprecation

        silence = deprecation.silence
    with silence():
        iterator: Iterator[bytes] = tf.compat.v1.io.tf_record_iterator(path)
    return iterator


def _read_error(exc: Any) -> ServingError:
    """Map a ``tf.errors.OpError`` raised while reading to a ServingError."""
    code = Code(exc.error_code)
    if code == Code.DATA_LOSS:
        return DataLoss(f"{exc.message}{_DATA_LOSS_HINT}")
    return ServingError(str(exc.message), code)


def _quote(data: bytes) -> str:
    text = data[:_QUOTE_LIMIT].decode("utf-8", "backslashreplace")
    return text + "..." if len(data) > _QUOTE_LIMIT else text


def _expected_path(version_dir: str) -> str:
    join = posixpath.join if _is_uri(version_dir) else os.path.join
    return join(version_dir, ASSETS_EXTRA_DIRECTORY, WARMUP_FILENAME)


def _exists(path: str) -> bool:
    if not _is_uri(path):
        return os.path.exists(path)
    import tensorflow as tf

    return bool(tf.io.gfile.exists(path))


def _is_uri(path: str) -> bool:
    return "://" in path
