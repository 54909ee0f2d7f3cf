#!/usr/bin/env bash
# HTTP/2 rapid reset with a Python `h2` client (rapid_reset.py).
#   tests/security/rapid_reset.sh      env: SEC_BASE=23200
set -euo pipefail
. "$(dirname "$0")/daemon.sh"
PY=${PSTEST_DEPS:-/opt/prometheus-stack-test}/venv/bin/python
"$PY" -c 'import h2' 2>/dev/null || { echo "missing python h2 in $PY: run tests/setup.sh" >&2; exit 1; }
sec_start "${SEC_BASE:-23200}"
"$PY" "$(dirname "$0")/rapid_reset.py" "$SEC_HOST" "$SEC_HTTPS" "$SEC_WORK/ca.crt" "$SEC_WORK/upstream.log"
