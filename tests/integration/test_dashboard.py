"""The operator dashboard in a real browser (Debian's chromium, driven by Playwright),
and the bearer token (``--auth_token_file``) over REST, the page and gRPC.

Set ``DASHBOARD_SCREENSHOT=docs/dashboard.png`` to refresh the README's screenshot.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.harness import ENV, ROOT, Server, copy_version, model_config, start_server

CHROMIUM = "/usr/bin/chromium"
X = [1.0, 2.0, 5.0]


def _chromium() -> str:
    """Debian's chromium, installed here when absent (root and apt available)."""
    apt_env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    for step in (install, ["apt-get", "update"], install):  # update only when needed
        if os.path.exists(CHROMIUM) or not shutil.which("apt-get") or os.geteuid() != 0:
            break
        subprocess.run(step, capture_output=True, check=False, timeout=900, env=apt_env)
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed and apt-get (as root) could not install it")
    return CHROMIUM


@pytest.fixture(scope="module")
def bases(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dashboard")
    found = {}
    for name in ("hp", "second"):
        found[name] = root / name
        found[name].mkdir()
        copy_version(models_dir / "half_plus_two" / "1", found[name], 1)
    return found


@pytest.fixture(scope="module")
def dash(bases: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = tmp_path_factory.mktemp("dashboard-config") / "models.config"
    config.write_text(model_config([(n, str(p), "") for n, p in bases.items()]))
    monitoring = config.with_name("monitoring.config")
    monitoring.write_text('prometheus_config { enable: true path: "/metrics" }')
    server = start_server(
        [
            "--num_workers=2",
            f"--model_config_file={config}",
            f"--monitoring_config_file={monitoring}",
            "--file_system_poll_wait_seconds=1",
            "--max_num_load_retries=0",
        ]
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
        )
        yield instance
        instance.close()


class Page:
    """A page with every console error and uncaught exception collected."""

    def __init__(self, browser: Any, **context: Any) -> None:
        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser: Any, dash: Server) -> Iterator[Page]:
    opened = Page(browser, viewport={"width": 1280, "height": 1000})
    opened.page.goto(f"{dash.rest}/dashboard/")
    yield opened
    assert opened.errors == []
    opened.close()


def version_pill(page: Any, model: str, version: int, state: str) -> str:
    return f'#models tr[data-model="{model}"] [data-version="{version}"][data-state="{state}"]'


def test_the_models_table_lists_models_and_versions(page: Page, dash: Server) -> None:
    p = page.page
    p.wait_for_selector(version_pill(p, "hp", 1, "AVAILABLE"), timeout=30_000)
    p.wait_for_selector(version_pill(p, "second", 1, "AVAILABLE"))
    assert p.text_content("#ready") == "ready"
    server_panel = p.text_content("#server") or ""
    assert "2 protocol workers" in server_panel
    assert "tensorserve 0.1.0" in server_panel
    assert "latest 1" in (p.text_content('#models tr[data-model="hp"]') or "")


def test_a_new_version_appears_available_without_a_reload(
    page: Page, dash: Server, bases: dict[str, Path], models_dir: Path
) -> None:
    p = page.page
    p.wait_for_selector(version_pill(p, "hp", 1, "AVAILABLE"), timeout=30_000)
    copy_version(models_dir / "half_plus_two" / "2", bases["hp"], 2)
    p.wait_for_selector(version_pill(p, "hp", 2, "AVAILABLE"), timeout=60_000)
    p.wait_for_selector(version_pill(p, "hp", 1, "END"), timeout=60_000)
    unloaded = httpx.get(f"{dash.rest}/v2/models/hp/versions/1/ready")
    assert (unloaded.status_code, unloaded.json()) == (503, {"name": "hp", "ready": False})


def test_a_broken_version_shows_its_error(
    page: Page, bases: dict[str, Path], models_dir: Path
) -> None:
    p = page.page
    copy_version(models_dir / "broken" / "1", bases["second"], 2)
    p.wait_for_selector(version_pill(p, "second", 2, "END"), timeout=60_000)
    error = p.text_content('#models tr[data-model="second"] td.error') or ""
    assert error.startswith("version 2 at ")
    assert "saved_model" in error.lower() or "parse" in error.lower(), error
    assert p.is_visible(version_pill(p, "second", 1, "AVAILABLE"))  # still served


def test_try_it_returns_the_real_prediction_and_working_snippets(page: Page, dash: Server) -> None:
    p = page.page
    p.wait_for_selector('#try-model option[value="hp"]', state="attached", timeout=30_000)
    p.select_option("#try-model", "hp")
    p.wait_for_selector('#signature td:text-is("x")', timeout=30_000)
    assert "DT_FLOAT" in (p.text_content("#signature") or "")
    p.fill("#try-body", json.dumps({"signature_name": "serving_default", "instances": X}))
    p.dispatch_event("#try-body", "input")
    p.click("#try-send")
    p.wait_for_selector('#try-response[data-status="200"]', timeout=30_000)
    response = json.loads(p.text_content("#try-response") or "")
    expected = httpx.post(f"{dash.rest}/v1/models/hp:predict", json={"instances": X}).json()
    assert response == expected
    assert len(response["predictions"]) == 3
    curl = subprocess.run(
        ["bash", "-c", p.text_content("#snippet-curl") or ""],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(curl.stdout) == expected
    python = subprocess.run(
        [sys.executable, "-c", p.text_content("#snippet-requests") or ""],
        capture_output=True, text=True, timeout=60, check=True, env=ENV,
    )  # fmt: skip
    assert python.stdout.startswith("200 ")
    grpc_snippet = p.text_content("#snippet-grpc") or ""
    grpc_run = subprocess.run(
        [sys.executable, "-c", grpc_snippet],
        capture_output=True, text=True, timeout=120, check=True, env=ENV,
    )  # fmt: skip
    assert "float_val" in grpc_run.stdout


def test_charts_follow_traffic_and_the_page_fits_a_phone(browser: Any, dash: Server) -> None:
    with httpx.Client(base_url=dash.rest) as client:
        for _ in range(200):
            client.post("/v1/models/hp:predict", json={"instances": X})
        client.post("/v1/models/hp:predict", json={"instances": [[1, 2]]})  # one error
    phone = Page(browser, viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        phone.page.goto(f"{dash.rest}/dashboard/")
        phone.page.wait_for_selector('#charts .card[data-model="hp"]', timeout=30_000)
        width = phone.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1, f"the page is {width}px wide on a 390px screen"
        assert phone.errors == []
    finally:
        phone.close()
    desktop = Page(browser, viewport={"width": 1280, "height": 900})
    try:
        desktop.page.goto(f"{dash.rest}/dashboard/")
        card = '#charts .card[data-model="hp"]'
        desktop.page.wait_for_selector(card, timeout=30_000)
        with httpx.Client(base_url=dash.rest) as client:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                client.post("/v1/models/hp:predict", json={"instances": X})
                text = desktop.page.text_content(card) or ""
                if "0.0 req/s" not in text.split("err/s")[0]:
                    break
            assert "req/s" in text and "0.0 req/s" not in text.split("err/s")[0], text
            deadline = time.monotonic() + 8  # a few more polls, so the charts have lines
            while time.monotonic() < deadline:
                client.post("/v1/models/hp:predict", json={"instances": X})
        assert desktop.page.locator(f"{card} svg.spark polyline").count() >= 3
        shot = Path(os.environ.get("DASHBOARD_SCREENSHOT", "") or dash.log_path.with_suffix(".png"))
        desktop.page.screenshot(path=str(ROOT / shot), full_page=True)
        assert (ROOT / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert desktop.errors == []
    finally:
        desktop.close()


# ---- off by flag, and the token ----------------------------------------------------------
def test_the_dashboard_off_by_flag_answers_404(models_dir: Path) -> None:
    server = start_server(
        [
            "--num_workers=1",
            "--model_name=hp",
            f"--model_base_path={models_dir / 'half_plus_two'}",
            "--enable_dashboard=false",
        ]
    )
    try:
        for path in ("/dashboard/", "/dashboard/api/overview", "/dashboard/dashboard.js"):
            response = httpx.get(f"{server.rest}{path}")
            assert response.status_code == 404
            assert response.json() == {"error": f"Not found: GET {path}"}
        paths = httpx.get(f"{server.rest}/openapi.json").json()["paths"]
        assert not any(p.startswith("/dashboard") for p in paths)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def guarded(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    token_file = tmp_path_factory.mktemp("token") / "token"
    token_file.write_text("s3cret-token\n")
    server = start_server(
        [
            "--num_workers=1",
            "--model_name=hp",
            f"--model_base_path={models_dir / 'half_plus_two'}",
            f"--auth_token_file={token_file}",
        ]
    )
    yield server
    server.stop()


def test_with_a_token_the_page_its_data_and_the_api_need_it(guarded: Server) -> None:
    bearer = {"Authorization": "Bearer s3cret-token"}
    for path in ("/dashboard/", "/dashboard/api/overview", "/v1/models/hp", "/openapi.json"):
        response = httpx.get(f"{guarded.rest}{path}")
        assert response.status_code == 401, path
        assert "Missing or invalid bearer token" in response.json()["error"]
        assert response.headers["www-authenticate"].startswith("Bearer")
        wrong = httpx.get(f"{guarded.rest}{path}", headers={"Authorization": "Bearer s3cret"})
        assert wrong.status_code == 401
        assert httpx.get(f"{guarded.rest}{path}", headers=bearer).status_code == 200, path
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/hp/ready"):
        assert httpx.get(f"{guarded.rest}{path}").status_code == 200, path
    predict = httpx.post(f"{guarded.rest}/v1/models/hp:predict", json={"instances": X})
    assert predict.status_code == 401


def test_with_a_token_the_browser_gets_in_through_the_link(browser: Any, guarded: Server) -> None:
    page = Page(browser)
    try:
        denied = page.page.goto(f"{guarded.rest}/dashboard/")
        assert denied is not None and denied.status == 401
        page.page.goto(f"{guarded.rest}/dashboard/?token=s3cret-token")
        page.errors.clear()  # the browser logged the 401s of the first visit (page, favicon)
        assert page.page.url == f"{guarded.rest}/dashboard/"  # the token left the address bar
        page.page.wait_for_selector(version_pill(page.page, "hp", 2, "AVAILABLE"), timeout=30_000)
        assert "bearer token" in (page.page.text_content("#server") or "")
        assert page.errors == []
    finally:
        page.close()


def test_with_a_token_grpc_needs_it_in_the_metadata(guarded: Server) -> None:
    import tensorflow as tf

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "hp"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(X, tf.float32))
    with grpc.insecure_channel(guarded.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as missing:
            stub.Predict(request, timeout=30)
        assert missing.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert "Missing or invalid bearer token" in (missing.value.details() or "")
        with pytest.raises(grpc.RpcError) as wrong:
            stub.Predict(request, timeout=30, metadata=[("authorization", "Bearer nope")])
        assert wrong.value.code() is grpc.StatusCode.UNAUTHENTICATED
        ok = stub.Predict(request, timeout=30, metadata=[("authorization", "Bearer s3cret-token")])
        assert list(ok.outputs["y"].float_val) == [3.5, 4.0, 5.5]  # version 2: x / 2 + 3
