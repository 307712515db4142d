#!/usr/bin/env bash
# The sanitizer build (third build; CI runs it): every target compiled with clang under
# AddressSanitizer and UndefinedBehaviorSanitizer into build-sanitize/, the unit tests run there
# (any finding fails them), then each libFuzzer target of tests/fuzz runs from its seeds.
#   scripts/sanitize-test.sh [seconds per fuzzer, default 30]     env: DASH_JOBS (default 2)
# A long local campaign: scripts/sanitize-test.sh 600
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
if [[ ! -f build-sanitize/build.ninja ]]; then
  CC=clang CXX=clang++ cmake -S . -B build-sanitize -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DDASH_SANITIZE=address,undefined -DDASH_FUZZ=ON
fi
cmake --build build-sanitize -j "${DASH_JOBS:-2}"

# Debian's libraries (gRPC, protobuf, RocksDB) are not instrumented: container-overflow checks
# would misfire on vectors they fill, so those alone are off.
export ASAN_OPTIONS=detect_container_overflow=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Third-party leaks, each explained there.
export LSAN_OPTIONS=suppressions=$PWD/tests/sanitizers/lsan.supp:print_suppressions=0
echo "== unit tests under ASan+UBSan"
(cd build-sanitize && ctest --output-on-failure -j "${DASH_JOBS:-2}" --timeout 900 -LE process)

echo "== fuzzers, ${seconds}s each"
for fuzzer in log_record_fuzz snapshot_fuzz request_fuzz request_json_fuzz jwt_fuzz; do
  corpus=$(mktemp -d)
  seeds=tests/fuzz/seeds/${fuzzer%_fuzz}
  log=build-sanitize/$fuzzer.log
  if ! build-sanitize/tests/fuzz/$fuzzer -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=4096 -artifact_prefix=build-sanitize/"$fuzzer"- "$corpus" "$seeds" >"$log" 2>&1; then
    tail -40 "$log"
    echo "$fuzzer: FOUND A CRASH (input saved as build-sanitize/$fuzzer-*)"
    exit 1
  fi
  echo "$fuzzer: $(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1), corpus $(ls "$corpus" | wc -l) inputs"
  rm -rf "$corpus"
done
