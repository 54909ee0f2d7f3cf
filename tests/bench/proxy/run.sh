#!/usr/bin/env bash
# Our proxy vs nginx (Debian package) on this machine: same certificate, same upstream
# (an nginx serving "ok" and a 1 MiB file), same thread/worker count, same run.
# Prints one table with ratios (ours / nginx).
#
#   tests/bench/proxy/run.sh
#   env: THREADS=1 (proxy threads = nginx workers)  DURATION=10 (s per row)
#        ROUNDS=2 (per proxy and row, alternating order; means reported)
#        CONNS=50 BIG_CONNS=10 H2_CONNS=20 H2_STREAMS=10  IDLE=1000  BASE_PORT=21000
#        ONLY_IDLE=1 (skip the throughput rows: memory per idle connection only)
#        PSTEST_DEPS (its venv's python, with the `h2` package, opens the idle h2 connections)
set -euo pipefail

THREADS=${THREADS:-1}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
BIG_CONNS=${BIG_CONNS:-10}
H2_CONNS=${H2_CONNS:-20}
H2_STREAMS=${H2_STREAMS:-10}
IDLE=${IDLE:-1000}
ROUNDS=${ROUNDS:-2}
ONLY_IDLE=${ONLY_IDLE:-0}
PY_H2=${PSTEST_DEPS:-/opt/prometheus-stack-test}/venv/bin/python
BASE=${BASE_PORT:-21000}
UP_PORT=$((BASE + 1))
NGINX_PORT=$((BASE + 443))
OURS_PORT=$((BASE + 444))
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)

for t in nginx wrk h2load openssl python3 curl cargo; do
  command -v "$t" >/dev/null || { echo "missing $t: run tests/setup.sh" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/proxy-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "building the proxy (release)..." >&2
(cd "$ROOT" && cargo build --release --example proxy_standalone -q)
BIN="$ROOT/target/release/examples/proxy_standalone"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj /CN=bench.test \
  -addext subjectAltName=DNS:bench.test 2>/dev/null
chmod 644 "$WORK/key.pem"
mkdir -p "$WORK/www" "$WORK/tmp"
printf ok >"$WORK/www/small"
head -c 1048576 /dev/zero | tr '\0' x >"$WORK/www/big"

TEMPS="client_body_temp_path $WORK/tmp/body; proxy_temp_path $WORK/tmp/proxy;
  fastcgi_temp_path $WORK/tmp/fcgi; uwsgi_temp_path $WORK/tmp/uwsgi; scgi_temp_path $WORK/tmp/scgi;"

cat >"$WORK/upstream.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/upstream.pid;
error_log $WORK/upstream.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  sendfile on;
  $TEMPS
  server { listen 127.0.0.1:$UP_PORT; root $WORK/www; location / { } }
}
CONF

cat >"$WORK/nginx.conf" <<CONF
worker_processes $THREADS;
worker_rlimit_nofile 16384;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 8192; }
http {
  access_log off;
  $TEMPS
  upstream up { server 127.0.0.1:$UP_PORT; keepalive 256; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$NGINX_PORT ssl http2;
    server_name bench.test;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    keepalive_requests 1000000;
    client_max_body_size 100m;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_buffering off;
    }
  }
}
CONF

cat >"$WORK/stack.toml" <<CONF
[stack]
data_dir = "$WORK/data"
[proxy]
https = "127.0.0.1:$OURS_PORT"
header_timeout = "60s"
max_connections = 20000
max_conns_per_ip = 20000
[[proxy.site]]
host = "bench.test"
cert = "$WORK/cert.pem"
key = "$WORK/key.pem"
routes = [ { path = "/", to = "127.0.0.1:$UP_PORT" } ]
CONF

