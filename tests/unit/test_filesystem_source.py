"""FileSystemSource over a temp dir: version discovery, policies, isolation, half-written
folders (with an injected wall clock)."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest

from tensorserve.config.models import ModelConfig, VersionPolicy
from tensorserve.sources.filesystem import (
    FileSystem,
    FileSystemSource,
    LocalFileSystem,
    parse_version,
)

SETTLE_S = 2.0


class Recorder:
    """The aspired-versions callback: every call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[int, str]]] = []

    def __call__(self, config: ModelConfig, versions: dict[int, str]) -> None:
        self.calls.append((config.name, dict(versions)))

    def last(self, name: str) -> dict[int, str] | None:
        found = [v for n, v in self.calls if n == name]
        return found[-1] if found else None

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def local(_path: str) -> FileSystem:
    return LocalFileSystem()


def make_version(base: Path, folder: str, *, pbtxt: bool = False) -> Path:
    path = base / folder
    (path / "variables").mkdir(parents=True)
    (path / ("saved_model.pbtxt" if pbtxt else "saved_model.pb")).write_bytes(b"graph")
    (path / "variables" / "variables.index").write_bytes(b"index")
    return path


def model(name: str, base: Path, policy: VersionPolicy | None = None) -> ModelConfig:
    return ModelConfig(name=name, base_path=str(base), policy=policy or VersionPolicy())


def source(
    recorder: Recorder, *, stable: bool = False, clock: Clock | None = None
) -> FileSystemSource:
    """A source; ``stable=False`` turns the half-written check off (the checks of
    everything else do not depend on file times)."""
    return FileSystemSource(
        local, recorder, settle_s=SETTLE_S, require_stable=stable, wall_clock=clock or time.time
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("1", 1),
        ("00000123", 123),
        ("0", 0),
        ("9007199254740993", 9007199254740993),
        ("v1", None),
        ("0.1", None),
        ("1a", None),
        ("", None),
        ("-3", None),
        (" 1", None),
    ],
)
def test_parse_version(name: str, expected: int | None) -> None:
    assert parse_version(name) == expected


def test_only_integer_folders_are_versions(tmp_path: Path) -> None:
    for folder in ("00000123", "v1", "0.1", "7b", "tmp"):
        make_version(tmp_path, folder)
    (tmp_path / "456").write_bytes(b"a file named like a version")
    (tmp_path / "notes.txt").write_text("x")
    rec = Recorder()
    src = source(rec)
    src.set_models([model("m", tmp_path, VersionPolicy("all"))])
    src.poll()
    assert rec.calls == [("m", {123: str(tmp_path / "00000123")})]


def test_duplicate_version_numbers_report_one_folder(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_version(tmp_path, "1")
    make_version(tmp_path, "001")
    rec = Recorder()
    src = source(rec)
    src.set_models([model("m", tmp_path, VersionPolicy("all"))])
    with caplog.at_level(logging.WARNING):
        src.poll()
    last = rec.last("m")
    assert last is not None and list(last) == [1]
    assert last[1] in (str(tmp_path / "1"), str(tmp_path / "001"))
    assert any("both name version 1" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (VersionPolicy(), [5]),
        (VersionPolicy("latest", num_versions=2), [5, 3]),
        (VersionPolicy("latest", num_versions=10), [5, 3, 2, 1]),
        (VersionPolicy("all"), [5, 3, 2, 1]),
        (VersionPolicy("specific", versions=(1, 3, 7)), [3, 1]),
        (VersionPolicy("specific", versions=(7,)), []),
    ],
)
def test_version_policies(tmp_path: Path, policy: VersionPolicy, expected: list[int]) -> None:
    for version in (1, 2, 3, 5):
        make_version(tmp_path, str(version))
    rec = Recorder()
    src = source(rec)
    src.set_models([model("m", tmp_path, policy)])
    src.poll()
    assert rec.calls == [("m", {v: str(tmp_path / str(v)) for v in expected})]


def test_new_version_replaces_the_aspired_one(tmp_path: Path) -> None:
    make_version(tmp_path, "1")
    rec = Recorder()
    src = source(rec)
    src.set_models([model("m", tmp_path)])
    src.poll()
    make_version(tmp_path, "2")
    src.poll()
    assert [v for _, v in rec.calls] == [{1: str(tmp_path / "1")}, {2: str(tmp_path / "2")}]


def test_missing_base_path_of_one_model_does_not_stop_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = tmp_path / "good"
    make_version(good, "3")
    missing = tmp_path / "missing"
    rec = Recorder()
    src = source(rec)
    src.set_models([model("absent", missing), model("good", good)])
    with caplog.at_level(logging.WARNING):
        src.poll()
        src.poll()
    assert rec.calls == [("good", {3: str(good / "3")})] * 2
    message = (  # TF Serving's words, then ours
        "FileSystemStoragePathSource encountered a filesystem access error: Could not find base "
        f"path {missing} for servable absent with error NOT_FOUND: {missing} not found. "
    )
    found = [r.getMessage() for r in caplog.records if r.getMessage().startswith(message)]
    assert len(found) == 1  # not once per poll
    # The base path appears later: picked up by the next poll.
    make_version(missing, "1")
    src.poll()
    assert rec.last("absent") == {1: str(missing / "1")}


