#!/usr/bin/env bash
# Supervisor benchmark: prometheus-stack against supervisord (Debian `supervisor`), same
# programs, same machine, same run.
#  (a) crash-to-restart latency: median of N SIGKILLs of a unit whose first restart delay
#      is 0 (time from the kill to the new process's first instruction);
#  (b) idle RSS and CPU of the daemon with 20 `sleep` units for IDLE_SECS seconds.
# Usage: tests/bench/supervisor/run.sh   (env: KILLS=100 IDLE_SECS=60)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
KILLS="${KILLS:-100}"
IDLE_SECS="${IDLE_SECS:-60}"
command -v supervisord >/dev/null || { echo "supervisord missing: run tests/setup.sh (Debian package supervisor)" >&2; exit 1; }
py=/usr/bin/python3

cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/prometheus-stack"
work="$(mktemp -d /tmp/ps-bench.XXXXXX)"
pids=()
cleanup() {
  exec 2>/dev/null  # no job-control chatter about the daemons we kill
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  # supervisord stops its 20 programs one by one: give both daemons time to take their
  # children with them before SIGKILL would orphan them.
  for _ in $(seq 1 100); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
gcc -O2 -o "$work/stamp" "$here/stamp.c"

# ---- configs -------------------------------------------------------------------------
ps_conf() { # $1 dir, $2 units(restart|idle)
  local d="$1"
  mkdir -p "$d"
  {
    echo "[stack]"; echo "name = \"bench\""; echo "data_dir = \"$d/data\""
    echo "[control]"; echo "socket = \"$d/ctl.sock\""
    if [ "$2" = restart ]; then
      echo "[services.victim]"
      echo "command = [\"$work/stamp\", \"$d/stamp\"]"
      echo "restart = \"always\""
      echo "backoff = { initial = \"0s\", max = \"1s\", reset_after = \"0s\" }"
      echo "crash_loop = { failures = 100000, window = \"1s\" }"
    else
      for i in $(seq 1 20); do
        echo "[services.s$i]"; echo "command = [\"sleep\", \"100000\"]"
      done
    fi
  } > "$d/stack.toml"
}
sv_conf() {
  local d="$1"
  mkdir -p "$d"
  {
    echo "[supervisord]"; echo "nodaemon=true"; echo "logfile=$d/supervisord.log"
    echo "pidfile=$d/supervisord.pid"; echo "childlogdir=$d"
    echo "[unix_http_server]"; echo "file=$d/sv.sock"
    echo "[rpcinterface:supervisor]"
    echo "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface"
    if [ "$2" = restart ]; then
      echo "[program:victim]"; echo "command=$work/stamp $d/stamp"
      echo "autorestart=true"; echo "startsecs=0"; echo "startretries=100000"
    else
      for i in $(seq 1 20); do
        echo "[program:s$i]"; echo "command=sleep 100000"; echo "autorestart=true"
      done
    fi
  } > "$d/supervisord.conf"
}
# Started in this shell (not in $(…)), so the daemons are our children; $started is the pid.
start_ps() { "$bin" run --config "$1/stack.toml" >/dev/null 2>"$1/daemon.log" & started=$!; pids+=("$started"); }
start_sv() { supervisord -c "$1/supervisord.conf" >/dev/null 2>&1 & started=$!; pids+=("$started"); }
wait_children() { # $1 pid, $2 count: until the daemon has that many children
  for _ in $(seq 1 300); do
    n=$(ps --ppid "$1" --no-headers 2>/dev/null | wc -l || true)
    [ "$n" -ge "$2" ] && return 0
    sleep 0.1
  done
  echo "daemon $1 never had $2 children" >&2; exit 1
}

# ---- (a) restart latency ---------------------------------------------------------------
ps_conf "$work/ps-a" restart; sv_conf "$work/sv-a" restart
start_ps "$work/ps-a"; p=$started
read -r ps_med ps_p90 < <($py "$here/measure.py" restart "$work/ps-a/stamp" "$KILLS")
kill -TERM "$p"; wait "$p" 2>/dev/null || true
start_sv "$work/sv-a"; s=$started
read -r sv_med sv_p90 < <($py "$here/measure.py" restart "$work/sv-a/stamp" "$KILLS")
kill -TERM "$s"; wait "$s" 2>/dev/null || true

# ---- (b) idle, both at once ----------------------------------------------------------------
ps_conf "$work/ps-b" idle; sv_conf "$work/sv-b" idle
start_ps "$work/ps-b"; p=$started; start_sv "$work/sv-b"; s=$started
wait_children "$p" 20; wait_children "$s" 20
sleep 2
declare -A rss cpu
while read -r pid r c; do rss[$pid]=$r; cpu[$pid]=$c; done < <($py "$here/measure.py" idle "$IDLE_SECS" "$p" "$s")

ratio() { $py -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.3f}' if b else ('inf' if a else '1.000'))" "$1" "$2"; }
echo "machine: $(nproc) cpus, $(uname -r); supervisord $(supervisord --version)"
echo "(a) crash-to-restart latency, $KILLS SIGKILLs, first restart delay 0"
printf "    prometheus-stack  median %8.3f ms  p90 %8.3f ms\n" "$ps_med" "$ps_p90"
printf "    supervisord       median %8.3f ms  p90 %8.3f ms\n" "$sv_med" "$sv_p90"
echo "    ratio prometheus-stack/supervisord (median): $(ratio "$ps_med" "$sv_med")"
echo "(b) idle, 20 sleep units, ${IDLE_SECS}s"
printf "    prometheus-stack  RSS %6d KiB  CPU %6.2f s\n" "${rss[$p]}" "${cpu[$p]}"
printf "    supervisord       RSS %6d KiB  CPU %6.2f s\n" "${rss[$s]}" "${cpu[$s]}"
echo "    ratio RSS: $(ratio "${rss[$p]}" "${rss[$s]}")   ratio CPU: $(ratio "${cpu[$p]}" "${cpu[$s]}")"
ok=1
$py -c "import sys; sys.exit(0 if float('$ps_med') < 10 and float('$ps_med') < float('$sv_med') else 1)" || { echo "    MISS: restart median target (< 10 ms and below supervisord)"; ok=0; }
$py -c "import sys; sys.exit(0 if ${rss[$p]} < ${rss[$s]} / 2 else 1)" || { echo "    MISS: RSS target (< half of supervisord)"; ok=0; }
$py -c "import sys; sys.exit(0 if ${cpu[$p]} <= ${cpu[$s]} else 1)" || { echo "    MISS: idle CPU target (not above supervisord)"; ok=0; }
[ "$ok" = 1 ] && echo "targets: all met"
