#include "node/index/segment_file.h"

#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/index/postings_block.h"
#include "node/storage/file_util.h"

namespace dash::index {
namespace {

using ::testing::HasSubstr;

SegmentFileInfo Info(const std::string& kind = "POST", uint32_t version = 1) {
  return SegmentFileInfo{kind, version, std::string("0123456789abcdef")};
}

class SegmentFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::path(::testing::TempDir()) /
            ("segfile-" +
             std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())))
               .string();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(SegmentFileTest, AWrittenFileReadsBackItsBody) {
  const std::string body("postings\0with a NUL", 19);
  const std::string path = dir_ + "/s1.post";
  ASSERT_TRUE(WriteSegmentFile(path, Info(), body).ok());
  uint32_t version = 0;
  auto read = ReadSegmentFile(path, Info("POST", 3), &version);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, body);
  EXPECT_EQ(version, 1u) << "an older version is read";
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  auto empty = FrameSegmentFile(Info(), "");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*UnframeSegmentFile(*empty, Info(), "empty"), "");
}

TEST_F(SegmentFileTest, AFileWrittenInPartsIsTheFramedConcatenation) {
  const std::string path = dir_ + "/parts.vec";
  ASSERT_TRUE(WriteSegmentFile(path, Info(), std::vector<absl::string_view>{"ab", "", "cde"}).ok());
  absl::StatusOr<std::string> written = storage::ReadFile(path);
  ASSERT_TRUE(written.ok()) << written.status();
  absl::StatusOr<std::string> framed = FrameSegmentFile(Info(), "abcde");
  ASSERT_TRUE(framed.ok());
  EXPECT_EQ(*written, *framed) << "same header, body and checksum as one piece";
  EXPECT_EQ(*ReadSegmentFile(path, Info()), "abcde");
}

TEST_F(SegmentFileTest, SegmentFilesAreImmutable) {
  const std::string path = dir_ + "/s1.post";
  ASSERT_TRUE(WriteSegmentFile(path, Info(), "one").ok());
  absl::Status st = WriteSegmentFile(path, Info(), "two");
  EXPECT_TRUE(absl::IsAlreadyExists(st)) << st;
  EXPECT_EQ(*ReadSegmentFile(path, Info()), "one");
}

TEST_F(SegmentFileTest, EveryTruncationAndFlippedBitIsDataLossNamingTheFile) {
  auto file = FrameSegmentFile(Info(), "a body of some length, to be damaged");
  ASSERT_TRUE(file.ok());
  for (size_t cut = 0; cut < file->size(); ++cut) {
    auto body = UnframeSegmentFile(file->substr(0, cut), Info(), "s1.post");
    EXPECT_TRUE(absl::IsDataLoss(body.status())) << "cut at " << cut << ": " << body.status();
  }
  for (size_t i = 0; i < file->size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = *file;
      damaged[i] = static_cast<char>(damaged[i] ^ (1 << bit));
      auto body = UnframeSegmentFile(damaged, Info(), "s1.post");
      ASSERT_TRUE(absl::IsDataLoss(body.status()))
          << "byte " << i << " bit " << bit << ": " << body.status();
      EXPECT_THAT(body.status().message(), HasSubstr("s1.post"));
    }
  }
}

TEST_F(SegmentFileTest, AFileOfAnotherKindSegmentOrNewerVersionIsRefused) {
  auto file = FrameSegmentFile(Info("POST", 2), "body");
  ASSERT_TRUE(file.ok());
  auto st = UnframeSegmentFile(*file, Info("DICT", 2), "f").status();
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_THAT(st.message(), HasSubstr("\"POST\" file, not \"DICT\""));
  SegmentFileInfo other = Info("POST", 2);
  other.segment_id = "fedcba9876543210";
  st = UnframeSegmentFile(*file, other, "f").status();
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_THAT(st.message(), HasSubstr("belongs to segment"));
  st = UnframeSegmentFile(*file, Info("POST", 1), "f").status();
  EXPECT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_THAT(st.message(), HasSubstr("format version 2; this DASH reads up to 1"));
}

TEST_F(SegmentFileTest, BadArgumentsAndMissingFiles) {
  EXPECT_TRUE(absl::IsInvalidArgument(FrameSegmentFile(Info("POSTINGS"), "x").status()));
  SegmentFileInfo short_id = Info();
  short_id.segment_id = "abc";
  EXPECT_TRUE(absl::IsInvalidArgument(FrameSegmentFile(short_id, "x").status()));
  EXPECT_TRUE(absl::IsNotFound(ReadSegmentFile(dir_ + "/none", Info()).status()));
  // A leftover temporary from a crashed write is not the file.
  ASSERT_TRUE(storage::WriteFileAtomically(dir_ + "/x.tmp.done", dir_ + "/x.tmp", "partial").ok());
  EXPECT_TRUE(absl::IsNotFound(ReadSegmentFile(dir_ + "/x", Info()).status()));
}

// The v1 fixture, written by hand from segment_format.md (testdata/README.md):
// the framing and the postings blocks of the documented version still read.
TEST(SegmentFormatTest, TheV1FixtureReads) {
  const SegmentFileInfo expected{"POST", 1, std::string("fixture-seg-v1\0\0", 16)};
  uint32_t version = 0;
  auto body = ReadSegmentFile(std::string(DASH_INDEX_TESTDATA_DIR) + "/postings_v1.seg", expected,
                              &version);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(version, 1u);
  absl::string_view rest = *body;
  size_t block_bytes = 0;
  auto impact = ReadImpact(rest, &block_bytes);
  ASSERT_TRUE(impact.ok()) << impact.status();
  EXPECT_EQ(impact->count, 4u);
  EXPECT_EQ(impact->first_doc, 3u);
  EXPECT_EQ(impact->last_doc, 70000u);
  EXPECT_EQ(impact->max_tf, 5u);
  EXPECT_EQ(impact->min_doc_length, 13u);
  std::vector<Posting> postings;
  auto used = DecodeBlock(rest, &postings);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_EQ(*used, block_bytes);
  ASSERT_EQ(postings.size(), 4u);
  const uint32_t docs[] = {3, 7, 300, 70000}, tfs[] = {1, 2, 1, 5};
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(postings[i].doc, docs[i]);
    EXPECT_EQ(postings[i].tf, tfs[i]);
  }
  rest.remove_prefix(*used);
  used = DecodeBlock(rest, &postings);
  ASSERT_TRUE(used.ok()) << used.status();
  ASSERT_EQ(postings.size(), 1u);
  EXPECT_EQ(postings[0].doc, 70001u);
  EXPECT_EQ(ReadImpact(rest, nullptr)->min_doc_length, 44u);
  EXPECT_EQ(*used, rest.size()) << "two blocks, nothing after";
}

}  // namespace
}  // namespace dash::index
