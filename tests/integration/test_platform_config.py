"""``--platform_config_file`` replaces the session, batching, tag and warm-up flags (as in TF
Serving); TF Serving flags that cannot apply here warn once; ALTS is refused, never faked."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.harness import model_config, run_server_expecting_exit, start_server

PLATFORM = """
platform_configs {
  key: "tensorflow"
  value {
    source_adapter_config {
      [type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig] {
        legacy_config {
          session_config { intra_op_parallelism_threads: 1 inter_op_parallelism_threads: 1 }
          batching_parameters {
            max_batch_size { value: 4 }
            batch_timeout_micros { value: 2000 }
            num_batch_threads { value: 1 }
          }
          saved_model_tags: "serve"
          enable_model_warmup: true
          model_warmup_options { num_request_iterations { value: 3 } }
          enable_session_metadata: true
        }
      }
    }
  }
}
"""


def test_platform_config_is_honoured(models_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "models.config"
    pinned = "model_version_policy { specific { versions: 1 } }"
    config.write_text(model_config([("hp", str(models_dir / "half_plus_two"), pinned)]))
    platform = tmp_path / "platform.config"
    platform.write_text(PLATFORM)
    server = start_server(
        [
            f"--model_config_file={config}",
            f"--platform_config_file={platform}",
            "--num_workers=1",
            "--xla_cpu_compilation_enabled=true",
        ]
    )
    try:
        response = httpx.post(f"{server.rest}/v1/models/hp:predict", json={"instances": [2.0]})
        assert response.json() == {"predictions": [3.0]}
        overview = httpx.get(f"{server.rest}/dashboard/api/overview").json()["server"]
        assert overview["batching"] is True  # from batching_parameters, without --enable_batching
        flags = overview["flags"]
        assert flags["enable_batching"] is True
        assert flags["num_request_iterations_for_warmup"] == 3
        assert flags["enable_model_warmup"] is True
        logs = server.logs()
        assert "SessionBundleConfig.enable_session_metadata has no effect in tensorserve" in logs
        assert "--xla_cpu_compilation_enabled=true has no effect in tensorserve" in logs
    finally:
        server.stop()


def test_a_platform_other_than_tensorflow_is_refused(tmp_path: Path) -> None:
    platform = tmp_path / "platform.config"
    platform.write_text('platform_configs { key: "tflite" value { } }')
    done = run_server_expecting_exit(["--model_base_path=/m", f"--platform_config_file={platform}"])
    assert done.returncode != 0
    assert "serves only the 'tensorflow' platform" in done.stderr


def test_an_adapter_config_of_raw_bytes_that_do_not_decode_is_refused(tmp_path: Path) -> None:
    platform = tmp_path / "platform.config"
    platform.write_text(
        'platform_configs { key: "tensorflow" value { source_adapter_config { type_url: '
        '"type.googleapis.com/tensorflow.serving.SavedModelBundleSourceAdapterConfig" '
        'value: "\\377\\377\\377" } } }'
    )
    done = run_server_expecting_exit(["--model_base_path=/m", f"--platform_config_file={platform}"])
    assert done.returncode != 0
    assert "does not hold a tensorflow.serving.SavedModelBundleSourceAdapterConfig" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_platform_config_that_does_not_parse(tmp_path: Path) -> None:
    platform = tmp_path / "platform.config"
    platform.write_text("platform_configs { nope: 1 }")
    done = run_server_expecting_exit(["--model_base_path=/m", f"--platform_config_file={platform}"])
    lines = done.stderr.splitlines()
    assert any(
        line.startswith("Error parsing text-format tensorflow.serving.PlatformConfigMap: 1:")
        for line in lines
    ), done.stderr
    assert (
        f"Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file: '{platform}'"
        in lines
    )


def test_alts_is_refused_not_faked() -> None:
    done = run_server_expecting_exit(["--model_base_path=/m", "--use_alts_credentials=true"])
    assert done.returncode == 2
    assert "--use_alts_credentials=true cannot be honoured" in done.stderr


def test_alts_with_ssl_gets_tf_servings_message(tmp_path: Path) -> None:
    done = run_server_expecting_exit(
        ["--model_base_path=/m", "--use_alts_credentials=true", f"--ssl_config_file={tmp_path}/s"]
    )
    assert (
        "Failed to start server. Error: INVALID_ARGUMENT: Either use_alts_credentials must be "
        "false or ssl_config_file must be empty."
    ) in done.stderr.splitlines()
