"""Container HEALTHCHECK: exit 0 when the server's REST readiness endpoint answers 200.

The REST port is read from the running server's own command line (``--rest_api_port``), so
the check follows whatever ports the entrypoint, KServe's runtime or the user chose; plain
HTTP unless ``--ssl_config_file`` is set (then HTTPS without certificate checks: the check
only asks the local server whether it is ready). ``TENSORSERVE_HEALTH_URL`` overrides it.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request

SERVER_NAMES = ("tensorflow_model_server", "tensorserve")


def _server_args() -> list[str]:
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
        except OSError:
            continue
        if any(os.path.basename(a).startswith(SERVER_NAMES) for a in argv[:3]):
            return argv
    return []


def _flag(argv: list[str], name: str) -> str | None:
    value = None
    for i, arg in enumerate(argv):  # the last occurrence wins, as in the server's parser
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{name}" and i + 1 < len(argv):
            value = argv[i + 1]
    return value


def url() -> str:
    if os.environ.get("TENSORSERVE_HEALTH_URL"):
        return os.environ["TENSORSERVE_HEALTH_URL"]
    argv = _server_args()
    port = _flag(argv, "rest_api_port") or "8501"
    scheme = "https" if _flag(argv, "ssl_config_file") else "http"
    return f"{scheme}://127.0.0.1:{port}/v2/health/ready"


def main() -> int:
    target = url()
    context = None
    if target.startswith("https:"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(target, timeout=3, context=context) as resp:
            return 0 if resp.status == 200 else 1
    except Exception as exc:
        print(f"not ready: {target}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
