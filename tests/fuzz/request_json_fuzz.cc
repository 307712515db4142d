// libFuzzer: the JSON a user gives dashctl with --request (and ingest's JSON
// lines go the same way): parsed into a QueryRequest by dashctl's FromJson,
// then validated as the server would. Refusals are fine; crashes are not.
#include <cstddef>
#include <cstdint>
#include <string>

#include "dash/v1/data.pb.h"
#include "dashctl/common.h"
#include "query/batch_validator.h"
#include "query/query_runner.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string json(reinterpret_cast<const char*>(data), size);
  dash::v1::QueryRequest query;
  if (dash::ctl::FromJson(json, &query).ok()) (void)dash::query::ValidateQuery(query);
  dash::v1::WriteRequest batch;
  if (dash::ctl::FromJson(json, &batch).ok()) (void)dash::query::ValidateBatch(batch);
  return 0;
}
