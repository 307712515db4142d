#!/usr/bin/env bash
# Stops the compose cluster. --volumes also deletes its data, certificates and tokens.
#   deploy/compose/down.sh [--volumes]
set -euo pipefail
cd "$(dirname "$0")"
source ./engine.sh
if [[ ${1:-} == --volumes ]]; then
  dash_compose down --volumes --remove-orphans
  rm -rf run/config
else
  dash_compose down --remove-orphans
fi
