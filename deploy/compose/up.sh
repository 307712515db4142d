#!/usr/bin/env bash
# The compose cluster (deploy/compose/docker-compose.yml) in one command: installs what it needs
# (a container engine: Docker when one runs, else Debian's Podman serving the Docker API, and
# docker-compose), builds the images -- the binaries compiled inside the image's build stage from
# these sources, on debian:bookworm-slim (made locally with debootstrap where no registry answers)
# -- starts the control plane, three nodes, the router and Prometheus, loads the sample
# CLIMATE-FEVER claims and answers a query through the router's published ports.
#   deploy/compose/up.sh [--prebuilt]   --prebuilt: use binaries built on this host (build/)
#                                       instead of compiling them in the image (~15 min on 2 cores)
# The CA's certificate and an admin token are copied to deploy/compose/run/config for the host's
# curl and dashctl. Stop with deploy/compose/down.sh (keeps the volumes) or down.sh --volumes.
set -euo pipefail
cd "$(dirname "$0")"
mode=source
[[ ${1:-} == --prebuilt ]] && mode=prebuilt
source ./engine.sh
dash_build_images "$mode"
echo "== starting the cluster (project $COMPOSE_PROJECT_NAME)"
dash_compose up -d --no-build
dash_wait_serving 120
config=$PWD/run/config
dash_fetch_admin "$config"
port=${DASH_ROUTER_PORT:-7100} http=${DASH_ROUTER_HTTP_PORT:-7180}
echo "== loading deploy/sample/climate-fever-sample.jsonl through the router"
dash_compose run --rm --no-deps -T ctl ingest /sample/climate-fever-sample.jsonl --tenant=climate \
  >/dev/null
echo "== placement (dashctl in the cluster's network: the ctl service)"
dash_compose run --rm --no-deps -T ctl placement show
echo "== query: \"are polar bear populations declining\" (top 3, with cited evidence)"
dash_compose run --rm --no-deps -T ctl query --tenant=climate -k 3 --evidence \
  "are polar bear populations declining"
echo "== the same through the router's published HTTPS port, from the host"
curl -sS --cacert "$config/ca.pem" -H "Authorization: Bearer $(cat "$config/token")" \
  -H 'Content-Type: application/json' -d '{"text": "are polar bear populations declining", "k": 1}' \
  "https://127.0.0.1:$http/v1/tenants/climate/query" | head -c 400
echo " ..."
dash_compose ps
cat <<MSG
The cluster is running: router gRPC 127.0.0.1:$port, HTTPS 127.0.0.1:$http; control plane
127.0.0.1:${DASH_CONTROLPLANE_PORT:-7000}; Prometheus http://127.0.0.1:${DASH_PROMETHEUS_PORT:-9090}.
The CA's certificate and an admin token: $config (ca.pem, token).
Try: cd deploy/compose && source engine.sh && dash_compose run --rm ctl nodes
     curl --cacert $config/ca.pem -H "Authorization: Bearer \$(cat $config/token)" \\
       https://127.0.0.1:$http/v1/tenants/climate/claims/climate-fever-6
Stop it with: deploy/compose/down.sh [--volumes]
MSG
