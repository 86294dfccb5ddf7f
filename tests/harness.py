"""Start the real server (``python -m tensorserve``) on free loopback ports and stop it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx

ROOT = Path(__file__).resolve().parent.parent
SHARED_TESTDATA = ROOT.parent / "shared" / "testdata" / "tfserving"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


def command(args: Sequence[str]) -> list[str]:
    """``python -m tensorserve`` with ``args``."""
    return [sys.executable, "-m", "tensorserve", *args]


def model_config(models: Sequence[tuple[str, str, str]]) -> str:
    """A model_config_list text proto from (name, base_path, extra fields) triples."""
    entries = "".join(
        f'  config {{ name: "{n}" base_path: "{p}" model_platform: "tensorflow" {extra} }}\n'
        for n, p, extra in models
    )
    return "model_config_list {\n" + entries + "}\n"


@dataclass
class Server:
    """A running tensorserve process."""

    args: list[str]
    rest_port: int = 0
    grpc_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=lambda: Path(tempfile.mktemp(suffix=".log")))

    @property
    def rest(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, ready: Callable[[Server], bool] | None = None, timeout: float = 90) -> Server:
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(
            command(self.args), cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, env=ENV
        )
        deadline = time.monotonic() + timeout
        check = ready or _live
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.logs()}")
            try:
                if check(self):
                    return self
            except (httpx.HTTPError, OSError, grpc.FutureTimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 30) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def _live(server: Server) -> bool:
    if server.rest_port:
        return httpx.get(f"{server.rest}/v2/health/live", timeout=2).status_code == 200
    import grpc

    with grpc.insecure_channel(server.grpc_target) as channel:
        grpc.channel_ready_future(channel).result(timeout=2)
    return True


def loopback_args(rest_port: int, grpc_port: int, extra_args: Sequence[str]) -> list[str]:
    """Flags for a server on 127.0.0.1 with these ports, then ``extra_args``."""
    return [
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        "--bind_address=127.0.0.1",
        *extra_args,
    ]


def start_server(
    extra_args: Sequence[str],
    rest: bool = True,
    grpc_port: bool = True,
    ready: Callable[[Server], bool] | None = None,
) -> Server:
    """Start a server on free ports bound to 127.0.0.1 with ``extra_args``."""
    rest_port = free_port() if rest else 0
    port = free_port() if grpc_port else 0
    return Server(loopback_args(rest_port, port, extra_args), rest_port, port).start(ready)


def exiting_server_command(extra_args: Sequence[str]) -> list[str]:
    """The command line of a server on free loopback ports that should exit by itself."""
    return command(loopback_args(free_port(), free_port(), extra_args))


def run_server_expecting_exit(
    extra_args: Sequence[str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a server that must exit by itself (bad flags or config); stdout/stderr captured."""
    return subprocess.run(
        exiting_server_command(extra_args),
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def copy_version(source: Path, base: Path, version: int) -> Path:
    """Copy a version folder the safe way: into a hidden name, then rename into place."""
    base.mkdir(parents=True, exist_ok=True)
    staging = base / f".staging-{version}"
    shutil.copytree(source, staging)
    target = base / str(version)
    os.rename(staging, target)
    return target
