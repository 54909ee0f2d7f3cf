#!/usr/bin/env bash
# The real tier (issue 12): builds the real Logto and LobeChat (cached under PSTEST_DEPS),
# then runs the whole stack under the daemon and signs in with a real browser.
# Screenshots and logs: PSTEST_ARTIFACTS (default target/real-artifacts).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PSTEST_DEPS="${PSTEST_DEPS:-/opt/prometheus-stack-test}"
t0=$SECONDS
tests/real/build.sh
cargo build --quiet
# The admin-console account on the real Logto schema (real `logto db seed`, Logto's own
# argon2 verifier): security issue 14, point 2a.
cargo test --quiet --test it logto::admin_real -- --test-threads=1
# Debian's python: python3-selenium is a Debian package.
/usr/bin/python3 tests/real/browser_test.py --artifacts "${PSTEST_ARTIFACTS:-target/real-artifacts}"
echo "[real] tier done in $((SECONDS - t0)) s"
