"""Request logging: config validation, sampling, async TFRecord writing, rotation, drops."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import tensorflow as tf
from google.protobuf import any_pb2, text_format
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
from tensorflow_serving.config import logging_config_pb2, model_server_config_pb2

from tensorserve.config.logging_config import (
    DEFAULT_MAX_FILE_BYTES,
    LoggingConfigError,
    RequestLoggingOptions,
    parse_logging_config,
)
from tensorserve.runtime.request_log import RequestLogger, file_name
from tensorserve.runtime.warmup import read_warmup_records

Logger = Callable[..., RequestLogger]


def make_log(i: int, payload: int = 0) -> Any:
    tensor = tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT, float_val=[float(i)], string_val=[b"p" * payload]
    )
    spec = model_pb2.ModelSpec(name="m")
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(
            request=predict_pb2.PredictRequest(model_spec=spec, inputs={"x": tensor}),
            response=predict_pb2.PredictResponse(model_spec=spec),
        )
    )
    log.log_metadata.model_spec.CopyFrom(spec)
    log.log_metadata.saved_model_tags.append("serve")
    return log


def recording_build(calls: list[object], i: int) -> Any:
    calls.append(i)
    return make_log(i)


def log_id(log: Any) -> int:
    return int(log.predict_log.request.inputs["x"].float_val[0])


def files_of(prefix_dir: Path) -> list[Path]:
    return sorted(prefix_dir.rglob("*.tfrecord"))


def read_file(path: Path) -> list[Any]:
    logs = []
    for raw in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(raw.numpy())
        logs.append(log)
    return logs


def read_all(prefix_dir: Path) -> list[Any]:
    return [log for path in files_of(prefix_dir) for log in read_file(path)]


def options(tmp_path: Path, rate: float = 1.0, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Any:
    return RequestLoggingOptions(
        sampling_rate=rate, filename_prefix=str(tmp_path / "logs" / "m"), max_file_bytes=max_bytes
    )


@pytest.fixture
def new_logger() -> Iterator[Logger]:
    """Builds loggers and closes them all at teardown (no thread outlives a test)."""
    made: list[RequestLogger] = []

    def build(*args: Any, **kwargs: Any) -> RequestLogger:
        made.append(RequestLogger(*args, **kwargs))
        return made[-1]

    yield build
    for logger in made:
        assert logger.close(10)


class MemorySink:
    """A RecordSink keeping records in memory."""

    def __init__(self, path: str, store: dict[str, list[bytes]]) -> None:
        self.records = store.setdefault(path, [])

    def write(self, record: bytes) -> None:
        self.records.append(record)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


# ---------------------------------------------------------------- config


def test_config_missing_is_none() -> None:
    assert parse_logging_config(None) is None
    assert parse_logging_config(b"") is None


def test_config_from_model_config_text() -> None:
    text = """
      name: "m" base_path: "/models/m" model_platform: "tensorflow"
      logging_config {
        log_collector_config { type: "tfrecord" filename_prefix: "/var/log/tfs/m" }
        sampling_config { sampling_rate: 0.25 attributes: 1 }
      }
    """
    model = text_format.Parse(text, model_server_config_pb2.ModelConfig())
    parsed = parse_logging_config(model.logging_config.SerializeToString(), max_file_bytes=1000)
    assert parsed == RequestLoggingOptions(0.25, "/var/log/tfs/m", 1000)
    assert parse_logging_config(model.logging_config) == RequestLoggingOptions(
        0.25, "/var/log/tfs/m", DEFAULT_MAX_FILE_BYTES
    )


def _config(**collector: str) -> Any:
    config = logging_config_pb2.LoggingConfig()
    config.log_collector_config.filename_prefix = collector.get("prefix", "/tmp/x")
    config.log_collector_config.type = collector.get("type", "")
    config.sampling_config.sampling_rate = 0.5
    return config


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan")])
def test_config_rate_out_of_range(rate: float) -> None:
    config = _config()
    config.sampling_config.sampling_rate = rate
    with pytest.raises(LoggingConfigError, match=r"model 'm': .*sampling_rate must be in \[0, 1\]"):
        parse_logging_config(config, model_name="m")


def test_config_requires_prefix() -> None:
    with pytest.raises(LoggingConfigError, match="filename_prefix is required"):
        parse_logging_config(_config(prefix=""))


def test_config_refuses_unknown_type() -> None:
    assert parse_logging_config(_config(type="tfrecord")) is not None
    with pytest.raises(LoggingConfigError, match=r"log_collector_config\.type 'kafka'"):
        parse_logging_config(_config(type="kafka"))


def test_config_refuses_custom_and_per_task() -> None:
    custom = _config()
    custom.custom_logging_config.CopyFrom(any_pb2.Any(type_url="type.googleapis.com/x.Y"))
    with pytest.raises(LoggingConfigError, match="custom_logging_config"):
        parse_logging_config(custom)
    per_task = _config()
    per_task.sampling_config.per_task_sampling_configs.add(sampling_rate=1.0)
    with pytest.raises(LoggingConfigError, match="per_task_sampling_configs"):
        parse_logging_config(per_task)


def test_config_refuses_bad_bytes_and_max_file_bytes() -> None:
    with pytest.raises(LoggingConfigError, match="not a valid LoggingConfig"):
        parse_logging_config(b"\xff\xff\xff")
    with pytest.raises(LoggingConfigError, match="max_file_bytes"):
        parse_logging_config(_config(), max_file_bytes=0)


# ---------------------------------------------------------------- logger


def test_concurrent_logging_round_trips(tmp_path: Path, new_logger: Logger) -> None:
    results: list[bool] = []
    logger = new_logger(options(tmp_path), "m", results.append)
    threads_n, per_thread = 8, 50

    def produce(t: int) -> None:
        for j in range(per_thread):
            i = t * per_thread + j
            logger.maybe_log(partial(make_log, i))

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert logger.flush(10)
    total = threads_n * per_thread
    logs = read_all(tmp_path)
    assert sorted(log_id(log) for log in logs) == list(range(total))
    assert all(log.log_metadata.sampling_config.sampling_rate == 1.0 for log in logs)
    assert all(log.log_metadata.timestamp_secs > 0 for log in logs)
    assert all(list(log.log_metadata.saved_model_tags) == ["serve"] for log in logs)
    stats = logger.stats()
    assert (stats.sampled, stats.written, stats.dropped, stats.failed) == (total, total, 0, 0)
    assert results == [True] * total


def test_rate_zero_never_builds(tmp_path: Path, new_logger: Logger) -> None:
    calls: list[object] = []

    def rng() -> float:
        calls.append("rng")
        return 0.0

    logger = new_logger(options(tmp_path, rate=0.0), "m", rng=rng)
    for i in range(100):
        logger.maybe_log(partial(recording_build, calls, i))
    assert logger.flush(10)
    assert calls == []
    assert logger.stats().sampled == 0
    assert files_of(tmp_path) == []


def test_rate_half_with_seeded_rng(tmp_path: Path, new_logger: Logger) -> None:
    store: dict[str, list[bytes]] = {}
    built: list[object] = []
    logger = new_logger(
        options(tmp_path, rate=0.5),
        "m",
        rng=random.Random(1234).random,
        sink_factory=lambda path: MemorySink(path, store),
        queue_capacity=4000,  # room for every log: this test is about sampling, not drops
    )
    n = 4000
    for i in range(n):
        logger.maybe_log(partial(recording_build, built, i))
    assert logger.flush(10)
    assert 0.45 * n <= len(built) <= 0.55 * n
    assert logger.stats().written == len(built)
    assert sum(len(records) for records in store.values()) == len(built)


def test_rotation_makes_several_valid_files(tmp_path: Path, new_logger: Logger) -> None:
    stamped = make_log(0, payload=100)  # as the logger will write it
    stamped.log_metadata.timestamp_secs = 2_000_000_000
    stamped.log_metadata.sampling_config.sampling_rate = 1.0
    record_size = len(stamped.SerializeToString()) + 16
    max_bytes = record_size * 3 + 10
    logger = new_logger(options(tmp_path, max_bytes=max_bytes), "m")
    for i in range(10):
        logger.maybe_log(partial(make_log, i, payload=100))
    logger.maybe_log(lambda: make_log(10, payload=4 * max_bytes))  # bigger than a file
    assert logger.close(10)
    files = files_of(tmp_path)
    assert len(files) == 5  # 3 + 3 + 3 + 1 + the big one alone
    per_file = [[log_id(log) for log in read_file(path)] for path in files]
    assert sorted(i for ids in per_file for i in ids) == list(range(11))
    assert [10] in per_file
    for path, ids in zip(files, per_file, strict=True):
        assert ids == [10] or path.stat().st_size <= max_bytes
        assert path.name.startswith("m.") and path.name.endswith(".tfrecord")
    assert logger.stats().files == 5


def test_full_queue_drops_without_blocking(tmp_path: Path, new_logger: Logger) -> None:
    entered, release = threading.Event(), threading.Event()
    results: list[bool] = []

    class BlockedSink(MemorySink):
        def write(self, record: bytes) -> None:
            entered.set()
            release.wait(10)
            super().write(record)

    store: dict[str, list[bytes]] = {}
    logger = new_logger(
        options(tmp_path),
        "m",
        results.append,
        queue_capacity=2,
        sink_factory=lambda path: BlockedSink(path, store),
    )
    try:
        logger.maybe_log(lambda: make_log(0))
        assert entered.wait(10)  # the writer holds log 0; the queue is empty again

        def produce() -> None:
            for i in range(1, 6):
                logger.maybe_log(partial(make_log, i))

        producer = threading.Thread(target=produce)
        producer.start()
        producer.join(10)
        assert not producer.is_alive()
        assert logger.stats().dropped == 3
        assert results == [False] * 3
    finally:
        release.set()
    assert logger.flush(10)
    stats = logger.stats()
    assert (stats.sampled, stats.written, stats.dropped) == (6, 3, 3)
    assert results.count(True) == 3


def test_flush_times_out_while_writer_is_stuck(tmp_path: Path, new_logger: Logger) -> None:
    release = threading.Event()

    class StuckSink(MemorySink):
        def write(self, record: bytes) -> None:
            release.wait(10)

    logger = new_logger(options(tmp_path), "m", sink_factory=lambda path: StuckSink(path, {}))
    try:
        logger.maybe_log(lambda: make_log(0))
        assert not logger.flush(0.01)
    finally:
        release.set()
    assert logger.flush(10)


def test_build_errors_are_counted_not_raised(tmp_path: Path, new_logger: Logger) -> None:
    results: list[bool] = []
    logger = new_logger(options(tmp_path), "m", results.append)

    def broken() -> Any:
        raise RuntimeError("boom")

    logger.maybe_log(broken)
    logger.maybe_log(lambda: make_log(1))
    assert logger.flush(10)
    stats = logger.stats()
    assert (stats.sampled, stats.failed, stats.written) == (2, 1, 1)
    assert sorted(results) == [False, True]


def test_write_errors_are_counted_and_logged_once(
    tmp_path: Path, new_logger: Logger, caplog: pytest.LogCaptureFixture
) -> None:
    def no_files(path: str) -> MemorySink:
        raise OSError(f"cannot open {path}")

    results: list[bool] = []
    logger = new_logger(options(tmp_path), "m", results.append, sink_factory=no_files)
    with caplog.at_level(logging.WARNING, logger="tensorserve.runtime.request_log"):
        for i in range(5):
            logger.maybe_log(partial(make_log, i))
            assert logger.flush(10)
    assert logger.stats().failed == 5
    assert results == [False] * 5
    warnings = [r for r in caplog.records if "writing the log failed" in r.getMessage()]
    assert len(warnings) == 1
    assert "OSError" in warnings[0].getMessage()


def test_new_file_after_a_write_error(tmp_path: Path, new_logger: Logger) -> None:
    store: dict[str, list[bytes]] = {}
    failures = [OSError("disk full")]

    class FlakySink(MemorySink):
        def write(self, record: bytes) -> None:
            if failures:
                raise failures.pop()
            super().write(record)

    logger = new_logger(options(tmp_path), "m", sink_factory=lambda path: FlakySink(path, store))
    for i in range(3):
        logger.maybe_log(partial(make_log, i))
        assert logger.flush(10)
    stats = logger.stats()
    assert (stats.failed, stats.written, stats.files) == (1, 2, 2)
    assert [len(records) for records in store.values()] == [0, 2]


def test_close_drains_and_is_idempotent(tmp_path: Path, new_logger: Logger) -> None:
    results: list[bool] = []
    logger = new_logger(options(tmp_path), "m", results.append)
    for i in range(20):
        logger.maybe_log(partial(make_log, i))
    assert logger.close(10)
    assert logger.close(10)
    assert sorted(log_id(log) for log in read_all(tmp_path)) == list(range(20))
    logger.maybe_log(lambda: make_log(99))
    assert logger.stats().dropped == 1
    assert results == [True] * 20 + [False]


def test_prefix_directory_is_created(tmp_path: Path, new_logger: Logger) -> None:
    prefix = tmp_path / "a" / "b" / "model_a"
    logger = new_logger(RequestLoggingOptions(1.0, str(prefix)), "m")
    logger.maybe_log(lambda: make_log(0))
    assert logger.flush(10)
    (path,) = files_of(tmp_path)
    assert path.parent == prefix.parent
    assert path.name.startswith("model_a.")


def test_prefix_ending_in_slash_is_a_directory(tmp_path: Path, new_logger: Logger) -> None:
    logger = new_logger(RequestLoggingOptions(1.0, f"{tmp_path}/logs/"), "m")
    logger.maybe_log(lambda: make_log(0))
    assert logger.flush(10)
    (path,) = files_of(tmp_path)
    assert path.parent == tmp_path / "logs"
    assert path.name[0].isdigit()


def test_file_names_never_repeat(tmp_path: Path) -> None:
    prefix = str(tmp_path / "m")
    first, second = file_name(prefix, 1), file_name(prefix, 2)
    assert first != second
    assert first.startswith(prefix + ".") and first.endswith(".000001.tfrecord")


def test_logged_file_is_a_valid_warmup_file(tmp_path: Path, new_logger: Logger) -> None:
    logger = new_logger(options(tmp_path), "m")
    for i in range(3):
        logger.maybe_log(partial(make_log, i))
    assert logger.close(10)
    (path,) = files_of(tmp_path)
    records = read_warmup_records(str(path))
    assert [log_id(log) for log in records] == [0, 1, 2]
    assert records[0].WhichOneof("log_type") == "predict_log"
