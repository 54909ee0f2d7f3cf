#!/usr/bin/env bash
# testssl.sh (Debian's `testssl`) against the proxy with a certificate from a test CA;
# fails on any HIGH or CRITICAL finding. Prints one line with the counts per severity.
#   tests/security/testssl.sh          env: SEC_BASE=23000
set -euo pipefail
. "$(dirname "$0")/daemon.sh"
command -v testssl >/dev/null || { echo "missing testssl: run tests/setup.sh" >&2; exit 1; }
sec_start "${SEC_BASE:-23000}"
# --ip: connect to loopback while sending the site's name as SNI; the CA is ours.
testssl --quiet --color 0 --warnings off --ip 127.0.0.1 --add-ca "$SEC_WORK/ca.crt" \
  --jsonfile "$SEC_WORK/testssl.json" "https://$SEC_HOST:$SEC_HTTPS/" >"$SEC_WORK/testssl.txt" 2>&1 || true
[ -s "$SEC_WORK/testssl.json" ] || { cat "$SEC_WORK/testssl.txt" >&2; echo "testssl wrote no findings" >&2; exit 1; }
python3 - "$SEC_WORK/testssl.json" <<'PY'
import collections, json, sys
findings = json.load(open(sys.argv[1]))
count = collections.Counter(f["severity"] for f in findings)
bad = [f for f in findings if f["severity"] in ("HIGH", "CRITICAL")]
for f in findings:
    if f["severity"] in ("LOW", "MEDIUM", "HIGH", "CRITICAL"):
        print(f"  {f['severity']} {f['id']}: {f['finding']}")
line = ", ".join(f"{k} {count.get(k, 0)}" for k in ("CRITICAL", "HIGH", "MEDIUM", "LOW"))
print(f"testssl: {line} ({len(findings)} checks)")
sys.exit(1 if bad else 0)
PY
