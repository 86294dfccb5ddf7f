"""Who may change what is served: ``--admin_token_file`` guards ReloadConfig and repository
load/unload apart from inference's ``--auth_token_file``, and a server that answers those
calls from anyone on a non-loopback address says so at start-up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

from tests.harness import Server, start_server

INFERENCE, ADMIN = "inference-token", "admin-token"
X = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [2.0]}]}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def two_tokens(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("tokens")
    (root / "inference").write_text(INFERENCE)
    (root / "admin").write_text(ADMIN + "\n")
    repository = root / "repository"
    repository.mkdir()
    (repository / "hp").symlink_to(models_dir / "half_plus_two")
    server = start_server(
        [
            "--num_workers=1",
            "--model_name=hp",
            f"--model_base_path={models_dir / 'half_plus_two'}",
            f"--auth_token_file={root / 'inference'}",
            f"--admin_token_file={root / 'admin'}",
            "--enable_model_management=true",
            f"--model_repository={repository}",
        ]
    )
    yield server
    server.stop()


def test_inference_takes_the_inference_token(two_tokens: Server) -> None:
    url = f"{two_tokens.rest}/v2/models/hp/infer"
    assert httpx.post(url, json=X).status_code == 401
    assert httpx.post(url, json=X, headers=_bearer(ADMIN)).status_code == 401
    assert httpx.post(url, json=X, headers=_bearer(INFERENCE)).status_code == 200


def test_repository_changes_take_the_admin_token(two_tokens: Server) -> None:
    url = f"{two_tokens.rest}/v2/repository/models/hp/load"
    refused = httpx.post(url, headers=_bearer(INFERENCE), timeout=60)
    assert refused.status_code == 401
    assert "--admin_token_file" in refused.json()["error"]
    assert httpx.post(url, headers=_bearer(ADMIN), timeout=60).status_code == 200
    index = httpx.post(f"{two_tokens.rest}/v2/repository/index", headers=_bearer(INFERENCE))
    assert index.status_code == 200  # reading the index changes nothing


def test_reload_config_takes_the_admin_token(two_tokens: Server, models_dir: Path) -> None:
    request = model_management_pb2.ReloadConfigRequest()
    model = request.config.model_config_list.config.add()
    model.name, model.base_path, model.model_platform = (
        "hp", str(models_dir / "half_plus_two"), "tensorflow")  # fmt: skip
    with grpc.insecure_channel(two_tokens.grpc_target) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.HandleReloadConfigRequest(
                request, timeout=60, metadata=[("authorization", f"Bearer {INFERENCE}")]
            )
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "--admin_token_file" in (refused.value.details() or "")
        reply = stub.HandleReloadConfigRequest(
            request, timeout=60, metadata=[("authorization", f"Bearer {ADMIN}")]
        )
        assert reply.status.error_code == 0


def test_a_non_loopback_server_without_tokens_warns(models_dir: Path) -> None:
    args = [
        "--num_workers=1",
        "--model_name=hp",
        f"--model_base_path={models_dir / 'half_plus_two'}",
        "--enable_model_management=true",
    ]
    open_server = start_server([*args, "--bind_address=0.0.0.0"])
    try:
        assert httpx.get(f"{open_server.rest}/v2/health/ready").status_code == 200
    finally:
        open_server.stop()
    warning = [line for line in open_server.logs().splitlines() if "without a token" in line]
    assert warning and "0.0.0.0" in warning[0] and "ReloadConfig" in warning[0]
    assert "repository load/unload" in warning[0] and "--admin_token_file" in warning[0]
    loopback = start_server(args)
    loopback.stop()
    assert "without a token" not in loopback.logs()
