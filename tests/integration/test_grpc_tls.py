"""TLS from ``--ssl_config_file`` (an ``SSLConfig`` text proto holding PEM *contents*).

Certificates are made at test time with the ``openssl`` CLI: a CA, a server certificate
for 127.0.0.1/localhost, a client certificate, and a client certificate from a second,
untrusted CA. One server uses TLS, one mutual TLS (``client_verify: true``); the same
config also secures the REST port (a tensorserve extension: TF Serving's REST has no TLS).
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.harness import Server, model_config, start_server

TIMEOUT = 10.0
pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@dataclass(frozen=True)
class Pki:
    folder: Path

    def path(self, name: str) -> Path:
        return self.folder / name

    def pem(self, name: str) -> bytes:
        return self.path(name).read_bytes()


def _openssl(folder: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)


def _ca(folder: Path, name: str) -> None:
    _openssl(
        folder,
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.pem",
        "-days",
        "2",
        "-subj",
        f"/CN=tensorserve test {name}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )


def _leaf(folder: Path, name: str, ca: str, usage: str, san: str) -> None:
    _openssl(
        folder,
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        f"/CN={name}",
    )
    (folder / f"{name}.ext").write_text(
        f"basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        f"extendedKeyUsage={usage}\nsubjectAltName={san}\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl(
        folder,
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{ca}.pem",
        "-CAkey",
        f"{ca}.key",
        "-CAcreateserial",
        "-out",
        f"{name}.pem",
        "-days",
        "2",
        "-extfile",
        f"{name}.ext",
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    _ca(folder, "ca")
    _ca(folder, "rogue_ca")
    _leaf(folder, "server", "ca", "serverAuth", "DNS:localhost,IP:127.0.0.1")
    _leaf(folder, "client", "ca", "clientAuth", "DNS:client")
    _leaf(folder, "rogue_client", "rogue_ca", "clientAuth", "DNS:client")
    return Pki(folder)


def ssl_config(pki: Pki, client_verify: bool) -> str:
    """An SSLConfig text proto; the fields hold PEM contents (JSON escapes are valid here)."""
    fields = {
        "server_key": pki.pem("server.key"),
        "server_cert": pki.pem("server.pem"),
        "custom_ca": pki.pem("ca.pem"),
    }
    lines = [f"{key}: {json.dumps(value.decode())}" for key, value in fields.items()]
    lines.append(f"client_verify: {str(client_verify).lower()}")
    return "\n".join(lines) + "\n"


def client_context(pki: Pki, cert: str | None = None) -> ssl.SSLContext:
    """Trusts our CA; presents ``cert`` (``client`` or ``rogue_client``) when given."""
    context = ssl.create_default_context(cafile=str(pki.path("ca.pem")))
    if cert is not None:
        context.load_cert_chain(str(pki.path(f"{cert}.pem")), str(pki.path(f"{cert}.key")))
    return context


def https_ready(context: ssl.SSLContext) -> Callable[[Server], bool]:
    def ready(server: Server) -> bool:
        url = f"https://127.0.0.1:{server.rest_port}/v2/health/live"
        return httpx.get(url, verify=context, timeout=2).status_code == 200

    return ready


def start_tls_server(
    pki: Pki, models_dir: Path, client_verify: bool, context: ssl.SSLContext
) -> Server:
    folder = pki.folder / ("mtls" if client_verify else "tls")
    folder.mkdir()
    (folder / "ssl.config").write_text(ssl_config(pki, client_verify))
    (folder / "models.config").write_text(
        model_config([("half_plus_two", str(models_dir / "half_plus_two"), "")])
    )
    return start_server(
        [
            f"--model_config_file={folder / 'models.config'}",
            f"--ssl_config_file={folder / 'ssl.config'}",
        ],
        ready=https_ready(context),
    )


@pytest.fixture(scope="module")
def tls_server(pki: Pki, models_dir: Path) -> Iterator[Server]:
    srv = start_tls_server(pki, models_dir, False, client_context(pki))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def mtls_server(pki: Pki, models_dir: Path) -> Iterator[Server]:
    srv = start_tls_server(pki, models_dir, True, client_context(pki, "client"))
    yield srv
    srv.stop()


def predict(channel: grpc.Channel) -> float:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([4.0], np.float32)))
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(request, timeout=TIMEOUT)
    return float(tf.make_ndarray(response.outputs["y"])[0])


def predict_fails(channel: grpc.Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        predict(channel)
    error = info.value
    assert isinstance(error, grpc.Call)
    code: grpc.StatusCode = error.code()
    return code


def credentials(pki: Pki, client: str | None = None) -> grpc.ChannelCredentials:
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=pki.pem("ca.pem"))
    return grpc.ssl_channel_credentials(
        root_certificates=pki.pem("ca.pem"),
        private_key=pki.pem(f"{client}.key"),
        certificate_chain=pki.pem(f"{client}.pem"),
    )


EXPECTED_Y = 0.5 * 4.0 + 3.0  # half_plus_two version 2 (the latest)


# ---- TLS ----------------------------------------------------------------------------------


def test_tls_grpc_with_ssl_channel_credentials(pki: Pki, tls_server: Server) -> None:
    with grpc.secure_channel(tls_server.grpc_target, credentials(pki)) as channel:
        assert predict(channel) == EXPECTED_Y


def test_tls_grpc_plain_channel_fails(tls_server: Server) -> None:
    with grpc.insecure_channel(tls_server.grpc_target) as channel:
        assert predict_fails(channel) == grpc.StatusCode.UNAVAILABLE


def test_tls_grpc_client_not_trusting_the_ca_fails(pki: Pki, tls_server: Server) -> None:
    untrusting = grpc.ssl_channel_credentials(root_certificates=pki.pem("rogue_ca.pem"))
    with grpc.secure_channel(tls_server.grpc_target, untrusting) as channel:
        assert predict_fails(channel) == grpc.StatusCode.UNAVAILABLE


def test_tls_rest_over_https(pki: Pki, tls_server: Server) -> None:
    with httpx.Client(verify=client_context(pki), timeout=TIMEOUT) as client:
        response = client.post(
            f"https://127.0.0.1:{tls_server.rest_port}/v1/models/half_plus_two:predict",
            json={"instances": [4.0]},
        )
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [EXPECTED_Y]}


def test_tls_rest_plain_http_fails(tls_server: Server) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{tls_server.rest}/v1/models/half_plus_two", timeout=TIMEOUT)


# ---- mutual TLS ---------------------------------------------------------------------------


def test_mtls_grpc_with_client_certificate(pki: Pki, mtls_server: Server) -> None:
    with grpc.secure_channel(mtls_server.grpc_target, credentials(pki, "client")) as channel:
        assert predict(channel) == EXPECTED_Y


@pytest.mark.parametrize("client", [None, "rogue_client"], ids=["no-cert", "untrusted-cert"])
def test_mtls_grpc_without_valid_client_certificate_fails(
    pki: Pki,
    mtls_server: Server,
    client: str | None,
) -> None:
    with grpc.secure_channel(mtls_server.grpc_target, credentials(pki, client)) as channel:
        assert predict_fails(channel) == grpc.StatusCode.UNAVAILABLE


def test_mtls_rest_with_client_certificate(pki: Pki, mtls_server: Server) -> None:
    with httpx.Client(verify=client_context(pki, "client"), timeout=TIMEOUT) as client:
        response = client.get(f"https://127.0.0.1:{mtls_server.rest_port}/v1/models/half_plus_two")
    assert response.status_code == 200, response.text
    assert [s["state"] for s in response.json()["model_version_status"]] == ["AVAILABLE"]


@pytest.mark.parametrize("client", [None, "rogue_client"], ids=["no-cert", "untrusted-cert"])
def test_mtls_rest_without_valid_client_certificate_fails(
    pki: Pki,
    mtls_server: Server,
    client: str | None,
) -> None:
    with (
        httpx.Client(verify=client_context(pki, client), timeout=TIMEOUT) as http,
        pytest.raises(httpx.TransportError),
    ):
        http.get(f"https://127.0.0.1:{mtls_server.rest_port}/v1/models/half_plus_two")
