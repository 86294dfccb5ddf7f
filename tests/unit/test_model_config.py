"""``ModelServerConfig`` text proto parsing and validation (config/model_config.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from tensorflow_serving.config import model_server_config_pb2

from tensorserve.config.model_config import (
    ModelConfigError,
    from_proto,
    load_model_config_file,
    parse_model_server_config,
    single_model_config,
)
from tensorserve.config.models import ModelConfig, VersionPolicy
from tests.harness import SHARED_TESTDATA


def config_text(*entries: str) -> str:
    return "model_config_list {\n" + "".join(f"  config {{ {e} }}\n" for e in entries) + "}\n"


def entry(
    name: str = "m",
    base_path: str = "/models/m",
    extra: str = "",
    platform: str | None = "tensorflow",
) -> str:
    text = f'name: "{name}" base_path: "{base_path}" '
    if platform is not None:
        text += f'model_platform: "{platform}" '
    return text + extra


def parse_one(extra: str = "", **kwargs: str | None) -> ModelConfig:
    (config,) = parse_model_server_config(
        config_text(entry(extra=extra, **kwargs))  # type: ignore[arg-type]
    )
    return config


def refused(text: str) -> str:
    with pytest.raises(ModelConfigError) as info:
        parse_model_server_config(text)
    return str(info.value)


# ---- the good shapes ----------------------------------------------------------------------
def test_minimal_model_gets_the_defaults() -> None:
    config = parse_one()
    assert config == ModelConfig(
        name="m",
        base_path="/models/m",
        platform="tensorflow",
        policy=VersionPolicy("latest", 1, ()),
    )
    assert dict(config.labels) == {}
    assert config.logging_config == b""
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "other"  # type: ignore[misc]


def test_several_models_keep_their_order() -> None:
    configs = parse_model_server_config(config_text(entry("b", "/b"), entry("a", "gs://bkt/a")))
    assert [(c.name, c.base_path) for c in configs] == [("b", "/b"), ("a", "gs://bkt/a")]


@pytest.mark.parametrize(
    ("extra", "policy"),
    [
        ("", VersionPolicy("latest", 1)),
        ("model_version_policy { latest { } }", VersionPolicy("latest", 1)),
        ("model_version_policy { latest { num_versions: 0 } }", VersionPolicy("latest", 1)),
        ("model_version_policy { latest { num_versions: 3 } }", VersionPolicy("latest", 3)),
        ("model_version_policy { all { } }", VersionPolicy("all")),
        (
            "model_version_policy { specific { versions: 42 versions: 43 } }",
            VersionPolicy("specific", versions=(42, 43)),
        ),
    ],
)
def test_version_policies(extra: str, policy: VersionPolicy) -> None:
    assert parse_one(extra).policy == policy


def test_specific_policy_without_versions_is_refused() -> None:
    message = refused(config_text(entry(extra="model_version_policy { specific { } }")))
    assert "specific version policy lists no versions" in message
    assert "model 'm'" in message


def test_version_labels() -> None:
    config = parse_one(
        'version_labels { key: "stable" value: 42 } '
        'version_labels { key: "canary" value: 43 } '
        'version_labels { key: "also_stable" value: 42 }'
    )
    assert dict(config.labels) == {"stable": 42, "canary": 43, "also_stable": 42}
    with pytest.raises(TypeError):
        config.labels["x"] = 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("label", "value", "problem"),
    [
        ("", 1, "bad version label ''"),
        ("a/b", 1, "bad version label 'a/b'"),
        ("stable", -1, "label 'stable' points at version -1"),
    ],
)
def test_bad_version_labels(label: str, value: int, problem: str) -> None:
    label_entry = f'version_labels {{ key: "{label}" value: {value} }}'
    message = refused(config_text(entry(extra=label_entry)))
    assert problem in message


def test_deprecated_model_type_alone_is_accepted() -> None:
    (config,) = parse_model_server_config(
        config_text(entry(platform=None, extra="model_type: TENSORFLOW"))
    )
    assert config.platform == "tensorflow"


def test_empty_config_means_no_models() -> None:
    assert parse_model_server_config("") == ()
    assert parse_model_server_config("model_config_list { }") == ()


def test_valid_logging_config_is_kept() -> None:
    config = parse_one(
        'logging_config { log_collector_config { filename_prefix: "/tmp/log/m" } '
        "sampling_config { sampling_rate: 0.5 } }"
    )
    assert config.logging_config != b""


def test_from_proto_is_the_same_validation() -> None:
    message = model_server_config_pb2.ModelServerConfig()
    added = message.model_config_list.config.add()
    added.name, added.base_path, added.model_platform = "m", "relative/m", "tensorflow"
    with pytest.raises(ModelConfigError, match="must be an absolute path or a URI"):
        from_proto(message, "ReloadConfigRequest")
    added.base_path = "/abs/m"
    assert from_proto(message)[0].base_path == "/abs/m"


def test_single_model_mode() -> None:
    assert single_model_config("default", "/models/x") == (
        ModelConfig(name="default", base_path="/models/x"),
    )
    with pytest.raises(ModelConfigError, match=r"--model_base_path.*must be an absolute path"):
        single_model_config("default", "models/x")
    with pytest.raises(ModelConfigError, match="base_path is empty"):
        single_model_config("default", "")


# ---- every refusal, with a message naming the problem -----------------------------------------
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            config_text(entry("a", "/a"), entry("b", "/b"), entry("a", "/c")),
            "Illegal to list model a multiple times in config list",
        ),
        (config_text(entry(platform=None)), 'model_platform is required ("tensorflow")'),
        (
            config_text(entry(platform="pytorch")),
            "model_platform 'pytorch' is not supported; the only platform is 'tensorflow'",
        ),
        (
            config_text(entry(base_path="models/m")),
            "base_path 'models/m' must be an absolute path or a URI",
        ),
        (config_text(entry(base_path="")), "base_path is empty"),
        (config_text(entry(name="")), "model name is empty"),
        (config_text(entry(name="a/b")), "model name must not contain '/' or ':'"),
        (
            config_text(entry(extra="model_type: TENSORFLOW")),
            "set model_platform or model_type, not both",
        ),
        (config_text(entry(platform=None, extra="model_type: OTHER")), "unsupported model_type 2"),
        ("custom_model_config { }", "custom_model_config is not supported"),
        (
            config_text(entry(extra="logging_config { custom_logging_config { } }")),
            "logging_config: logging_config.custom_logging_config is not supported",
        ),
        (
            config_text(
                entry(
                    extra='logging_config { log_collector_config { filename_prefix: "/t" } '
                    "sampling_config { sampling_rate: 2 } }"
                )
            ),
            "sampling_rate must be in [0, 1], got 2.0",
        ),
    ],
)
def test_validation_errors(text: str, problem: str) -> None:
    message = refused(text)
    assert message.startswith("Invalid model config")
    assert problem in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("model_config_list { config { name: 3 } }", "line 1, column 36: "),
        ('model_config_list { config { nmae: "m" } }', 'has no field named "nmae"'),
        ('model_config_list { config { name: "m" }', "Expected"),
        (
            "model_config_list { config { model_version_policy { latest { num_versions: -1 } } } }",
            "num_versions",
        ),
    ],
)
def test_bad_text_proto(text: str, problem: str) -> None:
    message = refused(text)
    assert message.startswith(
        "model config is not a valid tensorflow.serving.ModelServerConfig text proto: line 1, "
    )
    assert problem in message


# ---- files ------------------------------------------------------------------------------------
def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.config"
    with pytest.raises(ModelConfigError, match=f"Cannot read model config file {path}"):
        load_model_config_file(str(path))


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "models.config"
    path.write_text(config_text(entry(base_path="relative")))
    with pytest.raises(ModelConfigError) as info:
        load_model_config_file(str(path))
    assert str(info.value).startswith(f"Invalid model config file {path}, model 'm': ")


def test_tf_serving_bad_model_config() -> None:
    path = SHARED_TESTDATA / "bad_model_config.txt"
    if not path.is_file():
        pytest.skip("../shared/testdata/tfserving is not present")
    with pytest.raises(ModelConfigError) as info:
        load_model_config_file(str(path))
    assert str(info.value) == (
        f"{path} is not a valid tensorflow.serving.ModelServerConfig text "
        'proto: line 1, column 1: Message type "tensorflow.serving.ModelServerConfig" has no '
        'field named "improperly". (in: improperly formatted file)'
    )


def test_tf_serving_good_model_config(tmp_path: Path) -> None:
    source = SHARED_TESTDATA / "good_model_config.txt"
    if not source.is_file():
        pytest.skip("../shared/testdata/tfserving is not present")
    two = SHARED_TESTDATA / "saved_model_half_plus_two_cpu"
    three = SHARED_TESTDATA / "saved_model_half_plus_three"
    text = source.read_text()
    assert "${TEST_HALF_PLUS_TWO_DIR}" in text and "${TEST_HALF_PLUS_THREE_DIR}" in text
    path = tmp_path / "good_model_config.txt"
    path.write_text(
        text.replace("${TEST_HALF_PLUS_TWO_DIR}", str(two)).replace(
            "${TEST_HALF_PLUS_THREE_DIR}", str(three)
        )
    )
    assert load_model_config_file(str(path)) == (
        ModelConfig(name="half_plus_two", base_path=str(two)),
        ModelConfig(name="half_plus_three", base_path=str(three)),
    )


def test_placeholders_left_in_are_relative_paths(tmp_path: Path) -> None:
    source = SHARED_TESTDATA / "good_model_config.txt"
    if not source.is_file():
        pytest.skip("../shared/testdata/tfserving is not present")
    with pytest.raises(ModelConfigError, match=r"base_path '\$\{TEST_HALF_PLUS_TWO_DIR\}'"):
        load_model_config_file(str(source))


# ---- VersionPolicy.select -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy", "found", "expected"),
    [
        (VersionPolicy(), [3, 1, 2], (3,)),
        (VersionPolicy("latest", 2), [1, 10, 2], (10, 2)),
        (VersionPolicy("latest", 5), [1, 2], (2, 1)),
        (VersionPolicy("all"), [2, 1, 2], (2, 1)),
        (VersionPolicy("specific", versions=(2, 9)), [1, 2, 3], (2,)),
        (VersionPolicy(), [], ()),
    ],
)
def test_select(policy: VersionPolicy, found: list[int], expected: tuple[int, ...]) -> None:
    assert policy.select(found) == expected
