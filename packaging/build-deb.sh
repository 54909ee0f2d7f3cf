#!/usr/bin/env bash
# Builds target/debian/prometheus-stack_VERSION_ARCH.deb with one command:
#
#     packaging/build-deb.sh [VERSION]
#
# VERSION defaults to Cargo.toml's version. Environment:
#   DEB_PROFILE  cargo profile for the binary (default "release")
#   DEB_FAST=1   lighter compression (CI: a few seconds less; same contents)
# Needs cargo-deb (`cargo install cargo-deb --locked`). Works offline once the
# crates are in cargo's cache.
set -euo pipefail
cd "$(dirname "$0")/.."

crate_version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
VERSION="${1:-$crate_version}"
PROFILE="${DEB_PROFILE:-release}"
if ! [[ "$VERSION" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]]; then
  echo "build-deb: '$VERSION' is not a Debian version (e.g. 0.1.0 or 0.1.0-2)" >&2
  exit 2
fi
if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "build-deb: cargo-deb is missing: cargo install cargo-deb --locked" >&2
  exit 2
fi

cargo build --quiet --profile "$PROFILE" --bin prometheus-stack
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/$PROFILE/prometheus-stack"

# Generated assets: Cargo.toml's [package.metadata.deb] names these paths.
assets=target/deb-assets
rm -rf "$assets"
mkdir -p "$assets"
"$bin" man --out-dir "$assets/man" # prometheus-stack.1 and one page per subcommand
gzip -9n "$assets"/man/*.1
"$bin" completions bash >"$assets/prometheus-stack.bash"
"$bin" completions zsh >"$assets/_prometheus-stack"
"$bin" completions fish >"$assets/prometheus-stack.fish"

# The changelog's top entry must name the version being built.
top=$(sed -n '1s/^prometheus-stack (\([^)]*\)).*/\1/p' packaging/debian/changelog)
if [ "$top" != "$VERSION" ]; then
  when=$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")
  {
    echo "prometheus-stack ($VERSION) unstable; urgency=medium"
    echo
    echo "  * Build of $(git describe --always --dirty 2>/dev/null || echo 'an unversioned tree')."
    echo
    echo " -- prometheus-stack maintainers <maintainers@prometheusags.ai>  $when"
    echo
    cat packaging/debian/changelog
  } >"$assets/changelog"
else
  cp packaging/debian/changelog "$assets/changelog"
fi
gzip -9n "$assets/changelog"

mkdir -p target/debian
# Compressed lightly here: dpkg-deb below writes the final archive.
cargo deb --no-build --quiet --fast --profile "$PROFILE" --deb-version "$VERSION" \
  --output target/debian/ >/dev/null
arch=$(dpkg --print-architecture)
deb="target/debian/prometheus-stack_${VERSION}_${arch}.deb"
test -f "$deb" || { echo "build-deb: cargo-deb did not write $deb" >&2; exit 1; }

# cargo-deb writes no md5sums; add them so `dpkg --verify prometheus-stack` can
# tell an operator whether the installed files are the shipped ones.
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
dpkg-deb -R "$deb" "$tree"
(cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
  xargs -0 md5sum >DEBIAN/md5sums)
chmod 644 "$tree/DEBIAN/md5sums"
level=9
[ "${DEB_FAST:-0}" = 1 ] && level=1
dpkg-deb --root-owner-group -Zxz "-z$level" -b "$tree" "$deb" >/dev/null
echo "$deb"
