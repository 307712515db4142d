// libFuzzer: the shard log record decoder (node/storage/log_record.h) on
// arbitrary bytes, as a follower decodes what a leader streams and a replica
// what it reads back after a crash. With the first byte even the rest is the
// record as stored; odd, it is a record body this target seals with its right
// CRC-32, so that the fields behind the checksum are reached too. It must
// refuse cleanly or decode; what it decodes must encode and decode to the
// same record, and its payload must parse or be refused cleanly.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/hashing.h"
#include "node/storage/log_record.h"
#include "node/storage/records.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 1) {
    const uint32_t crc = dash::Crc32(bytes);
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>(crc >> shift));
  }
  absl::StatusOr<dash::storage::LogRecord> record = dash::storage::DecodeLogRecord(bytes);
  if (!record.ok()) return 0;
  absl::StatusOr<dash::storage::LogRecord> again =
      dash::storage::DecodeLogRecord(dash::storage::EncodeLogRecord(*record));
  if (!again.ok() || again->epoch != record->epoch || again->lsn != record->lsn ||
      again->payload != record->payload ||
      again->commit_time_micros != record->commit_time_micros) {
    std::abort();  // The codec does not round-trip what it accepted.
  }
  dash::storage::LogPayload payload;
  (void)payload.ParseFromString(record->payload);
  return 0;
}
