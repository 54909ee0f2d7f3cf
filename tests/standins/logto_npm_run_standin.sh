#!/bin/sh
# Stand-in for the Logto image's ENTRYPOINT `npm run` in /etc/logto: the root
# package.json scripts `start` (cd packages/core && NODE_ENV=production node .) and
# `cli` (the CLI's bin), without npm.
set -e
cd /etc/logto
case "$1" in
  start) cd packages/core && exec node . ;;
  cli)
    shift
    [ "$1" = "db" ] && [ "$2" = "seed" ] && [ "$3" = "--" ] || { echo "npm run standin: expected 'cli db seed -- …', got: cli $*" >&2; exit 1; }
    shift 3
    exec node packages/cli/bin/logto.js db seed "$@" ;;
  *) echo "npm run standin: unknown script $1" >&2; exit 1 ;;
esac
