#!/usr/bin/env bash
# Container unit start-to-healthy: through our daemon (`start web` over the control
# socket until status says healthy) against the same `podman run` by hand plus polling
# its port, interleaved, same probe cadence (10 ms). Prints medians, p90 and the ratio.
# Needs podman, runc, catatonit, busybox-static (tests/setup.sh). Ports 24900-24901.
# Usage: tests/bench/podman/run.sh [ROUNDS]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROUNDS="${1:-20}"
IMAGE=localhost/pstest-busybox:1
for t in podman /usr/libexec/podman/catatonit /bin/busybox python3; do
  command -v "$t" >/dev/null || [ -x "$t" ] || { echo "missing $t: run tests/setup.sh" >&2; exit 1; }
done
cargo build --release --quiet
BIN="$PWD/target/release/prometheus-stack"

if ! podman image exists "$IMAGE"; then
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/www" "$root/tmp"
  cp /bin/busybox "$root/bin/"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
  echo ok > "$root/www/index.html"
  tar -C "$root" -c . | podman import --quiet - "$IMAGE" >/dev/null
  rm -rf "$root"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/stack.toml" <<CONF
[stack]
name = "pbench"
data_dir = "$work/data"

[services.web]
runtime = "podman"
image = "$IMAGE"
command = ["/bin/httpd", "-f", "-p", "127.0.0.1:24900", "-h", "/www"]
port = 24900
restart = "never"
health = { http = "http://127.0.0.1:24900/index.html", interval = "10ms", start_period = "30s" }
CONF
python3 tests/bench/podman/bench.py "$BIN" "$work" "$IMAGE" "$ROUNDS"
