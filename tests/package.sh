#!/usr/bin/env bash
# The package's CI steps (issue 7), run by tests/run.sh after `cargo test`:
# build the .deb, lintian, `systemd-analyze verify`, `dpkg -i`, `check` on the
# shipped config and after the operator's edit, `bundle import`, start and stop
# the installed binary the way the unit's
# ExecStart does (systemd is not PID 1 here: a python3 socket stands in for
# NOTIFY_SOCKET), upgrade to a rebuilt higher version with the daemon running (the
# package takes a verified backup first), `doctor` against a running daemon of the
# installed package, remove, purge, and the rollback: reinstall, restore that backup.
#
# It installs the package on this machine for about a minute and purges it
# again; /etc/prometheus-stack/stack.toml exists meanwhile, which `run` and
# `check` without --config would pick up. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

# dpkg, the system user and the daemon's user switch all need root (CI runs as root).
if [ "$(id -u)" -ne 0 ]; then
  echo "tests/package.sh: run as root (sudo tests/package.sh)" >&2
  exit 1
fi
SUDO=""
PKG=prometheus-stack
STATE_DIR=/var/lib/prometheus-stack
MARKER="$STATE_DIR/.package-sh-test"  # says: this state dir was made by this script
UNIT=/usr/lib/systemd/system/prometheus-stack.service
CONF=/etc/prometheus-stack/stack.toml
PORT=25080                            # this test's port (range 25000-25999)
T=$(mktemp -d /tmp/pstest-pkg.XXXXXX)
chmod 755 "$T"
daemon_pid=""
listener_pid=""
hosts_added=""
HOSTS_MARK="# prometheus-stack package test" # marks the /etc/hosts line of the doctor step
t0=$(date +%s)

log() { printf '[package %3ss] %s\n' "$(($(date +%s) - t0))" "$*" >&2; }
fail() {
  printf '[package] FAIL: %s\n' "$*" >&2
  exit 1
}
pass() { log "ok: $*"; }

# Drops the doctor step's /etc/hosts line; /etc/hosts may be a bind mount (containers), so
# it is rewritten in place, never renamed over.
unhost() {
  [ -n "$HOSTS_MARK" ] && grep -qF "$HOSTS_MARK" /etc/hosts || return 0
  grep -vF "$HOSTS_MARK" /etc/hosts >"$T/hosts.new" || true
  cat "$T/hosts.new" >/etc/hosts
}

installed() { dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'install ok installed'; }
known() { dpkg-query -W -f='${Status}' "$PKG" >/dev/null 2>&1 && ! dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'not-installed'; }

cleanup() {
  local rc=$?
  [ -n "$daemon_pid" ] && kill -KILL "$daemon_pid" 2>/dev/null || true
  [ -n "$listener_pid" ] && kill "$listener_pid" 2>/dev/null || true
  [ -n "$hosts_added" ] && unhost
  # Never leave the package (and its /etc config) behind on the test machine.
  if known; then
    $SUDO dpkg --purge "$PKG" >/dev/null 2>&1 || true
  fi
  if [ -f "$MARKER" ]; then
    $SUDO rm -rf "$STATE_DIR"
  fi
  if command -v podman >/dev/null; then
    $SUDO podman rmi -f localhost/prometheus-stack-pkgtest:1 >/dev/null 2>&1 || true
  fi
  if [ "$rc" -ne 0 ] && [ -f "$T/daemon.log" ]; then
    echo "--- daemon output (last 40 lines) ---" >&2
    tail -n 40 "$T/daemon.log" >&2 || true
  fi
  $SUDO rm -rf "$T"
  exit "$rc"
}
trap cleanup EXIT

for tool in lintian systemd-analyze python3 curl dpkg-deb man openssl; do
  command -v "$tool" >/dev/null || fail "$tool is missing: run tests/setup.sh"
done

# A leftover from an interrupted run is purged; a real installation is not touched.
if known; then
  [ -f "$MARKER" ] || fail "$PKG is installed on this machine and $STATE_DIR was not made by this test: refusing to purge it"
  $SUDO dpkg --purge "$PKG" >/dev/null
fi
if [ -d "$STATE_DIR" ]; then
  [ -f "$MARKER" ] || fail "$STATE_DIR exists and was not made by this test: refusing to touch it"
  $SUDO rm -rf "$STATE_DIR"
