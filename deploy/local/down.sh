#!/usr/bin/env bash
# Stops the node started by deploy/local/up.sh (SIGTERM, then waits). Data stays
# in deploy/local/run/data; pass --wipe to delete it too.
set -euo pipefail
run="$(cd "$(dirname "$0")" && pwd)/run"
if [[ -f $run/node.pid ]]; then
  pid=$(cat "$run/node.pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { echo "dash-node $pid did not stop; sending SIGKILL"; kill -KILL "$pid"; }
    echo "stopped dash-node $pid"
  fi
  rm -f "$run/node.pid"
else
  echo "no local node running"
fi
[[ " $* " == *" --wipe "* ]] && rm -rf "$run" && echo "wiped $run"
exit 0
