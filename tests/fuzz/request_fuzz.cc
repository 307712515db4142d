// libFuzzer: validation of what clients send (query/batch_validator.h,
// query/query_runner.h) on arbitrary wire bytes: a Write batch (also the shard
// it routes to) or a Query, picked by the first byte. Nothing may crash,
// overflow or hang; whatever passes must route to one shard.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "dash/v1/data.pb.h"
#include "query/batch_validator.h"
#include "query/query_runner.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    dash::v1::WriteRequest batch;
    if (!batch.ParseFromString(bytes)) return 0;
    if (!dash::query::ValidateBatch(batch).ok()) return 0;
    absl::StatusOr<uint32_t> shard = dash::query::ShardOfBatch(batch, 4);
    if (shard.ok() && *shard >= 4) std::abort();
  } else {
    dash::v1::QueryRequest query;
    if (!query.ParseFromString(bytes)) return 0;
    (void)dash::query::ValidateQuery(query);
  }
  return 0;
}