fi

if ! command -v cargo-deb >/dev/null; then
  log "cargo install cargo-deb (about a minute)"
  cargo install --quiet --locked cargo-deb@3.8.0
fi

# ---------------------------------------------------------------- build
log "building the .deb (release profile)"
b0=$(date +%s)
DEB=$(DEB_FAST=1 packaging/build-deb.sh)
VERSION=$(dpkg-deb -f "$DEB" Version)
pass "built $DEB in $(($(date +%s) - b0)) s"
case "$(basename "$DEB")" in
  "${PKG}_${VERSION}_$(dpkg --print-architecture).deb") ;;
  *) fail "file name $(basename "$DEB") is not ${PKG}_VERSION_ARCH.deb" ;;
esac
contents=$(dpkg-deb -c "$DEB" | awk '{print $6}')
for f in ./usr/bin/prometheus-stack ./etc/prometheus-stack/stack.toml \
  ./usr/lib/systemd/system/prometheus-stack.service \
  ./usr/share/man/man1/prometheus-stack.1.gz \
  ./usr/share/bash-completion/completions/prometheus-stack \
  ./usr/share/zsh/vendor-completions/_prometheus-stack \
  ./usr/share/fish/vendor_completions.d/prometheus-stack.fish \
  ./usr/share/doc/prometheus-stack/changelog.gz ./usr/share/doc/prometheus-stack/copyright; do
  grep -qxF "$f" <<<"$contents" || fail "$f is not in the package"
done
dpkg-deb -I "$DEB" conffiles | grep -qxF "$CONF" || fail "$CONF is not a conffile"
cmp -s <(dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/lib/systemd/system/prometheus-stack.service) \
  systemd/prometheus-stack.service || fail "the packaged unit differs from systemd/prometheus-stack.service"
pass "contents: binary, conffile, unit, man page, 3 completions, changelog, copyright"

# ---------------------------------------------------------------- lintian
log "lintian"
lintian_out=$(lintian --pedantic --display-info "$DEB" 2>&1 | grep -v 'running with root privileges' || true)
[ -z "$lintian_out" ] || printf '%s\n' "$lintian_out" >&2
if grep -qE '^[EW]: ' <<<"$lintian_out"; then
  fail "lintian reports errors or warnings (see above); fix them or add an explained override in packaging/lintian-overrides"
fi
pass "lintian: no errors, no warnings (explained overrides: $(grep -vc '^#' packaging/lintian-overrides))"

# ---------------------------------------------------------------- install
log "dpkg -i"
$SUDO dpkg -i "$DEB" </dev/null >"$T/install.log" 2>&1 || {
  cat "$T/install.log" >&2
  fail "dpkg -i failed"
}
installed || fail "dpkg -i did not leave $PKG installed"
getent group prometheus-stack >/dev/null || fail "group prometheus-stack not created"
[ "$(getent passwd prometheus-stack | cut -d: -f4)" = "$(getent group prometheus-stack | cut -d: -f3)" ] ||
  fail "user prometheus-stack is missing or not in group prometheus-stack"
uid=$(id -u prometheus-stack)
[ "$uid" -lt 1000 ] || fail "prometheus-stack is not a system user (uid $uid)"
[ "$(stat -c '%U:%G %a' "$STATE_DIR")" = "root:root 751" ] || fail "$STATE_DIR is $(stat -c '%U:%G %a' "$STATE_DIR"), want root:root 751"
[ "$(stat -c '%U:%G %a' /var/log/prometheus-stack)" = "root:adm 2750" ] || fail "/var/log/prometheus-stack is $(stat -c '%U:%G %a' /var/log/prometheus-stack), want root:adm 2750"
[ -L /etc/systemd/system/multi-user.target.wants/prometheus-stack.service ] || fail "the unit was not enabled (deb-systemd-helper)"
grep -q "edit $CONF" "$T/install.log" || fail "postinst did not tell the operator which file to edit"
$SUDO touch "$MARKER"
man -w prometheus-stack >/dev/null 2>&1 || fail "man prometheus-stack finds no page"
bash -c 'source /usr/share/bash-completion/completions/prometheus-stack && complete -p prometheus-stack' >/dev/null ||
  fail "the bash completion does not register"
