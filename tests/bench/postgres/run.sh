#!/usr/bin/env bash
# Benchmark: time from `prometheus-stack run` to the postgres unit being healthy on an
# existing data dir, against starting the same postgres by hand and polling pg_isready.
# Both sides are polled the same way (a fresh client process per poll, no sleep), so the
# difference is our overhead: config + plan, prepare (pid file, ownership checks), spawn
# as the unit user, and a real SCRAM login + SELECT 1 instead of pg_isready's ping.
#
# Usage: tests/bench/postgres/run.sh [ROUNDS]   (env: BIN=path/to/prometheus-stack,
#        PG_BIN=/usr/lib/postgresql/15/bin, PORT=23900). Run as root (postgres runs as
#        user postgres). Prints the medians and our overhead (target < 50 ms).
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROUNDS="${1:-10}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PORT="${PORT:-23900}"
BIN="${BIN:-target/release/prometheus-stack}"
if [ ! -x "$BIN" ]; then
  echo "[bench] building $BIN (cargo build --release)" >&2
  cargo build --release --quiet
fi
[ -x "$PG_BIN/postgres" ] || { echo "no PostgreSQL at $PG_BIN: run tests/setup.sh" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl missing: run tests/setup.sh" >&2; exit 1; }

WORK=$(mktemp -d /tmp/pstest-pgbench.XXXXXX)
chmod 755 "$WORK"
DAEMON=""
cleanup() {
  [ -n "$DAEMON" ] && kill -TERM "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null || true
  local pid
  pid=$(head -1 "$WORK/data/postgres/postmaster.pid" 2>/dev/null || true)
  [ -n "$pid" ] && kill -INT "$pid" 2>/dev/null && sleep 1
  rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/stack.toml" <<TOML
[stack]
data_dir = "$WORK/data"
runtime_dir = "$WORK/run"
[control]
socket = "$WORK/control.sock"
[services.postgres]
preset = "postgres"
runtime = "process"
bin_dir = "$PG_BIN"
port = $PORT
extensions = []
databases = ["app"]
TOML

now_ns() { date +%s%N; }

healthy() {
  curl -s --max-time 1 --unix-socket "$WORK/control.sock" http://x/v1/status 2>/dev/null |
    grep -Eq '\{[^{}]*"name":"postgres"[^{}]*"state":"healthy"'
}

# One daemon run: start, wait for healthy, stop. Prints milliseconds to healthy.
ours() {
  local t0 t1
  t0=$(now_ns)
  "$BIN" --config "$WORK/stack.toml" run 2>>"$WORK/daemon.log" &
  DAEMON=$!
  until healthy; do
    kill -0 "$DAEMON" 2>/dev/null || { echo "daemon died, see log:" >&2; tail -20 "$WORK/daemon.log" >&2; exit 1; }
  done
  t1=$(now_ns)
  kill -TERM "$DAEMON"; wait "$DAEMON" 2>/dev/null || true; DAEMON=""
  echo $(( (t1 - t0) / 1000 ))
}

# The same postgres command line, by hand, as user postgres; polled with pg_isready.
by_hand() {
  local t0 t1 pid argv
  argv=$("$BIN" --config "$WORK/stack.toml" show-config --json |
    python3 -c 'import json,sys,shlex; u=[u for u in json.load(sys.stdin)["units"] if u["name"]=="postgres"][0]; print(shlex.join(u["exec"]["command"]))')
  t0=$(now_ns)
  setpriv --reuid postgres --regid postgres --clear-groups -- sh -c "exec $argv" >>"$WORK/by-hand.log" 2>&1 &
  pid=$!
  until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -t 1; do
    kill -0 "$pid" 2>/dev/null || { echo "postgres died:" >&2; tail -20 "$WORK/by-hand.log" >&2; exit 1; }
  done
  t1=$(now_ns)
  kill -INT "$pid"; wait "$pid" 2>/dev/null || true
  echo $(( (t1 - t0) / 1000 ))
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

echo "[bench] first start (initdb) to create the data dir" >&2
ours >/dev/null
echo "[bench] $ROUNDS rounds each, alternating, on the existing data dir ($PG_BIN, port $PORT)" >&2
: >"$WORK/ours"; : >"$WORK/hand"
for i in $(seq "$ROUNDS"); do
  by_hand >>"$WORK/hand"
  ours >>"$WORK/ours"
done
H=$(median <"$WORK/hand"); O=$(median <"$WORK/ours")
# Rounds alternate, so the per-round difference cancels most of the machine's drift.
P=$(paste "$WORK/ours" "$WORK/hand" | awk '{print $1 - $2}' | median)
ms() { awk -v u="$1" 'BEGIN{printf "%.1f ms", u/1000}'; }
echo "by hand (postgres + pg_isready polling), median of $ROUNDS: $(ms "$H")   [µs: $(tr '\n' ' ' <"$WORK/hand")]"
echo "prometheus-stack run -> postgres healthy, median of $ROUNDS: $(ms "$O")   [µs: $(tr '\n' ' ' <"$WORK/ours")]"
echo "overhead: $(ms $((O - H))) (difference of medians), $(ms "$P") (median of per-round differences); ratio $(awk -v o="$O" -v h="$H" 'BEGIN{printf "%.2f", o/h}'); target < 50 ms"
echo "load average during the run: $(cut -d' ' -f1-3 /proc/loadavg)"