nginx -p "$WORK" -e "$WORK/upstream.err" -c "$WORK/upstream.conf" &
PIDS+=($!)
nginx -p "$WORK" -e "$WORK/nginx.err" -c "$WORK/nginx.conf" &
NGINX_PID=$!
PIDS+=($NGINX_PID)
RUST_LOG=warn,rustls=error "$BIN" "$WORK/stack.toml" "$THREADS" &
OURS_PID=$!
PIDS+=($OURS_PID)

check() { # port path expect
  for _ in $(seq 50); do
    if [ "$(curl -sk --resolve "bench.test:$1:127.0.0.1" "https://bench.test:$1$2" 2>/dev/null | head -c 2)" = "$3" ]; then
      return 0
    fi
    sleep 0.2
  done
  echo "no answer on port $1" >&2
  exit 1
}
check "$NGINX_PORT" /small ok
check "$OURS_PORT" /small ok
check "$OURS_PORT" /big xx
for p in "$NGINX_PORT" "$OURS_PORT"; do
  [ "$(curl -sk --http2 -o /dev/null -w '%{http_version}' --resolve "bench.test:$p:127.0.0.1" "https://bench.test:$p/small")" = 2 ] \
    || { echo "no HTTP/2 on $p" >&2; exit 1; }
done

to_ms() { python3 "$HERE/wrk_ms.py" "$1"; }

wrk_row() { # port path conns -> "rps p99ms"
  local out rps p99 bad
  out=$(wrk -t1 -c"$3" -d"${DURATION}s" --latency -H "Host: bench.test" "https://127.0.0.1:$1$2")
  bad=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  [ -z "$bad" ] || { echo "port $1: $bad non-2xx answers" >&2; echo "$out" >&2; exit 1; }
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(to_ms "$(echo "$out" | awk '$1=="99%" {print $2}')")
  echo "$rps $p99"
}

h2_row() { # port path -> "rps p99ms"
  local out rps failed
  rm -f "$WORK/h2.log"
  out=$(h2load -t1 -c"$H2_CONNS" -m"$H2_STREAMS" -D "$DURATION" --warm-up-time=1 \
    -H ':authority: bench.test' --log-file="$WORK/h2.log" "https://127.0.0.1:$1$2")
  failed=$(echo "$out" | awk '/^requests:/ {print $10 + $12}')
  [ "$failed" = 0 ] || { echo "port $1: h2load failures" >&2; echo "$out" >&2; exit 1; }
  echo "$out" | grep -q '2xx' || true
  rps=$(echo "$out" | awk '/^finished in/ {print $4}')
  echo "$rps $(python3 "$HERE/h2_p99.py" "$WORK/h2.log")"
}

rss_kb() { # pid (+ its children, for nginx workers)
  local total=0 p
  for p in $1 $(pgrep -P "$1" || true); do
    total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$p/status")))
  done
  echo "$total"
}

idle_row() { # pid port proto -> "rss_before_kib rss_with_idle_kib"
  local before after
  before=$(rss_kb "$1")
  coproc IDLECONN { "$PY_H2" "$HERE/idle_conns.py" "$2" "$IDLE" "$3"; }
  read -r line <&"${IDLECONN[0]}"
  [ "$line" = ready ] || { echo "idle connections failed on $2" >&2; exit 1; }
  sleep 1
  after=$(rss_kb "$1")
  exec {IDLECONN[1]}>&-
  wait "$IDLECONN_PID" 2>/dev/null || true
  echo "$before $after"
}

ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}' if b else 'n/a')" "$1" "$2"; }

echo "warming up..." >&2
wrk -t1 -c"$CONNS" -d2s -H "Host: bench.test" "https://127.0.0.1:$NGINX_PORT/small" >/dev/null
wrk -t1 -c"$CONNS" -d2s -H "Host: bench.test" "https://127.0.0.1:$OURS_PORT/small" >/dev/null

mean_pair() { # "rps p99" lines -> mean rps, mean p99
  awk '{r += $1; p += $2; n++} END {printf "%.2f %.2f\n", r / n, p / n}'
}

declare -A R
run_pair() { # label kind path conns: ROUNDS rounds in A B B A order, means reported
  echo "measuring $1 ..." >&2
  local i n="" o="" fn
  case $2 in
    wrk) fn() { wrk_row "$1" "$path" "$conns"; } ;;
    h2) fn() { h2_row "$1" "$path"; } ;;
  esac
  path=$3 conns=${4:-}
  for ((i = 0; i < ROUNDS; i++)); do
    if ((i % 2 == 0)); then
      n+="$(fn "$NGINX_PORT")"$'\n'
      o+="$(fn "$OURS_PORT")"$'\n'
    else
      o+="$(fn "$OURS_PORT")"$'\n'
      n+="$(fn "$NGINX_PORT")"$'\n'
    fi
  done
  R[$1.nginx]=$(printf '%s' "$n" | mean_pair)
  R[$1.ours]=$(printf '%s' "$o" | mean_pair)
}
ROWS=()
if [ "$ONLY_IDLE" != 1 ]; then
  run_pair "h1-small" wrk /small "$CONNS"
  run_pair "h1-1MiB" wrk /big "$BIG_CONNS"
  run_pair "h2-small" h2 /small
  ROWS=(h1-small h1-1MiB h2-small)