pass "installed: system user+group, $STATE_DIR root:root 0751, /var/log/prometheus-stack root:adm 2750, unit enabled, man page, completions"

# ---------------------------------------------------------------- systemd-analyze
log "systemd-analyze verify"
if ! systemd-analyze verify "$UNIT" >"$T/verify.out" 2>"$T/verify.err" || [ -s "$T/verify.err" ]; then
  cat "$T/verify.out" "$T/verify.err" >&2
  fail "systemd-analyze verify $UNIT is not clean"
fi
systemd-analyze security --offline=true "$UNIT" 2>/dev/null | tail -n 1 | sed 's/^/[package] info: /' >&2 || true
pass "systemd-analyze verify: nothing on stderr"

# ---------------------------------------------------------------- check
# The shipped config must fail only on what the operator fills in: the domain and
# each site's host, cert and key, each reported at its own line.
log "prometheus-stack check on the installed $CONF"
set +e
(cd / && /usr/bin/prometheus-stack check) >"$T/check.out" 2>&1
rc=$?
set -e
cat "$T/check.out" >&2
[ "$rc" -eq 1 ] || fail "check on the unedited config exited $rc, want 1"
want=$(
  awk '/^domain *=/{print NR": stack.domain"}' "$CONF"
  awk '/^\[\[proxy.site\]\]/{n++} n&&/^host *=/{print NR": proxy.site."n-1".host"}
       n&&/^cert *=/{print NR": proxy.site."n-1".cert"} n&&/^key *=/{print NR": proxy.site."n-1".key"}' "$CONF"
)
[ "$(wc -l <<<"$want")" -eq 7 ] || fail "expected 7 lines to edit in $CONF, found: $want"
while read -r line; do
  grep -qF "$CONF:$line:" "$T/check.out" || fail "check does not point at $CONF:$line"
done <<<"$want"
others=$(grep -E "^ +$CONF:[0-9]+: " "$T/check.out" | grep -vF -f <(sed "s|^|$CONF:|; s|$|:|" <<<"$want") || true)
if [ -n "$others" ]; then
  # Until the preset branches are merged, every preset is unknown; anything else fails.
  if grep -vq 'unknown preset' <<<"$others"; then
    fail "check reports problems the operator cannot fix by editing domain/certs: $others"
  fi
  log "note: presets not merged yet, check also says: $(grep -o 'unknown preset "[a-z]*"' <<<"$others" | tr '\n' ' ')"
fi
pass "check: exit 1, domain + 2 sites x (host, cert, key) each at its line"

# The operator's one edit: the domain, and each site's host and certificate paths.
# Afterwards `check` must pass (the upgrade below must keep this edit).
log "editing $CONF like the operator, then check again"
mkdir -p "$T/certs"
for h in lobe auth; do
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$h.pkgtest.example.org" \
    -keyout "$T/certs/$h.key" -out "$T/certs/$h.crt" >/dev/null 2>&1
done
$SUDO sed -i -e 's/your-domain\.invalid/pkgtest.example.org/g' \
  -e "s|/etc/letsencrypt/live/\([a-z]*\)\.pkgtest\.example\.org/fullchain\.pem|$T/certs/\1.crt|" \
  -e "s|/etc/letsencrypt/live/\([a-z]*\)\.pkgtest\.example\.org/privkey\.pem|$T/certs/\1.key|" "$CONF"
[ "$(diff <(dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./etc/prometheus-stack/stack.toml) "$CONF" | grep -c '^>')" -eq 7 ] ||
  fail "the operator's edit should touch exactly the 7 lines check named"
set +e
(cd / && /usr/bin/prometheus-stack check) >"$T/check2.out" 2>&1
rc=$?
set -e
cat "$T/check2.out" >&2
if [ "$rc" -ne 0 ]; then
  others=$(grep -E "^ +$CONF:[0-9]+: " "$T/check2.out" || true)
  if [ -z "$others" ] || grep -vq 'unknown preset' <<<"$others"; then
    fail "check still fails after the domain and certificates were filled in"
  fi
  log "note: presets not merged yet; nothing but unknown presets left"
fi
pass "check after editing only those 7 lines: ok"

