"""BatchingParameters text proto -> BatchingOptions: defaults, normalization, validation."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from tensorserve.config.batching import (
    BatchingConfigError,
    BatchingOptions,
    default_batching_options,
    load_batching_file,
    parse_batching_parameters,
)
from tests.harness import SHARED_TESTDATA

TESTDATA = SHARED_TESTDATA


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def test_empty_text_gives_tf_serving_defaults() -> None:
    options = parse_batching_parameters("")
    assert options == BatchingOptions(
        max_batch_size=1000,
        batch_timeout_micros=0,
        max_enqueued_batches=10,
        num_batch_threads=_cpus(),
        thread_pool_name="batch_threads",
        allowed_batch_sizes=(),
        pad_variable_length_inputs=False,
        enable_large_batch_splitting=False,
        max_execution_batch_size=1000,
        batch_padding_policy="PAD_UP",
    )


def test_default_batching_options_name_the_model_server_pool() -> None:
    options = default_batching_options()
    assert options.thread_pool_name == "model_server_batch_threads"
    assert dataclasses.replace(options, thread_pool_name="batch_threads") == BatchingOptions()


@pytest.mark.skipif(not TESTDATA.is_dir(), reason="../shared/testdata/tfserving is not present")
def test_tf_serving_testdata_file() -> None:
    options = load_batching_file(TESTDATA / "batching_config.txt")
    assert (options.max_batch_size, options.batch_timeout_micros) == (128, 0)
    assert (options.max_enqueued_batches, options.num_batch_threads) == (1000000, 8)
    assert options.max_execution_batch_size == 128


def test_every_field_parses() -> None:
    options = parse_batching_parameters(
        """
        max_batch_size { value: 64 }
        batch_timeout_micros { value: 5000 }
        max_enqueued_batches { value: 3 }
        num_batch_threads { value: 2 }
        thread_pool_name { value: "pool" }
        allowed_batch_sizes: 8
        allowed_batch_sizes: 16
        allowed_batch_sizes: 32
        pad_variable_length_inputs: true
        enable_large_batch_splitting { value: true }
        max_execution_batch_size { value: 32 }
        batch_padding_policy { value: "BATCH_DOWN" }
        """
    )
    assert options == BatchingOptions(
        64, 5000, 3, 2, "pool", (8, 16, 32), True, True, 32, "BATCH_DOWN"
    )


def test_execution_size_defaults_to_max_batch_size_when_splitting() -> None:
    text = "max_batch_size { value: 50 } enable_large_batch_splitting { value: true }"
    assert parse_batching_parameters(text).max_execution_batch_size == 50


def test_execution_size_is_ignored_without_splitting() -> None:
    text = "max_batch_size { value: 50 } max_execution_batch_size { value: 7 }"
    assert parse_batching_parameters(text).max_execution_batch_size == 50


def test_zero_max_enqueued_batches_becomes_one_without_splitting() -> None:
    assert parse_batching_parameters("max_enqueued_batches { value: 0 }").max_enqueued_batches == 1


def test_allowed_sizes_may_end_at_max_batch_size_when_splitting() -> None:
    text = """max_batch_size { value: 100 } enable_large_batch_splitting { value: true }
        max_execution_batch_size { value: 10 } allowed_batch_sizes: [5, 100]"""
    assert parse_batching_parameters(text).allowed_batch_sizes == (5, 100)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_batch_size { value: 0 }", "max_batch_size must be positive; was 0"),
        ("max_batch_size { value: -3 }", "max_batch_size must be positive; was -3"),
        ("num_batch_threads { value: 0 }", "num_batch_threads must be positive; was 0"),
        ("max_enqueued_batches { value: -1 }", "max_enqueued_batches must be positive; was -1"),
        (
            "max_enqueued_batches { value: 0 } enable_large_batch_splitting { value: true }",
            "max_enqueued_batches must be positive; was 0",
        ),
        (
            "batch_timeout_micros { value: -1 }",
            "batch_timeout_micros must be non-negative; was -1",
        ),
        (
            "enable_large_batch_splitting { value: true } max_execution_batch_size { value: -2 }",
            "max_execution_batch_size must be positive; was -2",
        ),
        (
            "max_batch_size { value: 8 } enable_large_batch_splitting { value: true } "
            "max_execution_batch_size { value: 16 }",
            "When enable_large_batch_splitting is true, max_batch_size must be greater than or "
            "equal to max_execution_batch_size; max_batch_size was 8, max_execution_batch_size "
            "was 16",
        ),
        (
            "max_batch_size { value: 8 } allowed_batch_sizes: [2, 4]",
            "Last entry in allowed_batch_sizes must match max_batch_size; last entry was 4; "
            "expected 8",
        ),
        (
            "max_batch_size { value: 8 } allowed_batch_sizes: [4, 2, 8]",
            "allowed_batch_sizes entries must be monotonically increasing; got [4, 2, 8]",
        ),
        (
            "max_batch_size { value: 8 } allowed_batch_sizes: [4, 4, 8]",
            "allowed_batch_sizes entries must be monotonically increasing; got [4, 4, 8]",
        ),
        (
            "max_batch_size { value: 8 } allowed_batch_sizes: [0, 8]",
            "allowed_batch_sizes entries must be positive; got [0, 8]",
        ),
        (
            "max_batch_size { value: 100 } enable_large_batch_splitting { value: true } "
            "max_execution_batch_size { value: 10 } allowed_batch_sizes: [5, 8]",
            "Last entry in allowed_batch_sizes must be equal to max_execution_batch_size or "
            "max_batch_size; last entry was 8; expected 10 or 100",
        ),
        (
            'batch_padding_policy { value: "PAD_SIDEWAYS" }',
            "batch_padding_policy must be one of ['BATCH_DOWN', 'MINIMIZE_TPU_COST_PER_REQUEST', "
            "'PAD_UP']; was 'PAD_SIDEWAYS'",
        ),
    ],
)
def test_invalid_values_are_named(text: str, message: str) -> None:
    with pytest.raises(BatchingConfigError) as info:
        parse_batching_parameters(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "text",
    ["max_batch_size: 5", "no_such_field { value: 1 }", "max_batch_size { value: 1", "}{"],
)
def test_text_format_errors(text: str) -> None:
    expected = (
        r"^batching parameters is not a valid tensorflow\.serving\.BatchingParameters text "
        r"proto: line 1, column \d+: "
    )
    with pytest.raises(BatchingConfigError, match=expected):
        parse_batching_parameters(text)


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(BatchingConfigError, match="num_batch_threads must be positive"):
        BatchingOptions(num_batch_threads=0)


def test_load_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(
        BatchingConfigError, match=rf"^Cannot read batching parameters file {missing}"
    ):
        load_batching_file(missing)


def test_load_names_the_file_on_invalid_content(tmp_path: Path) -> None:
    path = tmp_path / "batching.txt"
    path.write_text("max_batch_size { value: 0 }")
    with pytest.raises(BatchingConfigError) as info:
        load_batching_file(str(path))
    assert str(info.value) == f"{path}: max_batch_size must be positive; was 0"


def test_batching_config_error_is_a_value_error() -> None:
    assert issubclass(BatchingConfigError, ValueError)
