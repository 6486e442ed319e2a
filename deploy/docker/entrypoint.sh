#!/bin/sh
# The image's entry (under tini, PID 1): `ringlimit <command> [flags]`, exec'd so the node
# process gets SIGTERM itself and drains (hands its keys over, writes its snapshot, leaves).
# --expose-gc lets serve collect when it falls idle holding a burst's garbage (src/node/ops/idle-gc.ts).
#
# `serve` binds and advertises --host. A container's loopback is unreachable from its peers,
# so without --host the node takes RINGLIMIT_HOST, else the container's own address (what its
# host name resolves to, as Docker and Kubernetes set it up). Kubernetes passes --host=$(POD_IP).
set -eu
cli="${RINGLIMIT_CLI:-/app/dist/cli.js}"
if [ "${1:-}" = serve ]; then
  case " $* " in
    *" --host "* | *" --host="*) ;;
    *) set -- "$@" --host "${RINGLIMIT_HOST:-$(node -e "require('node:dns').lookup(require('node:os').hostname(), { family: 4 }, (e, a) => process.stdout.write(e ? '127.0.0.1' : a))")}" ;;
  esac
fi
exec node --expose-gc "$cli" "$@"
