#!/usr/bin/env bash
# Asserts that each binary given links neither RocksDB nor FAISS: the router and dashctl reach
# storage only through nodes, so they must build (and stay small) without the storage engines.
# Checks the dynamic dependencies and the symbols defined in the binary (FAISS is Debian's static
# libfaiss.a, so it would show as symbols, not as a NEEDED entry).
#   tests/links_no_storage.sh BINARY...
set -euo pipefail
status=0
for bin in "$@"; do
  if readelf -d "$bin" | grep -E 'NEEDED.*(rocksdb|faiss)'; then
    echo "$bin: depends on a storage library (above)"
    status=1
  fi
  found=$(nm -C --defined-only "$bin" | grep -cE ' (rocksdb|faiss)::' || true)
  if [[ $found -gt 0 ]]; then
    echo "$bin: defines $found rocksdb:: or faiss:: symbols"
    status=1
  fi
done
exit $status
