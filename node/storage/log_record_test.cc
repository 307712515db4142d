#include "node/storage/log_record.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "node/storage/records.pb.h"

namespace dash::storage {
namespace {

LogRecord Sample() {
  LogRecord r;
  r.epoch = 3;
  r.lsn = 42;
  r.commit_time_micros = 1767225600123456;
  r.payload = "payload bytes";
  return r;
}

TEST(LogRecordTest, CurrentVersionRoundTrips) {
  const std::string bytes = EncodeLogRecord(Sample());
  EXPECT_EQ(static_cast<uint8_t>(bytes[0]), kLogRecordVersion);
  auto decoded = DecodeLogRecord(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->version, kLogRecordVersion);
  EXPECT_EQ(decoded->epoch, 3u);
  EXPECT_EQ(decoded->lsn, 42u);
  EXPECT_EQ(decoded->commit_time_micros, 1767225600123456);
  EXPECT_EQ(decoded->payload, "payload bytes");
}

TEST(LogRecordTest, EveryFlippedByteIsDetected) {
  const std::string bytes = EncodeLogRecord(Sample());
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] ^= 0x20;
    auto decoded = DecodeLogRecord(bad);
    EXPECT_FALSE(decoded.ok()) << "byte " << i;
  }
}

TEST(LogRecordTest, TruncationIsDataLoss) {
  const std::string bytes = EncodeLogRecord(Sample());
  for (size_t len : {size_t{0}, size_t{3}, bytes.size() / 2, bytes.size() - 1}) {
    EXPECT_EQ(DecodeLogRecord(bytes.substr(0, len)).status().code(), absl::StatusCode::kDataLoss)
        << len;
  }
}

// A version-1 record written by the first log format (no commit time), kept
// as a binary fixture; see testdata/README.md.
TEST(LogRecordTest, DecodesStoredVersion1Fixture) {
  std::ifstream in(DASH_TESTDATA_DIR "/log_record_v1.bin", std::ios::binary);
  ASSERT_TRUE(in.good());
  std::stringstream buf;
  buf << in.rdbuf();
  auto decoded = DecodeLogRecord(buf.str());
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->version, 1);
  EXPECT_EQ(decoded->epoch, 1u);
  EXPECT_EQ(decoded->lsn, 1u);
  EXPECT_EQ(decoded->commit_time_micros, 0);
  LogPayload payload;
  ASSERT_TRUE(payload.ParseFromString(decoded->payload));
  EXPECT_EQ(payload.tenant(), "fixture");
  ASSERT_EQ(payload.ops_size(), 3);
  EXPECT_EQ(payload.ops(0).claim().claim_id(), "claim-v1");
}

}  // namespace
}  // namespace dash::storage
