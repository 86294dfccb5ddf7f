"""The model lifecycle on a real server with mutable model folders (compat doc §5).

Two extra servers, shared by the tests of this module, in file order:

* ``versions``: version discovery and swaps under load, half-written and broken versions,
  a missing base path next to good models, latest{2} and specific policies.
* ``reloading``: ``--model_config_file_poll_wait_seconds=1``,
  ``--wait_for_initial_models=false`` and load retries: readiness, models added/removed,
  labels changed and a bad edit, all through the config file.
"""

from __future__ import annotations

import base64
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.harness import Server, copy_version, model_config, start_server

T = TypeVar("T")
X = [1.0, 2.0, 5.0]


def half_plus(b: float) -> list[float]:
    """What half_plus_two computes for X: version 1 has b=2, version 2 has b=3."""
    return [0.5 * x + b for x in X]


V1_MATH, V2_MATH = half_plus(2.0), half_plus(3.0)


# ---- helpers ------------------------------------------------------------------------------
def wait_for(check: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def copy_version_slowly(source: Path, base: Path, version: int, pause_s: float) -> None:
    """Copy file by file in place, saved_model.pb first, keeping mtimes (like ``cp -a``), with
    pauses longer than the poll interval: the server sees every half-written state."""
    target = base / str(version)
    files = sorted(p for p in source.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.name != "saved_model.pb")
    for file in files:
        dest = target / file.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, dest)
        time.sleep(pause_s)


