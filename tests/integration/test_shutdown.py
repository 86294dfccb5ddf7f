"""Graceful shutdown on SIGTERM / SIGINT: stop accepting, finish in-flight requests, unload,
exit 0."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from tests.harness import Server, model_config, start_server

ROWS = 200  # a few MB of JSON per request
CONCURRENT = 4


@dataclass
class Outcome:
    status: int
    done_at: float
    body: bytes
    error: str = ""


def post_slowly(
    server: Server,
    body: bytes,
    outcomes: list[Outcome],
    sent_half: threading.Event,
    gate: threading.Event,
) -> None:
    """POST ``body`` in two halves: the second only once ``gate`` opens (after the signal)."""

    def chunks() -> Iterator[bytes]:
        yield body[: len(body) // 2]
        sent_half.set()
        gate.wait(60)
        yield body[len(body) // 2 :]

    try:
        with httpx.Client(timeout=120) as client:
            response = client.post(
                f"{server.rest}/v1/models/mlp:predict",
                content=chunks(),
                headers={"Content-Type": "application/json", "Content-Length": str(len(body))},
            )
        outcomes.append(Outcome(response.status_code, time.monotonic(), response.content))
    except httpx.HTTPError as exc:
        outcomes.append(Outcome(-1, time.monotonic(), b"", repr(exc)))


def first_refusal(server: Server, timeout: float) -> float | None:
    """When a new connection to the REST port was first refused (None if never)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{server.rest}/v2/health/live", timeout=2)
        except httpx.ConnectError:
            return time.monotonic()
        except httpx.HTTPError:
            pass  # accepted but not answered: still shutting down
        time.sleep(0.02)
    return None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_finishes_in_flight_requests_then_unloads_and_exits_0(
    sig: signal.Signals, models_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "models.config"
    config.write_text(
        model_config(
            [
                ("mlp", str(models_dir / "mlp"), ""),
                (
                    "half_plus_two",
                    str(models_dir / "half_plus_two"),
                    "model_version_policy { all { } }",
                ),
            ]
        )
    )
    server = start_server([f"--model_config_file={config}"])
    try:
        inputs = np.random.default_rng(7).random((ROWS, 784), dtype=np.float32)
        body = orjson.dumps({"instances": inputs.tolist()})
        outcomes: list[Outcome] = []
        gate = threading.Event()
        halves = [threading.Event() for _ in range(CONCURRENT)]
        senders = [
            threading.Thread(
                target=post_slowly, args=(server, body, outcomes, half, gate), daemon=True
            )
            for half in halves
        ]
        for sender in senders:
            sender.start()
        for half in halves:  # every request is in flight: headers and half its body sent
            assert half.wait(60)
        assert server.process is not None
        signalled_at = time.monotonic()
        server.process.send_signal(sig)

        refused_at = first_refusal(server, timeout=30)
        gate.set()  # now let the in-flight requests finish their bodies
        for sender in senders:
            sender.join(120)
        exit_code = server.process.wait(60)
    finally:
        server.stop()

    assert len(outcomes) == CONCURRENT
    assert [(o.status, o.error) for o in outcomes] == [(200, "")] * CONCURRENT, [
        o.body[:200] for o in outcomes
    ]
    done = sorted(o.done_at for o in outcomes)
    assert done[0] > signalled_at, "a request finished before the signal: nothing was in flight"
    assert refused_at is not None, "new connections were still accepted"
    assert refused_at < done[-1], "new connections were refused only after in-flight work ended"

    first = orjson.loads(outcomes[0].body)["predictions"]
    probabilities = np.asarray(first, dtype=np.float64)
    assert probabilities.shape == (ROWS, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)  # softmax rows
    assert all(orjson.loads(o.body)["predictions"] == first for o in outcomes)

    assert exit_code == 0
    logs = server.logs()
    assert "Shutting down: finishing in-flight requests" in logs
    for name, version in (("mlp", 1), ("half_plus_two", 1), ("half_plus_two", 2)):
        assert f"Unloaded servable version model={name} version={version}" in logs
        assert f"model={name} version={version} state=END" in logs
    assert logs.index("Shutting down") < logs.index("Unloaded servable version")
    assert logs.rindex("Unloaded servable version") < logs.index("Shutdown complete")


def test_idle_server_exits_0_promptly_on_sigterm(models_dir: Path) -> None:
    server = start_server(
        ["--model_name=hp", f"--model_base_path={models_dir / 'half_plus_two'}"], rest=False
    )
    assert server.process is not None
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    exit_code = server.process.wait(30)
    elapsed = time.monotonic() - started
    server.stop()
    assert exit_code == 0
    assert elapsed < 15, f"an idle server took {elapsed:.1f}s to stop"
    assert "Unloaded servable version model=hp version=2" in server.logs()
