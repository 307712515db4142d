#!/usr/bin/env bash
# Configures and builds DASH with CMake into build/ (ccache, 2 jobs by default).
#   scripts/build.sh [ninja targets...]      env: DASH_JOBS (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
if [[ ! -f build/build.ninja ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build build -j "${DASH_JOBS:-2}" ${1:+--target "$@"}
