"""Request limits on a real server: slow and idle clients, header size, connections,
tensor elements, gRPC message size, and bounded memory under 200 concurrent 50 MB bodies.

Raw sockets play the hostile clients (byte-by-byte senders, idle connections), so what
is checked is exactly what goes over the wire. Every refusal must be a 4xx JSON error
naming the flag that raises the limit, and the server must keep answering others.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.harness import Server, model_config, start_server

PREDICT = "/v1/models/half_plus_two:predict"
HEADER_TIMEOUT = 1
BODY_TIMEOUT = 2
KEEPALIVE = 3
MAX_HEADER = 4096
MAX_CONNECTIONS = 12
MAX_ELEMENTS = 1000
GRPC_MAX_MESSAGE = 1 << 20
BUFFERED = 1 << 20  # the limited server's body budget


def _config(models_dir: Path, folder: Path) -> Path:
    path = folder / "models.config"
    pinned = "model_version_policy { specific { versions: 1 } }"  # y = x / 2 + 2
    path.write_text(model_config([("half_plus_two", str(models_dir / "half_plus_two"), pinned)]))
    return path


@pytest.fixture(scope="module")
def limited(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = _config(models_dir, tmp_path_factory.mktemp("limits"))
    server = start_server(
        [
            f"--model_config_file={config}",
            "--num_workers=1",
            f"--rest_api_header_timeout_seconds={HEADER_TIMEOUT}",
            f"--rest_api_body_timeout_seconds={BODY_TIMEOUT}",
            f"--rest_api_keepalive_timeout_seconds={KEEPALIVE}",
            f"--rest_api_max_header_bytes={MAX_HEADER}",
            f"--rest_api_max_connections={MAX_CONNECTIONS}",
            f"--max_request_tensor_elements={MAX_ELEMENTS}",
            f"--grpc_channel_arguments=grpc.max_receive_message_length={GRPC_MAX_MESSAGE}",
            f"--rest_api_max_buffered_body_bytes={BUFFERED}",
        ]
    )
    yield server
    server.stop()


@pytest.fixture
def still_serving(limited: Server) -> Iterator[None]:
    """After each test: a plain request still gets its answer."""
    yield
    response = httpx.post(f"{limited.rest}{PREDICT}", json={"instances": [2.0]}, timeout=10)
    assert response.json() == {"predictions": [3.0]}


def _connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.rest_port), timeout=20)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _response(raw: bytes) -> tuple[int, dict[str, str], str]:
    """(status, headers, JSON error message) of one raw HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    assert headers["content-type"] == "application/json", raw
    doc = json.loads(body)
    assert set(doc) == {"error"}, doc
    return status, headers, str(doc["error"])


