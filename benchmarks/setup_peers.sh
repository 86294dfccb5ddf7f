#!/usr/bin/env bash
# Idempotent installer for what `make bench` needs beyond the project's own venv:
#   * wrk (REST load) and h2load (nghttp2-client, gRPC load) from apt, when missing;
#   * fastapi in the project's venv (the "plain FastAPI wrapper" peer);
#   * KServe, Seldon MLServer and LitServe, each in its own virtualenv under $BENCH_DIR/venvs.
# A peer that fails to install leaves $BENCH_DIR/venvs/<peer>.failed holding the reason;
# this script itself always exits 0 so the benchmark can report "did not install".
#
# usage: benchmarks/setup_peers.sh [tools|fastapi|kserve|mlserver|litserve ...]   (default: all)
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BENCH_DIR="${BENCH_DIR:-$ROOT/bench-results}"
VENVS="$BENCH_DIR/venvs"
LOGS="$BENCH_DIR/logs"
PYTHON="${PYTHON:-python3.11}"
MAIN_PY="$ROOT/.venv/bin/python"
mkdir -p "$VENVS" "$LOGS"

# Pinned peer versions (the ones measured in shared/docs/benchmarking-notes.md).
KSERVE_REQS=("kserve==0.21.0" "tensorflow==2.21.*")
# MLServer 1.7.1 crash-loops its worker with uvloop>=0.22 (SeldonIO/MLServer#2286).
MLSERVER_REQS=("mlserver==1.7.1" "tensorflow==2.21.*" "uvloop<0.22")
# LitServe: API-server processes in front of inference workers over queues.
LITSERVE_REQS=("litserve==0.2.19" "tensorflow==2.21.*" "uvloop" "httptools")

log() { echo "[setup_peers] $*" >&2; }

install_tools() {
    local missing=()
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]} with apt-get"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >"$LOGS/apt.log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" \
        >>"$LOGS/apt.log" 2>&1 || log "apt-get install ${missing[*]} failed (see $LOGS/apt.log)"
}

install_fastapi() {
    if "$MAIN_PY" -c "import fastapi, uvicorn" >/dev/null 2>&1; then return 0; fi
    log "installing fastapi into the project venv"
    "$MAIN_PY" -m pip install --quiet "fastapi" "uvicorn[standard]" >"$LOGS/fastapi.log" 2>&1 \
        || log "fastapi install failed (see $LOGS/fastapi.log)"
}

# install_peer NAME CHECK_IMPORT REQS...
install_peer() {
    local name="$1" check="$2"; shift 2
    local venv="$VENVS/$name" stamp="$VENVS/$name/.bench-installed" failed="$VENVS/$name.failed"
    local want="$*"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
        && "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
        rm -f "$failed"; return 0
    fi
    log "installing $name ($want) into $venv (a few minutes on first run)"
    local logf="$LOGS/setup_$name.log"
    : >"$logf"
    if ! command -v "$PYTHON" >/dev/null 2>&1; then
        echo "no $PYTHON interpreter" >"$failed"; return 0
    fi
    if [ ! -x "$venv/bin/python" ]; then
        "$PYTHON" -m venv "$venv" >>"$logf" 2>&1 || { echo "venv creation failed" >"$failed"; return 0; }
    fi
    "$venv/bin/python" -m pip install --quiet --upgrade pip >>"$logf" 2>&1
    if "$venv/bin/python" -m pip install "$@" >>"$logf" 2>&1 \
        && "$venv/bin/python" -c "$check" >>"$logf" 2>&1; then
        echo "$want" >"$stamp"; rm -f "$failed"
        log "$name installed"
    else
        # Keep the most telling line of pip's output as the reason.
        grep -E "ERROR|Error|error:" "$logf" | tail -1 | cut -c1-200 >"$failed"
        [ -s "$failed" ] || tail -1 "$logf" | cut -c1-200 >"$failed"
        log "$name did not install: $(cat "$failed")"
    fi
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(tools fastapi kserve mlserver litserve)
for t in "${targets[@]}"; do
    case "$t" in
        tools) install_tools ;;
        fastapi) install_fastapi ;;
        kserve) install_peer kserve "import kserve, tensorflow" "${KSERVE_REQS[@]}" ;;
        mlserver) install_peer mlserver "import mlserver, tensorflow" "${MLSERVER_REQS[@]}" ;;
        litserve) install_peer litserve "import litserve, tensorflow" "${LITSERVE_REQS[@]}" ;;
        *) log "unknown target $t" ;;
    esac
done
exit 0
