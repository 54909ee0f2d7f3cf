#!/usr/bin/env bash
# The whole test suite: installs its dependencies (idempotent), checks format and lints,
# then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh
export PSTEST_DEPS="${PSTEST_DEPS:-/opt/prometheus-stack-test}"
# Cheap checks first: a formatting slip or a lint fails in seconds, not after the suite.
cargo fmt --check
cargo clippy --quiet --all-targets -- -D warnings
cargo build --quiet
# Unit tests, doc tests and the one integration binary (tests/it/): the crate links once.
cargo test --quiet -- --test-threads="${PSTEST_THREADS:-2}"
# `export kubernetes` against the Kubernetes schemas of two minor versions (issue 19).
tests/export/validate.sh
# The attackers' tools against the proxy: testssl, slowloris, HTTP/2 rapid reset.
tests/security/run.sh
# The .deb: build, lintian, install, check, start/stop, upgrade, purge (issue 7).
tests/package.sh
# The real Logto and LobeChat under the daemon, a real browser signing in (issue 12).
# First run builds both (about 15 minutes on 2 cores), cached in PSTEST_DEPS/real.
tests/real/run.sh