# ---------------------------------------------------------------- bundle import
# README's air-gapped step: `prometheus-stack bundle import FILE` with the installed
# config. The bundle is made by the installed binary from a tiny local image
# (a static busybox), the image removed, then imported again.
IMAGE=localhost/prometheus-stack-pkgtest:1
bundle_list=$(cd / && /usr/bin/prometheus-stack bundle list 2>&1 || true)
if grep -q 'not built yet' <<<"$bundle_list"; then
  log "note: bundle commands not merged yet: bundle import step skipped"
else
  log "bundle create, remove the image, bundle import"
  command -v podman >/dev/null || fail "podman is missing: run tests/setup.sh"
  [ -x /bin/busybox ] || fail "/bin/busybox is missing (busybox-static): run tests/setup.sh"
  mkdir -p "$T/rootfs/bin"
  cp /bin/busybox "$T/rootfs/bin/"
  ln -s busybox "$T/rootfs/bin/sh"
  $SUDO podman rmi -f "$IMAGE" >/dev/null 2>&1 || true
  tar -C "$T/rootfs" -c . | $SUDO podman import -q - "$IMAGE" >/dev/null
  cat >"$T/bundle.toml" <<EOF
[stack]
name = "pkgtest"
data_dir = "$T/bundle-data"

[services.box]
runtime = "podman"
image = "$IMAGE"
command = ["sh", "-c", "sleep 1000"]
EOF
  $SUDO /usr/bin/prometheus-stack bundle create "$T/bundle.tar" --config "$T/bundle.toml" >"$T/bundle.log" 2>&1 ||
    { cat "$T/bundle.log" >&2; fail "bundle create failed"; }
  $SUDO podman rmi -f "$IMAGE" >/dev/null
  (cd / && $SUDO /usr/bin/prometheus-stack bundle import "$T/bundle.tar") >"$T/import.log" 2>&1 ||
    { cat "$T/import.log" >&2; fail "bundle import failed"; }
  $SUDO podman image exists "$IMAGE" || { cat "$T/import.log" >&2; fail "bundle import did not load $IMAGE"; }
  $SUDO podman rmi -f "$IMAGE" >/dev/null
  pass "bundle create -> podman rmi -> prometheus-stack bundle import: $IMAGE loaded again"
fi

# ---------------------------------------------------------------- start / stop
# ExecStart's command line, run as systemd would: clean env, cwd /, stdin
# /dev/null, NOTIFY_SOCKET, WATCHDOG_USEC/_PID, RUNTIME_/STATE_DIRECTORY.
exec_start=$(sed -n 's/^ExecStart=//p' "$UNIT")
[ -n "$exec_start" ] || fail "no ExecStart= in $UNIT"
mkdir -p "$T/run" "$T/www"
echo "hello from the package test" >"$T/www/index.html"
cat >"$T/stack.toml" <<EOF
[stack]
name = "pkgtest"
data_dir = "$STATE_DIR"

[control]
socket = "$T/run/control.sock"

[services.web]
command = ["python3", "-m", "http.server", "$PORT", "--bind", "127.0.0.1"]
workdir = "$T/www"
user = "prometheus-stack"
port = $PORT
health = { http = "http://127.0.0.1:$PORT/", interval = "200ms" }
stop_timeout = "5s"
EOF
python3 tests/common_pkg/notify_listen.py "$T/notify.sock" "$T/notify.log" 120 &
listener_pid=$!
for _ in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done
[ -S "$T/notify.sock" ] || fail "the notify listener did not start"

log "starting: $exec_start"
s0=$(date +%s%N)
(cd / && exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=2000000 \
  RUNTIME_DIRECTORY="$T/run" STATE_DIRECTORY="$STATE_DIR" \
  PROMETHEUS_STACK_CONFIG="$T/stack.toml" \
  sh -c "WATCHDOG_PID=\$\$; export WATCHDOG_PID; exec $exec_start" \
  </dev/null >"$T/daemon.log" 2>&1) &
daemon_pid=$!
for _ in $(seq 300); do
  grep -q 'READY=1' "$T/notify.log" && break
  kill -0 "$daemon_pid" 2>/dev/null || fail "the daemon exited before READY=1"
  sleep 0.1
