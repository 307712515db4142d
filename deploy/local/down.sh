#!/usr/bin/env bash
# Stops the local cluster started by deploy/local/up.sh: the router, the control
# plane (first, so that stopping nodes one by one does not fail their shards
# over), then the nodes; SIGTERM, then waits. Data stays in deploy/local/run;
# pass --wipe to delete it too.
set -euo pipefail
run="$(cd "$(dirname "$0")" && pwd)/run"
stopped=0
# Gone, or a zombie waiting for its reaper.
alive() { [[ -n $(ps -o stat= -p "$1" 2>/dev/null | grep -v '^Z') ]]; }
for name in router controlplane n1 n2 n3 node; do
  [[ -f $run/$name.pid ]] || continue
  pid=$(cat "$run/$name.pid")
  if alive "$pid"; then
    kill -TERM "$pid"
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && { echo "$name ($pid) did not stop; sending SIGKILL"; kill -KILL "$pid"; }
    echo "stopped $name ($pid)"
    stopped=1
  fi
  rm -f "$run/$name.pid"
done
[[ $stopped == 1 ]] || echo "no local cluster running"
[[ " $* " == *" --wipe "* ]] && rm -rf "$run" && echo "wiped $run"
exit 0
