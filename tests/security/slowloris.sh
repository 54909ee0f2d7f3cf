#!/usr/bin/env bash
# Slowloris with Debian's slowhttptest: CONNS connections sending headers slowly from
# 127.0.0.1, while a normal client on another address (127.0.0.2) asks for a page every
# 0.5 s. Fails if a normal client goes unserved. The attacker's own address is held to
# `max_conns_per_ip` (printed: "at most N open at once").
#   tests/security/slowloris.sh      env: CONNS=4000 SECONDS_RUN=30 SEC_BASE=23100
set -euo pipefail
. "$(dirname "$0")/daemon.sh"
command -v slowhttptest >/dev/null || { echo "missing slowhttptest: run tests/setup.sh" >&2; exit 1; }
CONNS=${CONNS:-4000}
RUN=${SECONDS_RUN:-30}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
sec_start "${SEC_BASE:-23100}"
# slowhttptest speaks to an address; TLS without SNI gets the proxy's only site.
slowhttptest -H -c "$CONNS" -r 500 -i 10 -s 8192 -t GET -l "$RUN" -x 24 -p 3 \
  -u "https://127.0.0.1:$SEC_HTTPS/" >"$SEC_WORK/slow.txt" 2>&1 &
SLOW=$!
SEC_PIDS+=($SLOW)
sleep 8  # let the slow connections pile up
ok=0 total=0
while kill -0 "$SLOW" 2>/dev/null && [ "$total" -lt 40 ]; do
  total=$((total + 1))
  code=$(sec_curl --interface 127.0.0.2 -o /dev/null -w '%{http_code}' -m 5 "https://$SEC_HOST:$SEC_HTTPS/normal" || true)
  [ "$code" = 200 ] && ok=$((ok + 1))
  sleep 0.5
done
wait "$SLOW" 2>/dev/null || true
open=$(sed 's/\x1b\[[0-9;]*[a-zA-Z]//g' "$SEC_WORK/slow.txt" | grep -oE 'connected: *[0-9]+' |
  grep -oE '[0-9]+' | sort -n | tail -1 || echo '?')
echo "slowloris: $CONNS slow connections (at most ${open} open at once), normal clients $ok/$total served"
[ "$total" -gt 0 ] && [ "$ok" -eq "$total" ]
