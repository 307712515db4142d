#!/usr/bin/env bash
# Sets everything up on a fresh Debian 12 machine and runs all of DASH's tests:
# installs packages, builds with CMake, runs unit, multi-process, crash and
# Python-client tests through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/build.sh
cd build
ctest --output-on-failure -j "${DASH_JOBS:-2}" --timeout 900
