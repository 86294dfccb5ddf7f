"""Warm-up file discovery, reading (TF Serving's errors) and replay."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    input_pb2,
    model_pb2,
    predict_pb2,
    prediction_log_pb2,
    regression_pb2,
    session_service_pb2,
)

from tensorserve.errors import Code, DataLoss, InvalidArgument, ServingError, Unimplemented
from tensorserve.runtime.warmup import (
    MAX_WARMUP_RECORDS,
    read_warmup_records,
    run_warmup,
    warm_up,
    warmup_file,
)

HINT = ". Please verify your warmup data is in TFRecord format."


def _spec() -> Any:
    return model_pb2.ModelSpec(name="m", signature_name="serving_default")


def _input() -> Any:
    feature = feature_pb2.Feature(float_list=feature_pb2.FloatList(value=[1.5]))
    example = example_pb2.Example(features=feature_pb2.Features(feature={"x": feature}))
    return input_pb2.Input(example_list=input_pb2.ExampleList(examples=[example]))


def predict_log(value: float = 1.0) -> Any:
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[value])
    request = predict_pb2.PredictRequest(model_spec=_spec(), inputs={"x": tensor})
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
    )


def all_kinds() -> list[Any]:
    classify = classification_pb2.ClassificationRequest(model_spec=_spec(), input=_input())
    regress = regression_pb2.RegressionRequest(model_spec=_spec(), input=_input())
    task = inference_pb2.InferenceTask(model_spec=_spec(), method_name="tensorflow/serving/regress")
    multi = inference_pb2.MultiInferenceRequest(tasks=[task], input=_input())
    return [
        predict_log(2.0),
        prediction_log_pb2.PredictionLog(
            classify_log=prediction_log_pb2.ClassifyLog(request=classify)
        ),
        prediction_log_pb2.PredictionLog(
            regress_log=prediction_log_pb2.RegressLog(request=regress)
        ),
        prediction_log_pb2.PredictionLog(
            multi_inference_log=prediction_log_pb2.MultiInferenceLog(request=multi)
        ),
    ]


def write_records(path: Path, records: Iterable[bytes]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def warmup_path(version_dir: Path) -> Path:
    return version_dir / "assets.extra" / "tf_serving_warmup_requests"


def test_warmup_file_absent_is_none(tmp_path: Path) -> None:
    assert warmup_file(str(tmp_path)) is None
    (tmp_path / "assets.extra").mkdir()
    assert warmup_file(str(tmp_path)) is None


def test_warmup_file_present(tmp_path: Path) -> None:
    path = write_records(warmup_path(tmp_path), [predict_log().SerializeToString()])
    assert warmup_file(str(tmp_path)) == path


def test_reads_every_kind_in_order(tmp_path: Path) -> None:
    logs = all_kinds()
    path = write_records(warmup_path(tmp_path), (log.SerializeToString() for log in logs))
    records = read_warmup_records(path)
    assert records == logs
    assert [r.WhichOneof("log_type") for r in records] == [
        "predict_log",
        "classify_log",
        "regress_log",
        "multi_inference_log",
    ]


def test_empty_file_has_no_records(tmp_path: Path) -> None:
    path = write_records(warmup_path(tmp_path), [])
    assert read_warmup_records(path) == []


def test_max_records_is_accepted(tmp_path: Path) -> None:
    data = predict_log().SerializeToString()
    path = write_records(tmp_path / "w", [data] * MAX_WARMUP_RECORDS)
    assert len(read_warmup_records(path)) == MAX_WARMUP_RECORDS


def test_too_many_records(tmp_path: Path) -> None:
    data = predict_log().SerializeToString()
    path = write_records(tmp_path / "w", [data] * (MAX_WARMUP_RECORDS + 1))
    with pytest.raises(InvalidArgument) as info:
        read_warmup_records(path)
    assert info.value.code == Code.INVALID_ARGUMENT
    assert str(info.value) == f"Number of warmup records exceeds the maximum (1000) at {path}"


def test_unparsable_record(tmp_path: Path) -> None:
    good = predict_log().SerializeToString()
    path = write_records(tmp_path / "w", [good, b"\xff\xff\xff\xff garbage"])
    with pytest.raises(InvalidArgument) as info:
        read_warmup_records(path)
    message = str(info.value)
    assert message.startswith("Failed to parse warmup record: ")
    assert message.endswith(f" from {path}")
    assert "garbage" in message


def test_parse_error_quotes_at_most_1024_bytes(tmp_path: Path) -> None:
    path = write_records(tmp_path / "w", [b"\xff" + b"z" * 5000])
    with pytest.raises(InvalidArgument) as info:
        read_warmup_records(path)
    assert "z" * 1023 + "..." in str(info.value)
    assert "z" * 1024 not in str(info.value)


def test_truncated_file_is_data_loss(tmp_path: Path) -> None:
    data = predict_log().SerializeToString()
    full = write_records(tmp_path / "full", [data, data])
    cut = tmp_path / "cut"
    cut.write_bytes(Path(full).read_bytes()[:-3])
    with pytest.raises(DataLoss) as info:
        read_warmup_records(str(cut))
    assert info.value.code == Code.DATA_LOSS
    assert "truncated record at" in str(info.value)
    assert str(info.value).endswith(HINT)


def test_not_a_tfrecord_file_is_data_loss(tmp_path: Path) -> None:
    path = tmp_path / "w"
    path.write_bytes(b"this is not a TFRecord file at all")
    with pytest.raises(DataLoss) as info:
        read_warmup_records(str(path))
    assert str(info.value) == f"corrupted record at 0 (Is this even a TFRecord file?){HINT}"


def test_corrupted_payload_is_data_loss(tmp_path: Path) -> None:
    full = write_records(tmp_path / "w", [predict_log().SerializeToString()])
    raw = bytearray(Path(full).read_bytes())
    raw[14] ^= 0xFF  # a payload byte: its crc no longer matches
    Path(full).write_bytes(bytes(raw))
    with pytest.raises(DataLoss, match="corrupted record at 12"):
        read_warmup_records(full)


def test_missing_file_keeps_tensorflow_code(tmp_path: Path) -> None:
    with pytest.raises(ServingError) as info:
        read_warmup_records(str(tmp_path / "nope"))
    assert info.value.code == Code.NOT_FOUND


def _unsupported(kind: str) -> Any:
    log = prediction_log_pb2.PredictionLog()
    if kind == "session_run_log":
        request = session_service_pb2.SessionRunRequest(model_spec=_spec())
        log.session_run_log.request.CopyFrom(request)
    elif kind == "predict_streamed_log":
        log.predict_streamed_log.request.add().CopyFrom(predict_pb2.PredictRequest())
    log.log_metadata.model_spec.name = "m"
    return log


@pytest.mark.parametrize(
    ("kind", "number"), [("session_run_log", 5), ("predict_streamed_log", 7), ("unset", 0)]
)
def test_unsupported_log_types(tmp_path: Path, kind: str, number: int) -> None:
    log = _unsupported(kind)
    assert log.WhichOneof("log_type") == (None if kind == "unset" else kind)
    path = write_records(
        tmp_path / "w", [predict_log().SerializeToString(), log.SerializeToString()]
    )
    with pytest.raises(Unimplemented) as info:
        read_warmup_records(path)
    assert str(info.value) == f"Unsupported log_type for warmup: {number}"


def test_run_warmup_repeats_each_record_in_order() -> None:
    records = [predict_log(float(i)) for i in range(3)]
    seen: list[float] = []

    def replay(record: Any) -> None:
        seen.append(record.predict_log.request.inputs["x"].float_val[0])

    count = run_warmup(records, replay, 4)
    assert count == 12
    assert seen == [0.0] * 4 + [1.0] * 4 + [2.0] * 4


@pytest.mark.parametrize("iterations", [0, -1, 1])
def test_run_warmup_defaults_to_once(iterations: int) -> None:
    seen: list[Any] = []
    assert run_warmup([predict_log(), predict_log()], seen.append, iterations) == 2
    assert len(seen) == 2


def test_run_warmup_first_error_propagates() -> None:
    calls: list[Any] = []

    def replay(record: Any) -> None:
        calls.append(record)
        if len(calls) == 2:
            raise InvalidArgument("bad input")

    with pytest.raises(InvalidArgument, match="bad input"):
        run_warmup([predict_log(), predict_log(), predict_log()], replay, 1)
    assert len(calls) == 2


def test_warm_up_end_to_end(tmp_path: Path) -> None:
    logs = all_kinds()
    write_records(warmup_path(tmp_path), (log.SerializeToString() for log in logs))
    seen: list[Any] = []
    assert warm_up(str(tmp_path), seen.append, 2) == 8
    assert seen[::2] == logs


def test_warm_up_without_file_does_nothing(tmp_path: Path) -> None:
    seen: list[Any] = []
    assert warm_up(str(tmp_path), seen.append, 3) == 0
    assert seen == []


def test_warm_up_fails_before_any_replay_on_bad_file(tmp_path: Path) -> None:
    bad = _unsupported("session_run_log").SerializeToString()
    write_records(warmup_path(tmp_path), [predict_log().SerializeToString(), bad])
    seen: list[Any] = []
    with pytest.raises(Unimplemented):
        warm_up(str(tmp_path), seen.append, 1)
    assert seen == []


def test_uri_paths_use_gfile(tmp_path: Path) -> None:
    # ram:// is TensorFlow's in-memory filesystem, standing in for gs:// and friends.
    version_dir = f"ram://{os.getpid()}{tmp_path}/1"
    assert warmup_file(version_dir) is None
    path = f"{version_dir}/assets.extra/tf_serving_warmup_requests"
    tf.io.gfile.makedirs(f"{version_dir}/assets.extra")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(predict_log().SerializeToString())
    assert warmup_file(version_dir) == path
    assert read_warmup_records(path) == [predict_log()]
