#!/usr/bin/env bash
# The Node client's test (CTest's node_client_test): installs its npm packages at the versions
# package-lock.json pins (from the npm registry, once), then runs node --test against the
# dash-node binary under DASH_BIN_ROOT.
set -euo pipefail
cd "$(dirname "$0")"
if [[ ! -d node_modules/@grpc/grpc-js || package-lock.json -nt node_modules ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
exec node --test
