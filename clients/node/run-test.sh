#!/usr/bin/env bash
# The Node client's test (CTest's node_client_test): installs its npm packages at the versions
# package-lock.json pins (from the npm registry, once), then runs node --test against the
# dash-node binary under DASH_BIN_ROOT.
# When the packages are not installed and the registry cannot be reached (no network, or a TLS
# proxy whose CA npm does not trust), the test is reported SKIPPED (exit 77), with npm's reason:
# it says nothing about DASH then.
set -euo pipefail
cd "$(dirname "$0")"
if [[ ! -d node_modules/@grpc/grpc-js || package-lock.json -nt node_modules ]]; then
  if ! log=$(npm ci --no-audit --no-fund --loglevel=error --fetch-retries=1 2>&1); then
    echo "node_client_test: SKIPPED: npm ci could not install the packages:"
    echo "$log" | head -5
    exit 77
  fi
fi
exec node --test
