#include "node/storage/log_record.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/hashing.h"

namespace dash::storage {
namespace {

void PutFixed(std::string* out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

class ByteReader {
 public:
  explicit ByteReader(absl::string_view in) : in_(in) {}
  bool Fixed(int bytes, uint64_t* v) {
    if (in_.size() < static_cast<size_t>(bytes)) return false;
    uint64_t r = 0;
    for (int i = 0; i < bytes; ++i) r = (r << 8) | static_cast<uint8_t>(in_[i]);
    in_.remove_prefix(bytes);
    *v = r;
    return true;
  }
  bool Bytes(size_t n, absl::string_view* out) {
    if (in_.size() < n) return false;
    *out = in_.substr(0, n);
    in_.remove_prefix(n);
    return true;
  }
  size_t remaining() const { return in_.size(); }

 private:
  absl::string_view in_;
};

}  // namespace

std::string EncodeLogRecord(const LogRecord& record) {
  std::string out;
  out.reserve(33 + record.payload.size() + 4);
  out.push_back(static_cast<char>(kLogRecordVersion));
  PutFixed(&out, record.epoch, 8);
  PutFixed(&out, record.lsn, 8);
  PutFixed(&out, static_cast<uint64_t>(record.commit_time_micros), 8);
  PutFixed(&out, record.payload.size(), 4);
  out.append(record.payload);
  PutFixed(&out, Crc32(out), 4);
  return out;
}

absl::StatusOr<LogRecord> DecodeLogRecord(absl::string_view bytes) {
  if (bytes.size() < 5) return absl::DataLossError("log record: truncated");
  const absl::string_view body = bytes.substr(0, bytes.size() - 4);
  ByteReader trailer(bytes.substr(bytes.size() - 4));
  uint64_t crc = 0;
  trailer.Fixed(4, &crc);
  if (Crc32(body) != crc) return absl::DataLossError("log record: checksum mismatch");

  ByteReader r(body);
  uint64_t version = 0, epoch = 0, lsn = 0, commit = 0, len = 0;
  r.Fixed(1, &version);
  LogRecord rec;
  rec.version = static_cast<uint8_t>(version);
  bool ok = false;
  switch (version) {
    case 1:  // epoch, lsn, payload length, payload.
      ok = r.Fixed(8, &epoch) && r.Fixed(8, &lsn) && r.Fixed(4, &len);
      break;
    case 2:  // version 1 plus the commit time.
      ok = r.Fixed(8, &epoch) && r.Fixed(8, &lsn) && r.Fixed(8, &commit) && r.Fixed(4, &len);
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("log record: unknown version ", version));
  }
  absl::string_view payload;
  if (!ok || !r.Bytes(len, &payload) || r.remaining() != 0) {
    return absl::DataLossError("log record: malformed frame");
  }
  rec.epoch = epoch;
  rec.lsn = lsn;
  rec.commit_time_micros = static_cast<int64_t>(commit);
  rec.payload = std::string(payload);
  return rec;
}

}  // namespace dash::storage
