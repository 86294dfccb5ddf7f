"""The TF Lite interpreter pool: a call waits for a free interpreter at most until its
deadline, and may run inline on the event loop only while one is free."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tensorserve.errors import DeadlineExceeded
from tensorserve.runtime.tflite import TfLiteServable


@pytest.fixture(scope="module")
def servable(models_dir: Path) -> Iterator[TfLiteServable]:
    loaded = TfLiteServable(str(models_dir / "mlp_tflite" / "1" / "model.tflite"), 1)
    yield loaded
    loaded.close()


def _call(servable: TfLiteServable, timeout_s: float | None) -> dict[str, np.ndarray]:
    (name, spec), *_ = servable.signatures.items()
    (key, _info), *_ = spec.inputs.items()
    rows = np.zeros((2, 784), dtype=np.float32)
    return servable.run(name, {key: rows}, list(spec.outputs), timeout_s)


def test_a_free_interpreter_answers(servable: TfLiteServable) -> None:
    outputs = _call(servable, 5.0)
    assert [value.shape for value in outputs.values()] == [(2, 10)]


def test_no_free_interpreter_within_the_deadline_is_deadline_exceeded(
    servable: TfLiteServable,
) -> None:
    held = servable._pool.get()  # every interpreter busy (the pool has one)
    try:
        assert not servable.inline_ok  # the dispatcher sends calls to the compute pool
        with pytest.raises(DeadlineExceeded, match=r"no TF Lite interpreter of .* became free"):
            _call(servable, 0.05)
        with pytest.raises(DeadlineExceeded):
            _call(servable, -1.0)  # a deadline already past
    finally:
        servable._pool.put(held)
    assert servable.inline_ok
    assert _call(servable, 5.0)  # the pool is whole again