def statuses(client: httpx.Client, name: str) -> dict[int, tuple[str, str, str]] | None:
    """GET /v1/models/{name}: version -> (state, error_code, error_message); None on 404."""
    response = client.get(f"/v1/models/{name}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    entries = response.json()["model_version_status"]
    versions = [int(e["version"]) for e in entries]
    assert versions == sorted(versions, reverse=True), "versions must be listed highest first"
    return {
        int(e["version"]): (e["state"], e["status"]["error_code"], e["status"]["error_message"])
        for e in entries
    }


def states(client: httpx.Client, name: str) -> dict[int, str]:
    found = statuses(client, name) or {}
    return {v: s[0] for v, s in found.items()}


def predict(client: httpx.Client, name: str, suffix: str = "") -> httpx.Response:
    return client.post(f"/v1/models/{name}{suffix}:predict", json={"instances": X})


def predictions(client: httpx.Client, name: str, suffix: str = "") -> list[float]:
    response = predict(client, name, suffix)
    assert response.status_code == 200, response.text
    return list(response.json()["predictions"])


@dataclass
class Hammer:
    """Threads sending REST predict to one URL until stopped (bounded in time)."""

    base_url: str
    name: str
    threads: int = 4
    max_s: float = 90.0
    results: list[list[tuple[int, Any]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Hammer:
        self.results = [[] for _ in range(self.threads)]
        for index in range(self.threads):
            worker = threading.Thread(target=self._run, args=(index,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)

    def _run(self, index: int) -> None:
        deadline = time.monotonic() + self.max_s
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                try:
                    response = predict(client, self.name)
                except httpx.HTTPError as exc:
                    self.results[index].append((-1, repr(exc)))
                    continue
                ok = response.status_code == 200
                body = response.json()["predictions"] if ok else response.text
                self.results[index].append((response.status_code, body))

    def answers(self) -> list[Any]:
        return [body for thread in self.results for _, body in thread]

    def count(self) -> int:
        return sum(len(r) for r in self.results)

    def seen(self, math: list[float]) -> int:
        return sum(
            1
            for thread in self.results
            for code, body in list(thread)
            if code == 200 and body == math
        )

    def assert_no_failures(self) -> None:
        failures = [(code, body) for thread in self.results for code, body in thread if code != 200]
        assert failures == [], f"{len(failures)} failed requests, e.g. {failures[:3]}"
        assert self.count() > 0

    def assert_only(self, math: list[float]) -> None:
        self.assert_no_failures()
        assert all(a == math for a in self.answers()), set(map(str, self.answers()))

    def assert_clean_switch(self, old: list[float], new: list[float]) -> None:
        """Every request succeeded with the old or the new math and, per thread, once the new
        version answered the old one never did again."""
        self.assert_no_failures()
        for thread in self.results:
            answers = [body for _, body in thread]
            assert all(a in (old, new) for a in answers), set(map(str, answers))
            if new in answers:
                first_new = answers.index(new)
                assert old not in answers[first_new:], "an old answer came after a new one"


# ---- server 1: versions -------------------------------------------------------------------
@dataclass
class Versions:
    server: Server
    http: httpx.Client
    models: Path  # the session's read-only fixture models
    hp2: Path  # mutable base path of "hp2" (latest 1)
    two: Path  # mutable base path of "two" (latest 2)
    ghost: Path  # base path of "ghost": does not exist at start


@pytest.fixture(scope="module")
def versions(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Versions]:
    root = tmp_path_factory.mktemp("lifecycle")
    hp2, two, spec = root / "hp2", root / "two", root / "spec"
    copy_version(models_dir / "half_plus_two" / "1", hp2, 1)
    for version in (1, 2):
        copy_version(models_dir / "half_plus_two" / str(version), two, version)
        copy_version(models_dir / "half_plus_two" / str(version), spec, version)
    ghost = root / "ghost"
    config = root / "models.config"
    config.write_text(
        model_config(
            [
                ("hp2", str(hp2), ""),
                ("strings", str(models_dir / "strings"), ""),
                ("ghost", str(ghost), ""),
                ("two", str(two), "model_version_policy { latest { num_versions: 2 } }"),
                ("spec", str(spec), "model_version_policy { specific { versions: 1 } }"),
            ]
        )
    )
    server = start_server(
        [
            f"--model_config_file={config}",
            "--file_system_poll_wait_seconds=1",
            "--max_num_load_retries=0",
        ],
        grpc_port=False,
    )
    with httpx.Client(base_url=server.rest, timeout=30) as client:
        yield Versions(server, client, models_dir, hp2, two, ghost)
    server.stop()


def assert_strings_serves(client: httpx.Client) -> None:
    response = client.post("/v1/models/strings:predict", json={"instances": ["ab"]})
    assert response.status_code == 200, response.text
    reversed_b64 = base64.b64encode(b"ba").decode()  # outputs named *_bytes come as b64
    assert response.json()["predictions"] == [
        {"upper": "AB", "length": 2, "raw_bytes": {"b64": reversed_b64}}
    ]


def test_initial_state(versions: Versions) -> None:
    client = versions.http
    assert statuses(client, "hp2") == {1: ("AVAILABLE", "OK", "")}
    assert predictions(client, "hp2") == V1_MATH
    assert_strings_serves(client)


def test_swap_under_load_has_no_failed_requests(versions: Versions) -> None:
    client = versions.http
    observed: list[str] = []
    with Hammer(versions.server.rest, "hp2") as hammer:
        wait_for(lambda: hammer.seen(V1_MATH) >= 20, "v1 answers before the swap")
        copy_version(versions.models / "half_plus_two" / "2", versions.hp2, 2)

        def switched() -> bool:
            observed.append(states(client, "hp2").get(2, "-"))
            return hammer.seen(V2_MATH) >= 40

        wait_for(switched, "v2 answers after the swap")
    hammer.assert_clean_switch(V1_MATH, V2_MATH)
    assert hammer.seen(V1_MATH) >= 20
    # Version 2 was seen moving forwards through the states, never back.
    order = ["-", "START", "LOADING", "AVAILABLE"]
    seen = [order.index(s) for s in observed]
    assert seen == sorted(seen) and seen[-1] == order.index("AVAILABLE"), observed
    wait_for(
        lambda: statuses(client, "hp2") == {2: ("AVAILABLE", "OK", ""), 1: ("END", "OK", "")},
        "version 1 to end after the swap",
    )
    assert predictions(client, "hp2") == V2_MATH
    missing = predict(client, "hp2", "/versions/1")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Servable not found for request: Specific(hp2, 1)"}


def test_slowly_copied_version_is_not_loaded_half_written(versions: Versions) -> None:
    client = versions.http
    with Hammer(versions.server.rest, "hp2", threads=2) as hammer:
        # Version 3 is a copy of version 1 (b=2): its answers tell it apart from version 2.
        copy_version_slowly(versions.models / "half_plus_two" / "1", versions.hp2, 3, pause_s=1.3)
        wait_for(lambda: hammer.seen(V1_MATH) >= 20, "version 3 to answer")
    hammer.assert_clean_switch(V2_MATH, V1_MATH)
    wait_for(
        lambda: states(client, "hp2") == {3: "AVAILABLE", 2: "END", 1: "END"}, "version 2 to end"
    )
    assert statuses(client, "hp2") == {
        3: ("AVAILABLE", "OK", ""),
        2: ("END", "OK", ""),
        1: ("END", "OK", ""),
    }
    logs = versions.server.logs()
    assert "model=hp2 version=3 state=AVAILABLE" in logs
    assert "model=hp2 version=3 state=END" not in logs  # it never failed on the way


def test_broken_version_never_displaces_the_served_one(versions: Versions) -> None:
    client = versions.http
    with Hammer(versions.server.rest, "hp2", threads=2) as hammer:
        copy_version(versions.models / "broken" / "1", versions.hp2, 4)
        wait_for(lambda: states(client, "hp2").get(4) == "END", "broken version 4 to end")
        # Keep serving through a few more polls after the failure.
        later, until = hammer.count() + 40, time.monotonic() + 2.5
        wait_for(
            lambda: hammer.count() >= later and time.monotonic() >= until,
            "requests after the failure",
        )
    hammer.assert_only(V1_MATH)
    found = statuses(client, "hp2")
    assert found is not None
    state, code, message = found[4]
    assert (state, found[3]) == ("END", ("AVAILABLE", "OK", ""))
    assert code not in ("OK", "") and message, found[4]
    assert predictions(client, "hp2") == V1_MATH  # version 3 (a copy of version 1)
    assert predictions(client, "hp2", "/versions/3") == V1_MATH
    missing = predict(client, "hp2", "/versions/4")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Servable not found for request: Specific(hp2, 4)"}
    assert_strings_serves(client)


def test_deleting_the_newest_folders_rolls_back_to_an_older_version(versions: Versions) -> None:
    client = versions.http
    with Hammer(versions.server.rest, "hp2", threads=2) as hammer:
        wait_for(lambda: hammer.seen(V1_MATH) >= 10, "version 3 answers before the rollback")
        shutil.rmtree(versions.hp2 / "4")
        shutil.rmtree(versions.hp2 / "3")
        # latest{1} now aspires version 2 again, which was unloaded earlier: it loads anew.
        wait_for(lambda: hammer.seen(V2_MATH) >= 20, "version 2 to answer again")
    hammer.assert_clean_switch(V1_MATH, V2_MATH)
    wait_for(
        lambda: states(client, "hp2") == {4: "END", 3: "END", 2: "AVAILABLE", 1: "END"},
        "version 3 to unload",
    )
    found = statuses(client, "hp2")
    assert found is not None
    assert found[4][1] != "OK"  # the failed version keeps its error
    assert found[3] == ("END", "OK", "")


def test_missing_base_path_does_not_affect_the_other_models(versions: Versions) -> None:
    client = versions.http
    response = client.get("/v1/models/ghost")
    assert response.status_code == 404
    assert response.json() == {"error": "Could not find any versions of model ghost"}
    response = predict(client, "ghost")
    assert response.status_code == 404
    assert response.json() == {"error": "Servable not found for request: Latest(ghost)"}
    assert_strings_serves(client)
    assert predictions(client, "hp2") == V2_MATH
    assert f"Could not find base path {versions.ghost} for servable ghost" in (
        versions.server.logs()
    )
    # The base path shows up later: the next polls pick it up.
    copy_version(versions.models / "half_plus_two" / "2", versions.ghost, 5)
    wait_for(lambda: states(client, "ghost") == {5: "AVAILABLE"}, "ghost version 5")
    assert predictions(client, "ghost") == V2_MATH


def test_latest_two_versions(versions: Versions) -> None:
    client = versions.http
    assert statuses(client, "two") == {2: ("AVAILABLE", "OK", ""), 1: ("AVAILABLE", "OK", "")}
    assert predictions(client, "two") == V2_MATH
    assert predictions(client, "two", "/versions/1") == V1_MATH
    copy_version(versions.models / "half_plus_two" / "1", versions.two, 3)
    wait_for(
        lambda: states(client, "two") == {3: "AVAILABLE", 2: "AVAILABLE", 1: "END"},
        "latest 2 to become versions 3 and 2",
    )
    assert predictions(client, "two") == V1_MATH
    assert predictions(client, "two", "/versions/2") == V2_MATH
    assert predict(client, "two", "/versions/1").status_code == 404


def test_specific_policy_serves_only_the_listed_versions(versions: Versions) -> None:
    client = versions.http
    assert statuses(client, "spec") == {1: ("AVAILABLE", "OK", "")}
    assert predictions(client, "spec") == V1_MATH
    response = predict(client, "spec", "/versions/2")
    assert response.status_code == 404
    assert response.json() == {"error": "Servable not found for request: Specific(spec, 2)"}
    response = client.get("/v1/models/spec/versions/2")
    assert response.status_code == 404
    assert response.json() == {"error": "Could not find version 2 of model spec"}


# ---- server 2: config file polling and readiness -------------------------------------------
@dataclass
class Reloading:
    server: Server
    http: httpx.Client
    models: Path
    root: Path
    config: Path

    def write_config(self, *models: tuple[str, str, str]) -> None:
        """Replace the config file atomically (the poller never reads half a file)."""
        staging = self.config.with_suffix(".tmp")
        staging.write_text(model_config(list(models)))
        os.replace(staging, self.config)

    def log_count(self, text: str) -> int:
        return self.server.logs().count(text)

    def ready(self) -> int:
        return self.http.get("/v2/health/ready").status_code


@pytest.fixture(scope="module")
def reloading(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reloading]:
    root = tmp_path_factory.mktemp("reloading")
    (root / "alpha").mkdir()  # no version yet
    config = root / "models.config"
    config.write_text(model_config([("alpha", str(root / "alpha"), "")]))
    server = start_server(
        [
            f"--model_config_file={config}",
            "--model_config_file_poll_wait_seconds=1",
            "--file_system_poll_wait_seconds=1",
            "--max_num_load_retries=2",
            "--load_retry_interval_micros=300000",
            "--wait_for_initial_models=false",
        ],
        grpc_port=False,
    )
    with httpx.Client(base_url=server.rest, timeout=30) as client:
        yield Reloading(server, client, models_dir, root, config)
    server.stop()


def alpha(r: Reloading) -> tuple[str, str, str]:
    return ("alpha", str(r.root / "alpha"), "")


def beta(r: Reloading, extra: str = "") -> tuple[str, str, str]:
    return ("beta", str(r.models / "half_plus_two"), "model_version_policy { all { } } " + extra)


def test_ready_flips_when_the_model_loads(reloading: Reloading) -> None:
    assert reloading.ready() == 503
    assert reloading.http.get("/v2/health/live").status_code == 200
    copy_version(reloading.models / "half_plus_two" / "1", reloading.root / "alpha", 1)
    wait_for(lambda: reloading.ready() == 200, "readiness after alpha loaded")
    assert predictions(reloading.http, "alpha") == V1_MATH


def test_config_adds_a_model(reloading: Reloading) -> None:
    assert reloading.http.get("/v1/models/beta").status_code == 404
    reloading.write_config(alpha(reloading), beta(reloading))
    wait_for(
        lambda: states(reloading.http, "beta") == {2: "AVAILABLE", 1: "AVAILABLE"}, "beta to load"
    )
    assert predictions(reloading.http, "beta") == V2_MATH
    assert predictions(reloading.http, "beta", "/versions/1") == V1_MATH
    assert reloading.ready() == 200


def test_config_changes_labels(reloading: Reloading) -> None:
    labels = 'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 }'
    reloading.write_config(alpha(reloading), beta(reloading, labels))

    def labelled() -> bool:
        return predict(reloading.http, "beta", "/labels/stable").status_code == 200

    wait_for(labelled, "the stable label")
    assert predictions(reloading.http, "beta", "/labels/stable") == V1_MATH
    assert predictions(reloading.http, "beta", "/labels/canary") == V2_MATH
    # Move stable to version 2 and drop canary.
    reloading.write_config(
        alpha(reloading), beta(reloading, 'version_labels { key: "stable" value: 2 }')
    )
    wait_for(
        lambda: predict(reloading.http, "beta", "/labels/canary").status_code == 400,
        "canary to be dropped",
    )
    response = predict(reloading.http, "beta", "/labels/canary")
    assert response.json() == {"error": "Unrecognized servable version label: canary"}
    assert predictions(reloading.http, "beta", "/labels/stable") == V2_MATH


def test_label_to_an_unavailable_version_is_refused_and_the_old_labels_kept(
    reloading: Reloading,
) -> None:
    before = reloading.log_count("Model config reload finished with errors")
    reloading.write_config(
        alpha(reloading), beta(reloading, 'version_labels { key: "stable" value: 9 }')
    )
    wait_for(
        lambda: reloading.log_count("Model config reload finished with errors") > before,
        "the refused reload to be logged",
    )
    assert (
        "Request to assign label to version 9 of model beta, which is not currently available"
        " for inference"
    ) in reloading.server.logs()
    assert predictions(reloading.http, "beta", "/labels/stable") == V2_MATH


@pytest.mark.parametrize(
    "bad",
    [
        "model_config_list { config { name: 'alpha' ",  # not a text proto
        'model_config_list { config { name: "alpha" base_path: "relative" '
        'model_platform: "tensorflow" } }',  # invalid
    ],
)
def test_bad_edit_keeps_the_previous_config(reloading: Reloading, bad: str) -> None:
    before = reloading.log_count("Ignoring the new model config (keeping the previous one)")
    staging = reloading.config.with_suffix(".tmp")
    staging.write_text(bad)
    os.replace(staging, reloading.config)
    wait_for(
        lambda: (
            reloading.log_count("Ignoring the new model config (keeping the previous one)") > before
        ),
        "the bad edit to be logged",
    )
    assert predictions(reloading.http, "alpha") == V1_MATH
    assert predictions(reloading.http, "beta") == V2_MATH
    assert reloading.ready() == 200
    # Restoring the file to the config in force changes nothing.
    reloading.write_config(
        alpha(reloading), beta(reloading, 'version_labels { key: "stable" value: 2 }')
    )


def test_ready_goes_back_to_503_when_a_configured_model_fails(reloading: Reloading) -> None:
    gamma = ("gamma", str(reloading.models / "broken"), "")
    labels = 'version_labels { key: "stable" value: 2 }'
    reloading.write_config(alpha(reloading), beta(reloading, labels), gamma)
    wait_for(lambda: states(reloading.http, "gamma") == {1: "END"}, "gamma to fail")
    found = statuses(reloading.http, "gamma")
    assert found is not None
    state, code, message = found[1]
    assert state == "END" and code != "OK" and message
    # --max_num_load_retries=2: three attempts, 0.3 s apart, before the version ended.
    logs = reloading.server.logs()
    assert logs.count("Loading servable model=gamma version=1 path=") == 3
    # TF Serving's lines for each attempt and retry, then ours with the count
    assert logs.count("Loading servable: {name: gamma version: 1} failed: ") == 3
    for attempt in (1, 2):
        assert f"Retrying of Loading servable: {{name: gamma version: 1}} retry: {attempt}" in logs
        assert f"attempt {attempt} of 3 failed: " in logs
    assert "attempt 3 of 3 failed: " in logs and "; no retries left" in logs
    assert (
        "Retrying of Loading servable: {name: gamma version: 1} exhausted max_num_retries: 2"
        in logs
    )
    assert reloading.ready() == 503
    assert reloading.http.get("/v2/models/gamma/ready").status_code == 503
    assert reloading.http.get("/v2/models/alpha/ready").status_code == 200
    assert predictions(reloading.http, "alpha") == V1_MATH
    # Dropping the broken model makes the server ready again.
    reloading.write_config(alpha(reloading), beta(reloading, labels))
    wait_for(lambda: reloading.ready() == 200, "readiness after gamma was removed")


def test_config_changes_a_version_policy(reloading: Reloading) -> None:
    specific = (
        "beta",
        str(reloading.models / "half_plus_two"),
        "model_version_policy { specific { versions: 1 } }",
    )
    reloading.write_config(alpha(reloading), specific)
    wait_for(
        lambda: states(reloading.http, "beta") == {2: "END", 1: "AVAILABLE"},
        "beta version 2 to unload",
    )
    assert predictions(reloading.http, "beta") == V1_MATH
    # The new config has no labels: the old ones are gone.
    response = predict(reloading.http, "beta", "/labels/stable")
    assert response.status_code == 400
    assert response.json() == {"error": "Unrecognized servable version label: stable"}


def test_config_removes_a_model(reloading: Reloading) -> None:
    reloading.write_config(alpha(reloading))
    wait_for(lambda: states(reloading.http, "beta") == {2: "END", 1: "END"}, "beta to unload")
    assert reloading.log_count("Unloaded servable version model=beta version=1") == 1
    response = predict(reloading.http, "beta")
    assert response.status_code == 404
    assert response.json() == {"error": "Servable not found for request: Latest(beta)"}
    assert predictions(reloading.http, "alpha") == V1_MATH
    assert reloading.ready() == 200
    listed = reloading.http.get("/v1/models")  # tensorserve's extra listing endpoint
    assert listed.status_code == 200
    assert "beta" not in listed.text and "alpha" in listed.text