fi
# One protocol after the other, each against the RSS just before it (a connection
# closed by the previous row may leave freed memory behind: that counts as "before").
declare -A IDLE_RSS
for proto in h1 h2; do
  echo "measuring $IDLE idle $proto connections ..." >&2
  IDLE_RSS[$proto.nginx]=$(idle_row "$NGINX_PID" "$NGINX_PORT" "$proto")
  IDLE_RSS[$proto.ours]=$(idle_row "$OURS_PID" "$OURS_PORT" "$proto")
  sleep 1
done

echo
echo "proxy benchmark: threads/workers=$THREADS, ${DURATION}s x $ROUNDS rounds per row, load avg $(cut -d" " -f1-3 /proc/loadavg), $(nproc) CPUs, $(nginx -v 2>&1 | sed 's/.*: //')"
printf '%-34s %12s %12s %8s\n' "row" "nginx" "ours" "ours/nginx"
for row in "${ROWS[@]}"; do
  read -r nr np <<<"${R[$row.nginx]}"
  read -r orr op <<<"${R[$row.ours]}"
  case $row in
    h1-small) desc="HTTPS h1 keep-alive 2 B (c=$CONNS)" ;;
    h1-1MiB) desc="HTTPS h1 keep-alive 1 MiB (c=$BIG_CONNS)" ;;
    h2-small) desc="HTTP/2 2 B (c=$H2_CONNS, m=$H2_STREAMS)" ;;
  esac
  printf '%-34s %12s %12s %8s\n' "$desc req/s" "$nr" "$orr" "$(ratio "$orr" "$nr")"
  printf '%-34s %12s %12s %8s\n' "$desc p99 ms" "$np" "$op" "$(ratio "$op" "$np")"
done
per_conn() { python3 -c "import sys; print(f'{(int(sys.argv[2]) - int(sys.argv[1])) * 1.024 / int(sys.argv[3]):.1f}')" "$1" "$2" "$IDLE"; }
for proto in h1 h2; do
  read -r nb na <<<"${IDLE_RSS[$proto.nginx]}"
  read -r ob oa <<<"${IDLE_RSS[$proto.ours]}"
  printf '%-34s %12s %12s %8s\n' "RSS before $IDLE $proto KiB" "$nb" "$ob" "$(ratio "$ob" "$nb")"
  printf '%-34s %12s %12s %8s\n' "RSS with $IDLE idle $proto KiB" "$na" "$oa" "$(ratio "$oa" "$na")"
  npc=$(per_conn "$nb" "$na")
  opc=$(per_conn "$ob" "$oa")
  printf '%-34s %12s %12s %8s\n' "KB per idle $proto TLS 1.3 conn" "$npc" "$opc" "$(ratio "$opc" "$npc")"
done
