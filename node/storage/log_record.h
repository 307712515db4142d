// Codec of the shard log record (format in log_format.md).
//
// A record frames one committed batch: (epoch, lsn, commit time) plus the
// serialized LogPayload, protected by a CRC-32. The encoder always writes the
// current version; the decoder reads every version ever written.
// Thread-safe: pure functions.
#ifndef DASH_NODE_STORAGE_LOG_RECORD_H_
#define DASH_NODE_STORAGE_LOG_RECORD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dash::storage {

inline constexpr uint8_t kLogRecordVersion = 2;

struct LogRecord {
  uint8_t version = kLogRecordVersion;  // As decoded; the encoder ignores it.
  uint64_t epoch = 0;
  uint64_t lsn = 0;
  // Microseconds since the Unix epoch; 0 in version-1 records, which did not
  // carry it.
  int64_t commit_time_micros = 0;
  std::string payload;  // Serialized dash.storage.LogPayload.
};

std::string EncodeLogRecord(const LogRecord& record);

// DATA_LOSS on a checksum mismatch or truncated record, INVALID_ARGUMENT on an
// unknown version.
absl::StatusOr<LogRecord> DecodeLogRecord(absl::string_view bytes);

}  // namespace dash::storage

#endif  // DASH_NODE_STORAGE_LOG_RECORD_H_
