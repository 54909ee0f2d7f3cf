# Sourced by the security scripts: starts the daemon (debug build) in front of a counting
# upstream, with `tls = "files"` and a certificate from a throwaway test CA.
#   sec_start PORT_BASE [extra proxy TOML lines]   then use $SEC_HTTPS, $SEC_WORK, $SEC_HOST
# Upstream requests are counted, one line each, in $SEC_WORK/upstream.log.
set -euo pipefail
SEC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SEC_BIN="$SEC_ROOT/target/debug/prometheus-stack"
SEC_HOST=sec.test
SEC_PIDS=()

sec_cleanup() {
  for p in "${SEC_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${SEC_WORK:-}" ] && rm -rf "$SEC_WORK"
}
trap sec_cleanup EXIT

sec_start() {
  local base=$1 extra=${2:-}
  [ -x "$SEC_BIN" ] || (cd "$SEC_ROOT" && cargo build -q)
  SEC_WORK=$(mktemp -d /tmp/pstest-sec.XXXXXX)
  chmod 755 "$SEC_WORK"
  SEC_HTTPS=$((base + 443))
  local up=$((base + 80)) w=$SEC_WORK
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 400 \
    -keyout "$w/ca.key" -out "$w/ca.crt" -subj "/CN=pstest security CA" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$w/site.key" -out "$w/site.csr" -subj "/CN=$SEC_HOST" 2>/dev/null
  # A CRL distribution point as an operator's CA would give (testssl: HIGH without one).
  printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\ncrlDistributionPoints=URI:http://%s/ca.crl\n' \
    "$SEC_HOST" "$SEC_HOST" >"$w/ext"
  openssl x509 -req -in "$w/site.csr" -CA "$w/ca.crt" -CAkey "$w/ca.key" -CAcreateserial \
    -days 365 -extfile "$w/ext" -out "$w/site.crt" 2>/dev/null
  cat >"$w/upstream.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        with open(sys.argv[2], "a") as f:
            f.write(self.path + "\n")
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
    do_POST = do_GET
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
  : >"$w/upstream.log"
  cat >"$w/stack.toml" <<TOML
[stack]
name = "pstest-sec"
data_dir = "$w/data"
[control]
socket = "$w/control.sock"
[proxy]
https = "127.0.0.1:$SEC_HTTPS"
tls = "files"
$extra
[[proxy.site]]
host = "$SEC_HOST"
cert = "$w/site.crt"
key = "$w/site.key"
routes = [{ path = "/", to = "upstream" }]
[services.upstream]
command = ["python3", "$w/upstream.py", "$up", "$w/upstream.log"]
port = $up
health = { tcp = "127.0.0.1:$up", interval = "200ms" }
TOML
  "$SEC_BIN" run --config "$w/stack.toml" >"$w/daemon.log" 2>&1 &
  SEC_PIDS+=($!)
  for _ in $(seq 1 150); do
    if curl -sf --cacert "$w/ca.crt" --resolve "$SEC_HOST:$SEC_HTTPS:127.0.0.1" \
      "https://$SEC_HOST:$SEC_HTTPS/ready" >/dev/null 2>&1; then
      : >"$w/upstream.log"
      return 0
    fi
    sleep 0.2
  done
  echo "the daemon did not serve https://$SEC_HOST:$SEC_HTTPS/ within 30 s:" >&2
  tail -20 "$w/daemon.log" >&2
  return 1
}

# curl against the site through loopback, trusting the test CA.
sec_curl() {
  curl -s --cacert "$SEC_WORK/ca.crt" --resolve "$SEC_HOST:$SEC_HTTPS:127.0.0.1" "$@"
}