def _one_response(sock: socket.socket) -> bytes:
    """One response on a kept-alive connection (headers, then Content-Length bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _dribble(sock: socket.socket, data: bytes, every_s: float = 0.1) -> None:
    """Send ``data`` a byte at a time until the server stops taking it."""
    try:
        for byte in data:
            sock.sendall(bytes([byte]))
            time.sleep(every_s)
    except OSError:
        pass  # cut off: what the test expects


# ---- slow and idle clients -----------------------------------------------------------------


@pytest.mark.usefixtures("still_serving")
def test_idle_connection_is_closed(limited: Server) -> None:
    with _connect(limited) as sock:
        start = time.monotonic()
        assert _read_all(sock) == b""  # closed without a response: nothing was asked
        assert KEEPALIVE - 0.5 < time.monotonic() - start < KEEPALIVE + 5


@pytest.mark.usefixtures("still_serving")
def test_idle_keep_alive_connection_is_closed(limited: Server) -> None:
    with _connect(limited) as sock:
        sock.sendall(b"GET /v1/models/half_plus_two HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        start = time.monotonic()
        _read_all(sock)
        assert KEEPALIVE - 0.5 < time.monotonic() - start < KEEPALIVE + 5


@pytest.mark.usefixtures("still_serving")
def test_headers_sent_byte_by_byte_are_cut_off(limited: Server) -> None:
    with _connect(limited) as sock:
        start = time.monotonic()
        sender = threading.Thread(
            target=_dribble, args=(sock, b"GET /v1/models/half_plus_two HTTP/1.1\r\n" * 20)
        )
        sender.start()
        status, headers, message = _response(_read_all(sock))
        elapsed = time.monotonic() - start
        sender.join()
    assert status == 408
    assert headers["connection"] == "close"
    assert "--rest_api_header_timeout_seconds" in message
    assert HEADER_TIMEOUT - 0.2 < elapsed < HEADER_TIMEOUT + 5


@pytest.mark.usefixtures("still_serving")
def test_crlf_between_requests_does_not_hold_the_connection(limited: Server) -> None:
    """Bytes that never start a request still run the header clock."""
    with _connect(limited) as sock:
        sender = threading.Thread(target=_dribble, args=(sock, b"\r\n" * 200))
        sender.start()
        start = time.monotonic()
        _read_all(sock)
        elapsed = time.monotonic() - start
        sender.join()
    assert elapsed < HEADER_TIMEOUT + 5


@pytest.mark.usefixtures("still_serving")
def test_body_sent_byte_by_byte_is_cut_off(limited: Server) -> None:
    body = json.dumps({"instances": [1.0] * 40}).encode()
    head = (
        f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with _connect(limited) as sock:
        sock.sendall(head)
        start = time.monotonic()
        sender = threading.Thread(target=_dribble, args=(sock, body))
        sender.start()
        status, _, message = _response(_read_all(sock))
        elapsed = time.monotonic() - start
        sender.join()
    assert status == 408
    assert "--rest_api_body_timeout_seconds" in message
    assert BODY_TIMEOUT - 0.2 < elapsed < BODY_TIMEOUT + 5


def test_slow_clients_do_not_hold_up_others(limited: Server) -> None:
    socks = [_connect(limited) for _ in range(MAX_CONNECTIONS // 2)]
    senders = [
        threading.Thread(target=_dribble, args=(s, b"POST / HTTP/1.1\r\n" * 10, 0.05))
        for s in socks
    ]
    try:
        for sender in senders:
            sender.start()
        with httpx.Client(base_url=limited.rest, timeout=10) as client:
            for value in range(20):
                response = client.post(PREDICT, json={"instances": [float(value)]})
                assert response.json() == {"predictions": [value / 2 + 2]}
    finally:
        for sock in socks:
            sock.close()
        for sender in senders:
            sender.join()


# ---- sizes and counts ----------------------------------------------------------------------


@pytest.mark.usefixtures("still_serving")
def test_oversized_headers_get_431(limited: Server) -> None:
    request = (
        f"GET /v1/models/half_plus_two HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * MAX_HEADER}\r\n\r\n"
    )
    with _connect(limited) as sock:
        sock.sendall(request.encode())
        status, _, message = _response(_read_all(sock))
    assert status == 431
    assert "--rest_api_max_header_bytes" in message


@pytest.mark.usefixtures("still_serving")
def test_an_endless_header_line_gets_431(limited: Server) -> None:
    """The parser buffers a header line until its end: the limit holds inside one too."""
    with _connect(limited) as sock:
        sock.sendall(b"GET /v1/models/half_plus_two HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        start = time.monotonic()
        try:
            for _ in range(4 * MAX_HEADER // 512):
                time.sleep(0.01)  # separate reads
                sock.sendall(b"a" * 512)
        except OSError:
            pass  # cut off
        status, _, message = _response(_read_all(sock))
        elapsed = time.monotonic() - start
    assert status == 431
    assert "--rest_api_max_header_bytes" in message
    assert elapsed < HEADER_TIMEOUT  # refused for its size, not at the header timeout


@pytest.mark.usefixtures("still_serving")
def test_a_chunked_gzip_body_is_held_at_its_inflated_size(limited: Server) -> None:
    """A chunked body reserves as it arrives; gzip inflates it past the budget: 429."""
    doc = b'{"instances": [2.0]}' + b" " * (2 * BUFFERED)
    small = gzip.compress(doc)
    assert len(small) < BUFFERED // 100

    def chunks() -> Iterator[bytes]:
        yield small

    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = httpx.post(f"{limited.rest}{PREDICT}", content=chunks(), headers=headers)
    assert response.status_code == 429, response.text
    assert "--rest_api_max_buffered_body_bytes" in response.json()["error"]
    fits = gzip.compress(b'{"instances": [2.0]}' + b" " * (BUFFERED // 2))
    response = httpx.post(f"{limited.rest}{PREDICT}", content=iter([fits]), headers=headers)
    assert response.json() == {"predictions": [3.0]}


def test_a_content_length_with_thousands_of_leading_zeros(server: Server) -> None:
    """Digits llhttp takes but int() would not (over Python's 4300-digit limit)."""
    body = b'{"instances": [2.0]}'
    head = (
        f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {'0' * 5000}{len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with _connect(server) as sock:
        sock.sendall(head + body)
        raw = _read_all(sock)
    assert raw.startswith(b"HTTP/1.1 200"), raw[:300]
    assert b'"predictions"' in raw


@pytest.mark.usefixtures("still_serving")
def test_headers_within_the_limit_are_served(limited: Server) -> None:
    headers = {"X-Big": "a" * (MAX_HEADER - 200)}
    response = httpx.get(f"{limited.rest}/v1/models/half_plus_two", headers=headers, timeout=10)
    assert response.status_code == 200, response.text


@pytest.mark.usefixtures("still_serving")
def test_connections_beyond_the_limit_get_429(limited: Server) -> None:
    held = [_connect(limited) for _ in range(MAX_CONNECTIONS)]
    try:
        for sock in held:  # an answer on each: the server has accepted (and counts) them all
            sock.sendall(b"GET /v1/models/half_plus_two HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _one_response(sock).startswith(b"HTTP/1.1 200")
        with _connect(limited) as extra:
            extra.sendall(b"GET /v1/models/half_plus_two HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, message = _response(_read_all(extra))
        assert status == 429
        assert headers["retry-after"] == "1"
        assert "--rest_api_max_connections" in message
    finally:
        for sock in held:
            sock.close()


@pytest.mark.usefixtures("still_serving")
def test_too_many_tensor_elements_over_rest(limited: Server) -> None:
    url = f"{limited.rest}{PREDICT}"
    ok = httpx.post(url, json={"instances": [1.0] * MAX_ELEMENTS}, timeout=10)
    assert ok.status_code == 200, ok.text
    response = httpx.post(url, json={"instances": [1.0] * (MAX_ELEMENTS + 1)}, timeout=10)
    assert response.status_code == 429, response.text
    message = response.json()["error"]
    assert f"{MAX_ELEMENTS + 1} elements" in message
    assert "--max_request_tensor_elements" in message


def _grpc_predict(server: Server, count: int) -> predict_pb2.PredictResponse:
    import tensorflow as tf

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.ones(count, np.float32)))
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response: predict_pb2.PredictResponse = stub.Predict(request, timeout=20)
        return response


def test_too_many_tensor_elements_over_grpc(limited: Server) -> None:
    assert len(_grpc_predict(limited, MAX_ELEMENTS).outputs["y"].float_val) == MAX_ELEMENTS
    with pytest.raises(grpc.RpcError) as err:
        _grpc_predict(limited, MAX_ELEMENTS + 1)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max_request_tensor_elements" in (err.value.details() or "")


def test_grpc_message_size_follows_the_channel_argument(limited: Server) -> None:
    """TF Serving's way to bound gRPC messages: ``--grpc_channel_arguments``."""
    with pytest.raises(grpc.RpcError) as err:
        _grpc_predict(limited, GRPC_MAX_MESSAGE // 4 + 1000)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(GRPC_MAX_MESSAGE) in (err.value.details() or "")


# ---- memory under many large bodies ---------------------------------------------------------

CLIENTS = 200
BODY_MB = 50
BUDGET_MB = 128


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def _post_raw(port: int, head: bytes, body: memoryview, statuses: list[int]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=300) as sock:
        sock.sendall(head)
        sock.sendall(body)
        raw = _read_all(sock)
    statuses.append(int(raw.split(b" ", 2)[1]))
    assert raw.endswith(b'{"predictions":[3.0]}'), raw[-200:]


def test_memory_stays_bounded_under_200_concurrent_50mb_bodies(
    models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """200 clients send a 50 MB body each at once (10 GB): the server reads them as its
    body budget allows, answers every one, and its peak memory stays near the budget."""
    config = _config(models_dir, tmp_path_factory.mktemp("memory"))
    server = start_server(
        [
            f"--model_config_file={config}",
            "--num_workers=1",
            f"--rest_api_max_buffered_body_bytes={BUDGET_MB << 20}",
            "--rest_api_body_timeout_seconds=600",
        ]
    )
    try:
        assert server.process is not None
        pid = server.process.pid
        doc = b'{"instances": [2.0]}'  # then whitespace: 50 MB to read and parse, a tiny model call
        body = memoryview(doc + b" " * ((BODY_MB << 20) - len(doc)))
        head = (
            f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        before = _rss_kib(pid, "VmRSS")
        statuses: list[int] = []
        clients = [
            threading.Thread(target=_post_raw, args=(server.rest_port, head, body, statuses))
            for _ in range(CLIENTS)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        peak_growth_mb = (_rss_kib(pid, "VmHWM") - before) / 1024
        assert statuses == [200] * CLIENTS  # every body was read, parsed and answered
        # unbounded, all 200 bodies (10 GB) would be held at once; a few bodies in flight
        # (each held as chunks, joined, then parsed) stay within a small multiple of the budget
        assert peak_growth_mb < 8 * BUDGET_MB, f"peak RSS grew by {peak_growth_mb:.0f} MB"
        response = httpx.post(f"{server.rest}{PREDICT}", json={"instances": [2.0]}, timeout=10)
        assert response.json() == {"predictions": [3.0]}
    finally:
        server.stop()
