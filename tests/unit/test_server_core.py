"""ServerCore: config -> source -> manager, version labels, waiting for added models."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType

import pytest

from tensorserve.config.models import ModelConfig, VersionPolicy
from tensorserve.core.ids import ServableRequest
from tensorserve.core.loader import Loader
from tensorserve.core.manager import AspiredVersionsManager
from tensorserve.core.monitor import ServableStateMonitor
from tensorserve.core.server_core import ServerCore
from tensorserve.core.states import ManagerState
from tensorserve.errors import Code, FailedPrecondition, InvalidArgument, NotFound, Unknown
from tests.fakes import FakeLoader, InlineExecutor

S = ManagerState
LABEL_ERROR = (
    "Request to assign label to version {v} of model {m}, which is not currently"
    " available for inference"
)


class FakeSource:
    """Reports, per model, the versions the test put on "disk"; each poll then drives the
    manager until it has nothing left to do (loads run inline)."""

    def __init__(self, core: ServerCore) -> None:
        self.core = core
        self.disk: dict[str, list[int]] = {}
        self.models: dict[str, ModelConfig] = {}
        self.step = True

    def set_models(self, configs: Sequence[ModelConfig]) -> None:
        dropped = [c for n, c in self.models.items() if n not in {c.name for c in configs}]
        self.models = {c.name: c for c in configs}
        for config in dropped:
            self.core.on_aspired(config, {})

    def poll(self) -> None:
        for config in self.models.values():
            versions = config.policy.select(self.disk.get(config.name, []))
            self.core.on_aspired(config, {v: f"{config.base_path}/{v}" for v in versions})
        if self.step:
            self.settle()

    def settle(self) -> None:
        for _ in range(50):
            if not self.core.manager.step():
                return
        raise AssertionError("the manager never settled")


class Loaders:
    """The loader factory: remembers every loader; versions listed in ``broken`` fail."""

    def __init__(self) -> None:
        self.broken: set[tuple[str, int]] = set()
        self.made: dict[tuple[str, int], list[FakeLoader]] = {}
        self.gate: threading.Event | None = None

    def __call__(self, config: ModelConfig, version: int, path: str) -> Loader:
        fail = -1 if (config.name, version) in self.broken else 0
        loader: FakeLoader = GatedLoader(self.gate, config.name, version, fail_times=fail)
        self.made.setdefault((config.name, version), []).append(loader)
        return loader


class GatedLoader(FakeLoader):
    def __init__(
        self, gate: threading.Event | None, name: str, version: int, fail_times: int = 0
    ) -> None:
        super().__init__(name, version, fail_times=fail_times)
        self.gate = gate

    def load(self) -> object:
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        return super().load()


class Rig:
    def __init__(self, allow_unavailable_labels: bool = False) -> None:
        self.monitor = ServableStateMonitor()
        self.manager = AspiredVersionsManager(
            self.monitor, InlineExecutor(), InlineExecutor(), max_load_retries=0
        )
        self.loaders = Loaders()
        self.core = ServerCore(
            self.manager,
            self.monitor,
            self.loaders,
            allow_labels_for_unavailable=allow_unavailable_labels,
        )
        self.source = FakeSource(self.core)
        self.core.attach_source(self.source)

    def apply(self, *configs: ModelConfig) -> None:
        self.core.apply_config(configs, wait_timeout_s=5)

    def version_of(self, name: str, *, version: int | None = None, label: str | None = None) -> int:
        with self.core.acquire(ServableRequest(name, version, label)) as handle:
            return handle.id.version

    def states(self, name: str) -> list[tuple[int, ManagerState]]:
        return [(s.version, s.state) for s in self.core.model_status(name, None)]


def cfg(
    name: str = "m", labels: Mapping[str, int] | None = None, policy: VersionPolicy | None = None
) -> ModelConfig:
    return ModelConfig(
        name=name,
        base_path=f"/models/{name}",
        policy=policy or VersionPolicy("all"),
        labels=MappingProxyType(dict(labels or {})),
    )


@pytest.fixture
def rig() -> Rig:
    rig = Rig()
    rig.source.disk = {"m": [1, 2, 3]}
    return rig


# ---- labels -------------------------------------------------------------------------------
def test_labels_resolve_to_their_versions(rig: Rig) -> None:
    rig.apply(cfg(labels={"stable": 1, "canary": 2, "old": 1}))
    assert rig.version_of("m", label="stable") == 1
    assert rig.version_of("m", label="canary") == 2
    assert rig.version_of("m", label="old") == 1
    assert rig.version_of("m") == 3
    assert dict(rig.core.labels("m")) == {"stable": 1, "canary": 2, "old": 1}
    assert rig.core.resolve(ServableRequest("m", label="canary")) == ServableRequest("m", 2)


def test_unknown_label_is_invalid_argument(rig: Rig) -> None:
    rig.apply(cfg(labels={"stable": 1}))
    for name in ("m", "other"):
        with pytest.raises(InvalidArgument) as info:
            rig.core.acquire(ServableRequest(name, label="x"))
        assert info.value.message == "Unrecognized servable version label: x"
        assert info.value.code is Code.INVALID_ARGUMENT


def test_request_without_model_name(rig: Rig) -> None:
    with pytest.raises(InvalidArgument, match=r"^ModelSpec has no name specified\.$"):
        rig.core.acquire(ServableRequest(""))


def test_label_to_an_unavailable_version_is_refused(rig: Rig) -> None:
    rig.apply(cfg(labels={"stable": 1}))
    with pytest.raises(FailedPrecondition) as info:
        rig.apply(cfg(labels={"stable": 1, "canary": 7}))
    assert info.value.message == LABEL_ERROR.format(v=7, m="m")
    assert info.value.code is Code.FAILED_PRECONDITION
    # The label map is unchanged: the old labels keep resolving, the new one is unknown.
    assert rig.version_of("m", label="stable") == 1
    with pytest.raises(InvalidArgument, match="Unrecognized servable version label: canary"):
        rig.core.resolve(ServableRequest("m", label="canary"))


def test_label_to_a_failed_version_is_refused(rig: Rig) -> None:
    rig.loaders.broken.add(("m", 2))
    rig.apply(cfg(policy=VersionPolicy("specific", versions=(1, 2))))
    assert rig.states("m")[0][1] is S.END
    with pytest.raises(FailedPrecondition, match=LABEL_ERROR.format(v=2, m="m")):
        rig.apply(cfg(labels={"canary": 2}, policy=VersionPolicy("specific", versions=(1, 2))))


def test_allow_flag_accepts_a_new_label_to_an_unavailable_version() -> None:
    rig = Rig(allow_unavailable_labels=True)
    rig.source.disk = {"m": [1]}
    rig.apply(cfg(labels={"stable": 1, "next": 2}))
    assert rig.core.resolve(ServableRequest("m", label="next")) == ServableRequest("m", 2)
    with pytest.raises(NotFound, match=r"^Servable not found for request: Specific\(m, 2\)$"):
        rig.core.acquire(ServableRequest("m", label="next"))
    # Version 2 arrives: the label now serves it.
    rig.source.disk = {"m": [1, 2]}
    rig.source.poll()
    assert rig.version_of("m", label="next") == 2


def test_allow_flag_does_not_move_an_existing_label_to_an_unavailable_version() -> None:
    rig = Rig(allow_unavailable_labels=True)
    rig.source.disk = {"m": [1, 2]}
    rig.apply(cfg(labels={"stable": 1}))
    with pytest.raises(FailedPrecondition) as info:
        rig.apply(cfg(labels={"stable": 3}))
    assert info.value.message == LABEL_ERROR.format(v=3, m="m")
    assert rig.version_of("m", label="stable") == 1
    # Moving it to an available version is fine.
    rig.apply(cfg(labels={"stable": 2}))
    assert rig.version_of("m", label="stable") == 2


def test_labels_can_be_removed(rig: Rig) -> None:
    rig.apply(cfg(labels={"stable": 1}))
    rig.apply(cfg())
    with pytest.raises(InvalidArgument):
        rig.core.resolve(ServableRequest("m", label="stable"))


def test_labels_of_a_newly_added_model_are_checked_after_it_loads(rig: Rig) -> None:
    rig.source.disk["n"] = [4]
    rig.apply(cfg(), cfg("n", labels={"stable": 4}))
    assert rig.version_of("n", label="stable") == 4


# ---- apply_config -------------------------------------------------------------------------
def test_apply_config_reports_failed_models_and_serves_the_others(rig: Rig) -> None:
    rig.source.disk.update({"bad": [1], "worse": [5], "good": [2]})
    rig.loaders.broken.update({("bad", 1), ("worse", 5)})
    with pytest.raises(Unknown) as info:
        rig.apply(cfg("bad"), cfg("good"), cfg("worse"))
    assert info.value.message == "2 model(s) did not become available: {bad, worse}"
    assert info.value.code is Code.UNKNOWN
    assert rig.core.model_names() == ["bad", "good", "worse"]
    assert rig.version_of("good") == 2
    status = rig.core.model_status("bad", None)[0]
    assert (status.state, status.error_code, status.error_message) == (
        S.END,
        Code.UNKNOWN,
        "load of bad:1 failed",
    )


def test_a_failed_added_model_reports_unknown_not_a_label_error(rig: Rig) -> None:
    rig.source.disk.update({"bad": [1], "good": [2]})
    rig.loaders.broken.add(("bad", 1))
    with pytest.raises(Unknown, match=r"did not become available: \{bad\}$"):
        rig.apply(cfg(), cfg("bad", labels={"stable": 1}), cfg("good", labels={"stable": 2}))
    assert rig.version_of("good", label="stable") == 2  # the loaded model got its labels
    with pytest.raises(InvalidArgument, match="Unrecognized servable version label: stable"):
        rig.core.resolve(ServableRequest("bad", label="stable"))


def test_apply_config_only_reports_newly_added_models(rig: Rig) -> None:
    rig.source.disk["bad"] = [1]
    rig.loaders.broken.add(("bad", 1))
    with pytest.raises(Unknown, match=r"^1 model\(s\) did not become available: \{bad\}$"):
        rig.apply(cfg(), cfg("bad"))
    rig.source.disk["n"] = [1]
    rig.apply(cfg(), cfg("bad"), cfg("n"))  # bad was already there: no error this time
    assert rig.version_of("n") == 1


def test_model_without_versions_does_not_block_apply_config(rig: Rig) -> None:
    rig.apply(cfg(), cfg("empty"))
    assert rig.core.model_names() == ["empty", "m"]
    with pytest.raises(NotFound, match=r"^Could not find any versions of model empty$"):
        rig.core.model_status("empty", None)


def test_apply_config_waits_for_added_models() -> None:
    rig = Rig()
    rig.source.disk = {"m": [1]}
    rig.source.step = False
    gate = threading.Event()
    rig.loaders.gate = gate
    stop = threading.Event()
    loop = threading.Thread(target=rig.manager.run, args=(stop, 0.01), daemon=True)
    loop.start()
    errors: list[BaseException] = []

    def apply() -> None:
        try:
            rig.apply(cfg())
        except BaseException as exc:
            errors.append(exc)

    applying = threading.Thread(target=apply, daemon=True)
    try:
        applying.start()
        assert rig.monitor.wait_until(lambda: rig.monitor.versions("m") != [], 5)
        applying.join(0.2)
        assert applying.is_alive(), "apply_config returned before the model loaded"
        gate.set()
        applying.join(10)
        assert not applying.is_alive() and errors == []
        assert rig.monitor.available("m") == [1]
    finally:
        gate.set()
        stop.set()
        rig.manager.wake()
        loop.join(5)


def test_removed_model_is_unloaded_and_its_status_kept(rig: Rig) -> None:
    rig.source.disk["n"] = [1]
    rig.apply(cfg(), cfg("n"))
    loader = rig.loaders.made[("n", 1)][-1]
    rig.apply(cfg())
    rig.source.settle()
    assert loader.unloads == 1
    assert rig.core.model_names() == ["m"]
    assert rig.states("n") == [(1, S.END)]
    with pytest.raises(NotFound, match=r"^Servable not found for request: Latest\(n\)$"):
        rig.core.acquire(ServableRequest("n"))


def test_policy_change_applies_live(rig: Rig) -> None:
    rig.apply(cfg(policy=VersionPolicy("latest", 1)))
    assert rig.manager.ready_versions("m") == [3]
    rig.apply(cfg(policy=VersionPolicy("latest", 2)))
    assert rig.manager.ready_versions("m") == [3, 2]
    rig.apply(cfg(policy=VersionPolicy("specific", versions=(1,))))
    assert rig.manager.ready_versions("m") == [1]
    assert rig.states("m") == [(3, S.END), (2, S.END), (1, S.AVAILABLE)]


def test_stale_poll_for_an_old_config_is_ignored(rig: Rig) -> None:
    old = cfg(policy=VersionPolicy("latest", 1))
    rig.apply(old)
    rig.apply(cfg(policy=VersionPolicy("all")))
    rig.core.on_aspired(old, {3: "/models/m/3"})  # a poll that raced with the reload
    rig.source.settle()
    assert rig.manager.ready_versions("m") == [3, 2, 1]


# ---- model status -------------------------------------------------------------------------
def test_model_status_messages(rig: Rig) -> None:
    rig.apply(cfg())
    assert rig.states("m") == [(3, S.AVAILABLE), (2, S.AVAILABLE), (1, S.AVAILABLE)]
    assert [(s.version, s.state) for s in rig.core.model_status("m", 2)] == [(2, S.AVAILABLE)]
    with pytest.raises(NotFound, match=r"^Could not find version 7 of model m$"):
        rig.core.model_status("m", 7)
    with pytest.raises(NotFound, match=r"^Could not find any versions of model foo$"):
        rig.core.model_status("foo", None)
    with pytest.raises(InvalidArgument, match=r"^ModelSpec has no name specified\.$"):
        rig.core.model_status("", None)


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leaked == []
