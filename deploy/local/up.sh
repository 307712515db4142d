#!/usr/bin/env bash
# DASH's main job on one machine: installs what is needed, builds, starts a
# local dash-node (4 shards, data under deploy/local/run/), loads the sample
# CLIMATE-FEVER claims with their cited evidence, and answers a query with
# ranked claims and the evidence behind them.
# The node keeps running; stop it with deploy/local/down.sh.
#   env: DASH_PORT (default 7100)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
run=$root/deploy/local/run
port=${DASH_PORT:-7100}

scripts/bootstrap.sh
scripts/build.sh dash-node dashctl
ctl="$root/build/dashctl/dashctl --addr=127.0.0.1:$port"

if [[ -f $run/node.pid ]] && kill -0 "$(cat "$run/node.pid")" 2>/dev/null; then
  echo "== a local node is already running (pid $(cat "$run/node.pid")); reusing it"
else
  mkdir -p "$run"
  rm -f "$run/port"
  echo "== starting dash-node on 127.0.0.1:$port (data in $run/data, log in $run/node.log)"
  nohup "$root/build/node/dash-node" --data_dir="$run/data" --listen="127.0.0.1:$port" \
    --port_file="$run/port" --shard_count=4 --node_id=local-1 >>"$run/node.log" 2>&1 &
  echo $! >"$run/node.pid"
  for _ in $(seq 300); do
    [[ -s $run/port ]] && $ctl --timeout=1 info >/dev/null 2>&1 && break
    kill -0 "$(cat "$run/node.pid")" 2>/dev/null || { echo "dash-node exited:"; tail -20 "$run/node.log"; exit 1; }
    sleep 0.1
  done
fi

echo "== loading deploy/sample/climate-fever-sample.jsonl (40 claims, 200 evidence)"
$ctl ingest deploy/sample/climate-fever-sample.jsonl --tenant=climate >"$run/ingest-tokens.jsonl"
echo "   commit tokens in $run/ingest-tokens.jsonl"

echo "== node: shards and log positions"
$ctl info
echo "== claim climate-fever-6 with its evidence and citations"
$ctl get --tenant=climate climate-fever-6
echo "== query: \"are polar bear populations declining\" (top 3, BM25, with cited evidence)"
$ctl query --tenant=climate -k 3 --evidence "are polar bear populations declining"
echo
echo "dash-node is running on 127.0.0.1:$port. Try: build/dashctl/dashctl --addr=127.0.0.1:$port list --tenant=climate"
echo "Stop it with: deploy/local/down.sh"
