#!/usr/bin/env bash
# DASH's main job on one machine: installs what is needed, builds, and starts a
# local cluster on loopback — a placement control plane, three shard nodes
# (4 shards, 3 replicas each, majority commit) and a router — then loads the
# sample CLIMATE-FEVER claims with their cited evidence through the router and
# answers a query with ranked claims and the evidence behind them.
# Secure as in production: every port speaks TLS with certificates of a dev CA made here
# (deploy/tls/make-certs.sh, in deploy/local/run/tls), and calls need a bearer token. An admin
# token is minted and written with the CA's certificate to dashctl's config directory
# ($DASH_CONFIG_DIR, default ~/.config/dash), where dashctl finds them without flags.
# Everything keeps running; stop it with deploy/local/down.sh.
# Each process also serves HTTPS (health, readiness, Prometheus metrics; the JSON API on the
# router and the nodes) on its gRPC port + 80: router 7180, nodes 7181-7183, control plane 7080.
#   env: DASH_PORT (router, default 7100; nodes use the next three ports),
#        DASH_CONTROLPLANE_PORT (default 7000),
#        DASH_RESTORE_FLAGS (set by deploy/local/restore.sh: the control plane and the nodes
#        start restored from a backup, and no sample is loaded)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
run=$root/deploy/local/run
port=${DASH_PORT:-7100}
cp_port=${DASH_CONTROLPLANE_PORT:-7000}
read -r -a restore <<<"${DASH_RESTORE_FLAGS:-}"

scripts/bootstrap.sh
scripts/build.sh dash-controlplane dash-node dash-router dashctl
ctl="$root/build/dashctl/dashctl --addr=127.0.0.1:$port --controlplane=127.0.0.1:$cp_port"
mkdir -p "$run"

tls=$run/tls
deploy/tls/make-certs.sh "$tls" controlplane router node
secure() { # secure KIND: sets SECURE to the flags of a server of that kind
  SECURE=("--auth_key_file=$tls/auth-keys.json" "--tls_ca=$tls/ca.pem" "--tls_cert=$tls/$1.pem"
    "--tls_key=$tls/$1.key")
}
config=${DASH_CONFIG_DIR:-${XDG_CONFIG_HOME:-$HOME/.config}/dash}
mkdir -p "$config"
(umask 077 && "$root/build/dashctl/dashctl" token mint --key-file="$tls/auth-keys.json" \
  --tenant='*' --role=read --role=write --role=admin --ttl=720h --subject=local-admin \
  >"$config/token")
cp "$tls/ca.pem" "$config/ca.pem"
echo "== TLS certificates in $tls; an admin token (30 days) and the CA in $config"

running() { [[ -f $run/$1.pid ]] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

# start NAME BINARY ARGS...: runs BINARY in the background unless NAME already runs, and waits
# for its port file.
start() {
  local name=$1 bin=$2
  shift 2
  if running "$name"; then
    echo "== $name already running (pid $(cat "$run/$name.pid")); reusing it"
    return
  fi
  mkdir -p "$run/$name"
  rm -f "$run/$name/port"
  nohup "$root/build/$bin" --port_file="$run/$name/port" "$@" >>"$run/$name.log" 2>&1 &
  echo $! >"$run/$name.pid"
  for _ in $(seq 300); do
    [[ -s $run/$name/port ]] && break
    running "$name" || { echo "$name exited:"; tail -20 "$run/$name.log"; exit 1; }
    sleep 0.1
  done
  echo "== started $name (pid $(cat "$run/$name.pid"), log $run/$name.log)"
}

secure controlplane
start controlplane controlplane/dash-controlplane --data_dir="$run/controlplane/data" \
  --listen="127.0.0.1:$cp_port" --http_listen="127.0.0.1:$((cp_port + 80))" --shard_count=4 \
  --replication_factor=3 "${SECURE[@]}" ${restore[@]+"${restore[@]}"}
secure node
for i in 1 2 3; do
  start "n$i" node/dash-node --data_dir="$run/n$i/data" --listen="127.0.0.1:$((port + i))" \
    --http_listen="127.0.0.1:$((port + 80 + i))" --node_id="n$i" \
    --controlplane="127.0.0.1:$cp_port" "${SECURE[@]}" ${restore[@]+"${restore[@]}"}
done
secure router
start router router/dash-router --listen="127.0.0.1:$port" --http_listen="127.0.0.1:$((port + 80))" \
  --controlplane="127.0.0.1:$cp_port" "${SECURE[@]}"

echo "== waiting for every shard to have a healthy leader that takes writes"
for _ in $(seq 300); do
  if $ctl --timeout=1 --json placement show 2>/dev/null | python3 -c '
import json, sys
p = json.load(sys.stdin)
healthy = {n["node_id"] for n in p.get("nodes", []) if n.get("health") == "NODE_HEALTH_HEALTHY"}
shards = p.get("shards", [])
sys.exit(0 if p.get("created") and shards and all(
    s.get("leader_node_id") in healthy and s.get("leader_ready_epoch") == s.get("epoch")
    for s in shards) else 1)
' && $ctl --timeout=1 info >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done

if [[ ${#restore[@]} -gt 0 ]]; then
  echo "== restored (${restore[*]})"
  sleep 0.5  # One heartbeat, so that the table shows the restored LSNs.
  $ctl placement show
  echo "== every shard's replicas compared (dashctl verify)"
  $ctl verify
  echo "The restored cluster is running: router 127.0.0.1:$port, control plane 127.0.0.1:$cp_port."
  echo "Stop it with: deploy/local/down.sh"
  exit 0
fi

echo "== loading deploy/sample/climate-fever-sample.jsonl (40 claims, 200 evidence) through the router"
$ctl ingest deploy/sample/climate-fever-sample.jsonl --tenant=climate >"$run/ingest-tokens.jsonl"
echo "   commit tokens in $run/ingest-tokens.jsonl"

echo "== placement: each shard's epoch, leader and replicas (lsn = log position each reported)"
sleep 0.5  # One heartbeat, so that the table shows the loaded LSNs.
$ctl placement show
echo "== claim climate-fever-6 with its evidence and citations, read from a follower"
$ctl get --tenant=climate --read-preference=follower-preferred climate-fever-6
echo "== query: \"are polar bear populations declining\" (top 3, BM25, with cited evidence)"
$ctl query --tenant=climate -k 3 --evidence "are polar bear populations declining"
echo "== the same claim over HTTPS (the router's JSON API), and the router's readiness"
curl -sS --cacert "$config/ca.pem" -H "Authorization: Bearer $(cat "$config/token")" \
  "https://127.0.0.1:$((port + 80))/v1/tenants/climate/claims/climate-fever-6" | head -c 400
echo " ..."
curl -sS --cacert "$config/ca.pem" "https://127.0.0.1:$((port + 80))/readyz"
echo
echo "The cluster is running: router 127.0.0.1:$port, control plane 127.0.0.1:$cp_port."
echo "HTTPS: router 127.0.0.1:$((port + 80)) (JSON API, /metrics, /readyz), nodes" \
  "$((port + 81))-$((port + 83)), control plane $((cp_port + 80))."
echo "Try: build/dashctl/dashctl placement show    build/dashctl/dashctl nodes"
echo "     build/dashctl/dashctl token mint --key-file=$tls/auth-keys.json --tenant=climate \\"
echo "       --role=read --ttl=1h    (a read-only token for one tenant)"
echo "     build/dashctl/dashctl list --tenant=climate"
echo "Stop it with: deploy/local/down.sh"
