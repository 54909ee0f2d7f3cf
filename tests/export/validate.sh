#!/usr/bin/env bash
# `export kubernetes` of packaging/stack.toml, validated offline against the Kubernetes
# OpenAPI schemas (kubernetes-validate, installed by tests/setup.sh) of two minor
# versions, strict (unknown fields fail), for both --ingress modes and both --secrets modes.
# Gateway API's HTTPRoute is a CRD, absent from those schemas: it is checked for its
# required fields here instead. Usage: tests/export/validate.sh [BINARY]
set -euo pipefail
cd "$(dirname "$0")/../.."
DEPS="${PSTEST_DEPS:-/opt/prometheus-stack-test}"
VALIDATE="$DEPS/venv/bin/kubernetes-validate"
BIN="${1:-target/debug/prometheus-stack}"
VERSIONS="${K8S_VERSIONS:-1.31.0 1.34.0}"
[ -x "$VALIDATE" ] || { echo "validate.sh: $VALIDATE missing: run tests/setup.sh" >&2; exit 1; }
[ -x "$BIN" ] || cargo build --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# --secrets=inline needs a store: a throwaway data_dir with fixed values.
sed "s|^data_dir = .*|data_dir = \"$work/data\"|" packaging/stack.toml >"$work/stack.toml"
mkdir -p "$work/data/secrets"
for s in $("$BIN" -c "$work/stack.toml" show-config --json | jq -r '.secrets | keys[]'); do
  printf 'test-value-%s' "$s" >"$work/data/secrets/$s"
done
chmod 600 "$work/data/secrets/"*
count=0
for mode in "--ingress=ingress --secrets=external" "--ingress=gateway --secrets=inline --replicas lobechat=3"; do
  out="$work/tree-${mode//[^a-z0-9]/_}"
  # shellcheck disable=SC2086
  "$BIN" -c "$work/stack.toml" export kubernetes --out "$out" $mode >/dev/null
  core=()
  for f in "$out"/*.json; do
    if [ "$(jq -r .kind "$f")" = HTTPRoute ]; then
      jq -e '.apiVersion == "gateway.networking.k8s.io/v1" and (.spec.parentRefs | length) > 0
             and (.spec.hostnames | length) > 0
             and all(.spec.rules[]; (.backendRefs | length) > 0 and (.matches[0].path.type == "PathPrefix"))' \
        "$f" >/dev/null || { echo "validate.sh: $f: malformed HTTPRoute" >&2; exit 1; }
    else
      core+=("$f")
    fi
  done
  for v in $VERSIONS; do
    log="$work/log"
    if ! "$VALIDATE" --strict -k "$v" "${core[@]}" >"$log" 2>&1 || grep -q "Couldn't find schema" "$log"; then
      grep -v '^INFO' "$log" >&2
      echo "validate.sh: export kubernetes $mode does not validate against Kubernetes $v" >&2
      exit 1
    fi
    count=$((count + ${#core[@]}))
  done
  jq -e '.resources | length > 0' "$out/kustomization.yaml" >/dev/null
done
echo "validate.sh: $count manifests valid against Kubernetes $VERSIONS (strict), both ingress and secrets modes"