def test_base_path_vanishing_keeps_the_previous_set(tmp_path: Path) -> None:
    base = tmp_path / "m"
    make_version(base, "1")
    rec = Recorder()
    src = source(rec)
    src.set_models([model("m", base)])
    src.poll()
    (base / "1" / "variables" / "variables.index").unlink()
    (base / "1" / "variables").rmdir()
    (base / "1" / "saved_model.pb").unlink()
    (base / "1").rmdir()
    base.rmdir()
    src.poll()
    assert rec.calls == [("m", {1: str(base / "1")})]  # no empty set: nothing is unloaded


def test_base_path_without_versions_reports_an_empty_set(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_version(tmp_path, "v1")
    rec = Recorder()
    src = source(rec)
    src.set_models([model("m", tmp_path)])
    with caplog.at_level(logging.WARNING):
        src.poll()
    assert rec.calls == [("m", {})]
    assert any(
        r.getMessage().startswith(f"No versions of servable m found under base path {tmp_path}")
        and "Did you forget to name your leaf directory as a number (eg. '/1/')?" in r.getMessage()
        for r in caplog.records
    )


def test_folder_without_saved_model_is_skipped_while_being_written(tmp_path: Path) -> None:
    make_version(tmp_path, "1")
    make_version(tmp_path, "3", pbtxt=True)
    rec = Recorder()
    clock = Clock(time.time() + 100 * SETTLE_S)  # versions 1 and 3 look old
    src = source(rec, stable=True, clock=clock)
    src.set_models([model("m", tmp_path, VersionPolicy("all"))])
    src.poll()
    assert rec.calls == [("m", {3: str(tmp_path / "3"), 1: str(tmp_path / "1")})]
    clock.now = time.time()
    (tmp_path / "2" / "variables").mkdir(parents=True)  # being copied: no saved_model.pb yet
    (tmp_path / "2" / "variables" / "variables.index").write_bytes(b"index")
    src.poll()
    assert rec.last("m") == {3: str(tmp_path / "3"), 1: str(tmp_path / "1")}
    (tmp_path / "2" / "saved_model.pb").write_bytes(b"graph")
    src.poll()
    assert rec.last("m") == {3: str(tmp_path / "3"), 1: str(tmp_path / "1")}
    clock.now += SETTLE_S
    src.poll()
    assert rec.last("m") == {v: str(tmp_path / str(v)) for v in (1, 2, 3)}


def test_just_created_empty_folder_is_not_aspired(tmp_path: Path) -> None:
    """``cp -r`` creates the version folder first: a poll right then must not aspire it."""
    make_version(tmp_path, "1")
    rec = Recorder()
    clock = Clock(time.time() + 100 * SETTLE_S)
    src = source(rec, stable=True, clock=clock)
    src.set_models([model("m", tmp_path)])
    src.poll()
    clock.now = time.time()
    (tmp_path / "2").mkdir()
    src.poll()
    assert rec.calls == [("m", {1: str(tmp_path / "1")})] * 2  # version 1 keeps being aspired


def test_changing_folder_is_reported_only_once_stable(tmp_path: Path) -> None:
    make_version(tmp_path, "1")
    rec = Recorder()
    clock = Clock(time.time() + 100 * SETTLE_S)  # version 1 looks old: reported at once
    src = source(rec, stable=True, clock=clock)
    src.set_models([model("m", tmp_path)])
    src.poll()
    assert rec.last("m") == {1: str(tmp_path / "1")}

    clock.now = time.time()  # the wall clock "now" while version 2 is being written
    v2 = make_version(tmp_path, "2")
    src.poll()
    assert rec.last("m") == {1: str(tmp_path / "1")}
    clock.now += SETTLE_S / 2
    (v2 / "variables" / "variables.data-00000-of-00001").write_bytes(b"w" * 100)
    clock.now = max(clock.now, time.time())
    src.poll()
    assert rec.last("m") == {1: str(tmp_path / "1")}
    # Two polls that see the same files a moment apart do not make the folder stable.
    src.poll()
    assert rec.last("m") == {1: str(tmp_path / "1")}
    clock.now += SETTLE_S
    src.poll()
    assert rec.last("m") == {2: str(v2)}


def test_copy_that_keeps_old_mtimes_still_counts_as_new(tmp_path: Path) -> None:
    """``cp -a``/``rsync -a``/``shutil.copy2`` give the files their old mtimes: the folder
    must not be taken as complete because of them."""
    rec = Recorder()
    clock = Clock(time.time())
    src = source(rec, stable=True, clock=clock)
    src.set_models([model("m", tmp_path)])
    v1 = make_version(tmp_path, "1")
    old = time.time() - 3600
    for file in (v1 / "saved_model.pb", v1 / "variables" / "variables.index"):
        os.utime(file, (old, old))
    src.poll()
    assert rec.last("m") == {}
    clock.now += SETTLE_S
    src.poll()
    assert rec.last("m") == {1: str(v1)}


def test_unchanged_folder_is_reported_after_settle_time_even_if_its_times_lie(
    tmp_path: Path,
) -> None:
    """A file system whose clock runs ahead (file times in the future) still settles once the
    files stop changing for settle_s."""
    v1 = make_version(tmp_path, "1")
    rec = Recorder()
    clock = Clock(time.time() - 3600)
    src = source(rec, stable=True, clock=clock)
    src.set_models([model("m", tmp_path)])
    src.poll()
    assert rec.last("m") == {}
    clock.now += SETTLE_S - 0.01
    src.poll()
    assert rec.last("m") == {}
    clock.now += 0.01
    src.poll()
    assert rec.last("m") == {1: str(v1)}


def test_folder_deleted_and_copied_again_is_checked_again(tmp_path: Path) -> None:
    rec = Recorder()
    clock = Clock(time.time() + 100 * SETTLE_S)
    src = source(rec, stable=True, clock=clock)
    src.set_models([model("m", tmp_path, VersionPolicy("all"))])
    make_version(tmp_path, "1")
    v2 = make_version(tmp_path, "2")
    src.poll()
    assert rec.last("m") == {1: str(tmp_path / "1"), 2: str(v2)}
    for file in sorted(v2.rglob("*"), reverse=True):
        file.rmdir() if file.is_dir() else file.unlink()
    v2.rmdir()
    src.poll()
    assert rec.last("m") == {1: str(tmp_path / "1")}
    clock.now = time.time()
    make_version(tmp_path, "2")  # being copied in again, right now
    src.poll()
    assert rec.last("m") == {1: str(tmp_path / "1")}


def test_dropped_models_get_an_empty_set(tmp_path: Path) -> None:
    make_version(tmp_path / "a", "1")
    make_version(tmp_path / "b", "1")
    rec = Recorder()
    src = source(rec)
    a, b = model("a", tmp_path / "a"), model("b", tmp_path / "b")
    src.set_models([a, b])
    src.poll()
    rec.calls.clear()
    src.set_models([b])
    assert rec.calls == [("a", {})]
    src.poll()
    assert rec.names() == ["a", "b"]  # the dropped model is polled no more


def test_changed_policy_applies_on_the_next_poll(tmp_path: Path) -> None:
    for version in (1, 2, 3):
        make_version(tmp_path, str(version))
    rec = Recorder()
    src = source(rec)
    src.set_models([model("m", tmp_path)])
    src.poll()
    src.set_models([model("m", tmp_path, VersionPolicy("specific", versions=(1, 2)))])
    assert len(rec.calls) == 1  # not dropped: no empty set
    src.poll()
    assert rec.last("m") == {2: str(tmp_path / "2"), 1: str(tmp_path / "1")}


def test_poll_error_of_one_model_is_contained(tmp_path: Path) -> None:
    class Exploding(LocalFileSystem):
        def listdir(self, path: str) -> list[str]:
            if "bad" in path:
                raise PermissionError(13, "Permission denied", path)
            return super().listdir(path)

    make_version(tmp_path / "bad", "1")
    make_version(tmp_path / "good", "2")
    rec = Recorder()
    src = FileSystemSource(lambda _p: Exploding(), rec, require_stable=False)
    src.set_models([model("bad", tmp_path / "bad"), model("good", tmp_path / "good")])
    src.poll()
    assert rec.calls == [("good", {2: str(tmp_path / "good" / "2")})]


def test_polls_never_overlap(tmp_path: Path) -> None:
    """The poll thread and a config reload both poll: one at a time, so the "unchanged since"
    bookkeeping never sees two polls interleaved."""
    entered = [threading.Event(), threading.Event()]
    release = threading.Event()

    class Blocking(LocalFileSystem):
        calls = 0

        def listdir(self, path: str) -> list[str]:
            index = Blocking.calls
            Blocking.calls += 1
            entered[min(index, 1)].set()
            if index == 0:
                assert release.wait(10)
            return super().listdir(path)

    make_version(tmp_path, "1")
    rec = Recorder()
    src = FileSystemSource(lambda _p: Blocking(), rec, require_stable=False)
    src.set_models([model("m", tmp_path)])
    threads = [threading.Thread(target=src.poll, daemon=True) for _ in range(2)]
    threads[0].start()
    assert entered[0].wait(10)
    threads[1].start()
    assert not entered[1].wait(0.3), "a second poll ran while the first one was still listing"
    release.set()
    for thread in threads:
        thread.join(10)
    assert entered[1].is_set()
    assert rec.calls == [("m", {1: str(tmp_path / "1")})] * 2
