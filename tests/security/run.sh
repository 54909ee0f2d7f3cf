#!/usr/bin/env bash
# Every security script in turn (tests/run.sh calls this); each prints one line.
#   tests/security/run.sh
set -euo pipefail
cd "$(dirname "$0")"
./rapid_reset.sh
./slowloris.sh
./testssl.sh