done
grep -q 'READY=1' "$T/notify.log" || fail "no READY=1 within 30 s"
pass "READY=1 after $((($(date +%s%N) - s0) / 1000000)) ms"
curl -fsS "http://127.0.0.1:$PORT/" | grep -q 'hello from the package test' || fail "the unit does not answer on $PORT"
web_user=$(ps -o user= -p "$(pgrep -f "http.server $PORT" | head -n1)" 2>/dev/null || true)
[ "$web_user" = "prometheus-stack" ] || fail "the unit runs as '$web_user', want prometheus-stack"
pass "unit web healthy on $PORT, running as prometheus-stack"
sleep 1.5 # WATCHDOG_USEC=2s: a ping is due every second
grep -q 'WATCHDOG=1' "$T/notify.log" || fail "no WATCHDOG=1 within 1.5 s of READY with WATCHDOG_USEC=2s"
kill -HUP "$daemon_pid" # ExecReload=
sleep 1
kill -0 "$daemon_pid" 2>/dev/null || fail "the daemon died on SIGHUP (ExecReload)"
pass "WATCHDOG=1 pings, SIGHUP reload keeps it running"

kill -TERM "$daemon_pid" # KillMode=mixed: SIGTERM to the main process only
s0=$(date +%s%N)
set +e
for _ in $(seq 300); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$daemon_pid" 2>/dev/null && fail "the daemon is still running 30 s after SIGTERM"
wait "$daemon_pid"
rc=$?
set -e
daemon_pid=""
[ "$rc" -eq 0 ] || fail "the daemon exited $rc after SIGTERM, want 0"
pgrep -f "http.server $PORT" >/dev/null && fail "the unit's process outlived the daemon"
pass "SIGTERM: clean exit 0 in $((($(date +%s%N) - s0) / 1000000)) ms, no process left"
kill "$listener_pid" 2>/dev/null || true
listener_pid=""
sed 's/^/[package] notify: /' "$T/notify.log" | head -n 8 >&2

# ---------------------------------------------------------------- upgrade
# With a daemon running on the installed config, the package's prerm takes a verified
# backup before the upgrade (issue 15): the config becomes a small stack this machine can
# run (the web unit, a generated secret, [backup].dir), an operator's edit all the same.
log "upgrade to a rebuilt higher version, with the daemon running"
{
  sed -n '/^\[stack\]/,/^\[services.web\]/p' "$T/stack.toml" | sed '$d'
  printf '[backup]\ndir = "%s"\n\n' "$T/backups"
  sed -n '/^\[services.web\]/,$p' "$T/stack.toml"
  echo 'env = { TOKEN = "${secret:pkgtest-token}" }'
} >"$T/upgrade.toml"
$SUDO cp "$T/upgrade.toml" "$CONF"
(cd / && exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  /usr/bin/prometheus-stack run </dev/null >"$T/daemon.log" 2>&1) &
daemon_pid=$!
for _ in $(seq 300); do
  (cd / && /usr/bin/prometheus-stack status --json 2>/dev/null) | grep -q '"state": "healthy"' && break
  kill -0 "$daemon_pid" 2>/dev/null || fail "the daemon on $CONF exited"
  sleep 0.1
