#!/usr/bin/env bash
# Rebuilds the local cluster (deploy/local/up.sh) from a backup repository, to a point in time
# when the repository holds a log archive: `dashctl restore` plans it (the newest backup that
# reaches the target, the archived records to replay) and verifies the backup, then the control
# plane and the three nodes start with the flags it prints, into new data directories.
#   deploy/local/restore.sh --from=DIR [--to-time=T | --to-token=S:E:L,... | --to-backup]
#                           [--backup=ID] [--force]
# A local cluster already there (running, or its data in deploy/local/run) is refused unless
# --force, which stops it and moves its data to deploy/local/run/replaced-<time>/ (never deletes
# it).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
run=$root/deploy/local/run
force=0
args=()
for a in "$@"; do
  case $a in
    --force) force=1 ;;
    --from=* | --to-time=* | --to-token=* | --to-backup | --backup=*) args+=("$a") ;;
    *) echo "restore.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done
[[ " ${args[*]-} " == *" --from="* ]] || { echo "restore.sh: --from=DIR is required" >&2; exit 2; }

scripts/bootstrap.sh
scripts/build.sh dash-controlplane dash-node dash-router dashctl
existing=()
for name in controlplane n1 n2 n3; do
  [[ -e $run/$name/data ]] && existing+=("$run/$name/data")
done
if [[ ${#existing[@]} -gt 0 ]]; then
  if [[ $force != 1 ]]; then
    echo "restore.sh: a local cluster is here (${existing[*]}): a restore builds a new one." >&2
    echo "Stop it and move its data aside yourself, or pass --force to do both." >&2
    exit 1
  fi
  deploy/local/down.sh
  aside=$run/replaced-$(date -u +%Y%m%dT%H%M%SZ)
  mkdir -p "$aside"
  for name in controlplane n1 n2 n3; do
    [[ -e $run/$name/data ]] && mkdir -p "$aside/$name" && mv "$run/$name/data" "$aside/$name/"
  done
  echo "== the old cluster is stopped; its data is in $aside"
fi

# The plan: refused here, before any process starts, when the backup is damaged or the archive
# does not reach the target.
plan=$(build/dashctl/dashctl --controlplane="127.0.0.1:${DASH_CONTROLPLANE_PORT:-7000}" \
  --timeout=3 --json restore "${args[@]}")
flags=$(python3 -c 'import json, sys; print(" ".join(json.load(sys.stdin)["flags"]))' <<<"$plan")
python3 -c '
import json, sys
p = json.load(sys.stdin)
print("== restoring backup %s to %s" % (p["backup"], p["restore_to"]))
for s in p["shards"]:
    print("   shard %d: backup lsn %d, restored to lsn %d (%d archived records replayed, last commit %s)"
          % (s["shard"], s["cut_lsn"], s["to_lsn"], s["replayed_records"], s["to_time"]))
' <<<"$plan"
DASH_RESTORE_FLAGS=$flags deploy/local/up.sh