done
token=$($SUDO cat "$STATE_DIR/secrets/pkgtest-token") || fail "no secret pkgtest-token in $STATE_DIR/secrets"
conf_sum=$(md5sum <"$CONF") # holds the operator's edit
echo "data written before the upgrade" | $SUDO tee "$STATE_DIR/pkgtest-data" >/dev/null
data_before=$($SUDO find "$STATE_DIR" -mindepth 1 -printf '%P %U %m\n' | sort)
cp "$DEB" "$T/v1.deb" # the rollback below reinstalls it; building v2 replaces target/debian
DEB2=$(DEB_FAST=1 packaging/build-deb.sh "${VERSION}+pkgtest1")
dpkg --compare-versions "$(dpkg-deb -f "$DEB2" Version)" gt "$VERSION" || fail "$DEB2 is not a higher version"
$SUDO dpkg -i "$DEB2" </dev/null >"$T/upgrade.log" 2>&1 || {
  cat "$T/upgrade.log" >&2
  fail "dpkg -i of the higher version failed (a conffile prompt?)"
}
[ "$(dpkg-query -W -f='${Version}' "$PKG")" = "${VERSION}+pkgtest1" ] || fail "the upgrade did not install ${VERSION}+pkgtest1"
[ "$(md5sum <"$CONF")" = "$conf_sum" ] || fail "the upgrade changed the edited $CONF"
ls /etc/prometheus-stack/*.dpkg-* >/dev/null 2>&1 && fail "the upgrade left $(ls /etc/prometheus-stack/*.dpkg-*)"
[ "$($SUDO find "$STATE_DIR" -mindepth 1 -printf '%P %U %m\n' | sort)" = "$data_before" ] ||
  fail "the upgrade changed $STATE_DIR"
verify=$($SUDO dpkg --verify "$PKG" || true)
[ "$verify" = "??5?????? c $CONF" ] || fail "dpkg --verify after upgrade: '$verify' (want only the edited conffile)"
pass "upgrade ${VERSION} -> ${VERSION}+pkgtest1: config edit kept without a prompt, data untouched, dpkg --verify clean"
backup_file=$(ls "$T"/backups/prometheus-stack-*.tar.zst 2>/dev/null | head -n 1)
[ -n "$backup_file" ] || { cat "$T/upgrade.log" >&2; fail "no backup in $T/backups after the upgrade"; }
grep -qF "$backup_file" "$T/upgrade.log" || { cat "$T/upgrade.log" >&2; fail "the upgrade did not print where its backup is"; }
[ "$(stat -c '%a %U' "$backup_file")" = "600 root" ] || fail "$backup_file is not 0600 root"
(cd / && /usr/bin/prometheus-stack backup verify "$backup_file") >"$T/verify.out" 2>&1 ||
  { cat "$T/verify.out" >&2; fail "backup verify of the upgrade's backup failed"; }
kill -TERM "$daemon_pid"
wait "$daemon_pid" || true
daemon_pid=""
pass "upgrade took a verified backup first: $(basename "$backup_file") ($(stat -c %s "$backup_file") bytes)"

# ---------------------------------------------------------------- doctor
# The last step on the installed package (issue 16): `doctor` against a running daemon
# that serves the edited config's two site names through its proxy. What this machine
# cannot satisfy is arranged or allowed: DNS of pkgtest.example.org (an /etc/hosts line,
# removed again), certificates valid for more than 21 days (the test's own are made for
# 2 days: a warning), time sync (no chrony or timesyncd in CI: "unknown"). Warnings and
# unknowns do not fail doctor; anything else found here fails the test.
log "doctor on the installed package, against a running daemon"
printf '127.0.0.1 lobe.pkgtest.example.org auth.pkgtest.example.org %s\n' "$HOSTS_MARK" >>/etc/hosts
hosts_added=1
HTTPS_PORT=25443
{
  cat <<EOF
[stack]
name = "pkgtest"
domain = "pkgtest.example.org"
data_dir = "$STATE_DIR"

[control]
socket = "$T/run/control.sock"

[proxy]
https = "127.0.0.1:$HTTPS_PORT"
tls = "files"
EOF
  for h in lobe auth; do
    printf '\n[[proxy.site]]\nhost = "%s.pkgtest.example.org"\ncert = "%s"\nkey = "%s"\nroutes = [{ path = "/", to = "127.0.0.1:%s" }]\n' \
      "$h" "$T/certs/$h.crt" "$T/certs/$h.key" "$PORT"
  done
  echo
  sed -n '/^\[services.web\]/,$p' "$T/stack.toml"
} >"$T/doctor.toml"
(cd / && exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  /usr/bin/prometheus-stack --config "$T/doctor.toml" run </dev/null >"$T/daemon.log" 2>&1) &
daemon_pid=$!
for _ in $(seq 300); do
  (cd / && /usr/bin/prometheus-stack --config "$T/doctor.toml" status --json 2>/dev/null) | grep -q '"state": "healthy"' && break
  kill -0 "$daemon_pid" 2>/dev/null || fail "the daemon for the doctor step exited"
  sleep 0.1
done
set +e
(cd / && /usr/bin/prometheus-stack --config "$T/doctor.toml" doctor) >"$T/doctor.out" 2>&1
rc=$?
(cd / && /usr/bin/prometheus-stack --config "$T/doctor.toml" doctor --json) >"$T/doctor.json" 2>"$T/doctor.err"
set -e
sed 's/^/[package] doctor: /' "$T/doctor.out" >&2
[ "$rc" -eq 0 ] || fail "doctor on the installed package exited $rc, want 0 (healthy)"
python3 - "$T/doctor.json" <<'PY' || fail "doctor found more than this machine's known gaps (see above)"
import json, sys
v = json.load(open(sys.argv[1]))
want = {"daemon", "units", "dns", "certs", "images", "clock", "disk", "ports", "gpu"}
missing = want - set(v["checks"])
assert not missing, f"checks that did not run: {missing}"
def allowed(f):
    if f["check"] == "clock":
        return f["severity"] != "error"
    if f["check"] == "certs":
        return f["severity"] == "warning" and "expires in 1 day " in f["message"]
    return False
other = [f for f in v["findings"] if not allowed(f)]
assert v["healthy"] and not other, f"unexpected findings: {other}"
PY
kill -TERM "$daemon_pid"
wait "$daemon_pid" || true
daemon_pid=""
set +e
(cd / && /usr/bin/prometheus-stack --config "$T/doctor.toml" doctor) >"$T/doctor2.out" 2>&1
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "doctor without a daemon exited $rc, want 1"
sed -n 2p "$T/doctor2.out" | grep -qF "error: daemon: the daemon is not running" ||
  fail "doctor without a daemon does not say so first: $(cat "$T/doctor2.out")"
unhost
hosts_added=""
pass "doctor: exit 0 against the running daemon ($(head -n 1 "$T/doctor.out" | cut -c1-50)…), exit 1 naming the stopped daemon first"

# ---------------------------------------------------------------- remove / purge
$SUDO dpkg --remove "$PKG" </dev/null >"$T/remove.log" 2>&1 || {
  cat "$T/remove.log" >&2
  fail "dpkg --remove failed"
}
[ -f "$CONF" ] || fail "remove deleted $CONF"
[ -f "$STATE_DIR/pkgtest-data" ] || fail "remove deleted data in $STATE_DIR"
[ ! -e /usr/bin/prometheus-stack ] || fail "remove left /usr/bin/prometheus-stack"
pass "remove: binary gone, config and data kept"

$SUDO dpkg --purge "$PKG" </dev/null >"$T/purge.log" 2>&1 || {
  cat "$T/purge.log" >&2
  fail "dpkg --purge failed"
}
cat "$T/purge.log" >&2
[ ! -e /etc/prometheus-stack ] || fail "purge left /etc/prometheus-stack"
[ ! -e /var/log/prometheus-stack ] || fail "purge left /var/log/prometheus-stack"
[ -f "$STATE_DIR/pkgtest-data" ] || fail "purge deleted the data in $STATE_DIR"
grep -q "data kept in $STATE_DIR" "$T/purge.log" || fail "purge did not say where the data is"
[ ! -L /etc/systemd/system/multi-user.target.wants/prometheus-stack.service ] || fail "purge left the unit enabled"
pass "purge: config and logs removed, data kept and its location printed"

# ---------------------------------------------------------------- rollback
# README "Upgrade and rollback": the old version again, then restore of the upgrade's backup.
log "rollback: reinstall ${VERSION}, restore the backup taken before the upgrade"
$SUDO dpkg -i "$T/v1.deb" </dev/null >"$T/reinstall.log" 2>&1 || { cat "$T/reinstall.log" >&2; fail "reinstall of $VERSION failed"; }
(cd / && /usr/bin/prometheus-stack restore "$backup_file" --data-dir "$T/restored") >"$T/restore.out" 2>&1 ||
  { cat "$T/restore.out" >&2; fail "restore of the upgrade's backup failed"; }
[ "$($SUDO cat "$T/restored/secrets/pkgtest-token")" = "$token" ] || fail "restore did not bring back the secret pkgtest-token"
# Into another data dir, the config goes beside the data, not over /etc's.
cmp -s "$T/upgrade.toml" "$T/restored/stack.toml" || fail "restore did not bring the config back as $T/restored/stack.toml"
$SUDO dpkg --purge "$PKG" </dev/null >/dev/null 2>&1 || fail "dpkg --purge after the rollback failed"
[ ! -e /etc/prometheus-stack ] || fail "purge after the rollback left /etc/prometheus-stack: $(ls /etc/prometheus-stack)"
pass "rollback: ${VERSION} reinstalled, restore brought back the config and the secret"

log "all package steps passed in $(($(date +%s) - t0)) s"
