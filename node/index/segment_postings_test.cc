#include "node/index/segment_postings.h"

#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "node/index/segment_file.h"

namespace dash::index {
namespace {

using ::testing::HasSubstr;

// A random corpus: doc -> terms, over a Zipf-ish vocabulary (t0 is in most
// docs, t49 in few), docs with gaps.
std::map<uint32_t, std::vector<std::string>> Corpus(std::mt19937& rng, int docs) {
  std::map<uint32_t, std::vector<std::string>> corpus;
  uint32_t doc = 0;
  for (int d = 0; d < docs; ++d) {
    doc += 1 + rng() % 3;
    std::vector<std::string>& terms = corpus[doc];
    const int length = 1 + static_cast<int>(rng() % 30);
    for (int i = 0; i < length; ++i) {
      const int rank = static_cast<int>(std::min<uint32_t>(rng() % 50, rng() % 50));
      terms.push_back("t" + std::to_string(rank));
    }
  }
  return corpus;
}

// What each term's list must be: (doc, tf) in doc order.
std::map<std::string, std::vector<std::pair<uint32_t, uint32_t>>> Expected(
    const std::map<uint32_t, std::vector<std::string>>& corpus) {
  std::map<std::string, std::map<uint32_t, uint32_t>> tfs;
  for (const auto& [doc, terms] : corpus) {
    for (const auto& t : terms) ++tfs[t][doc];
  }
  std::map<std::string, std::vector<std::pair<uint32_t, uint32_t>>> out;
  for (const auto& [t, docs] : tfs) out[t].assign(docs.begin(), docs.end());
  return out;
}

SegmentPostingsWriter::Bodies Build(const std::map<uint32_t, std::vector<std::string>>& corpus) {
  SegmentPostingsWriter writer;
  for (const auto& [doc, terms] : corpus) EXPECT_TRUE(writer.AddDoc(doc, terms).ok());
  return writer.Finish();
}

TEST(SegmentPostingsTest, EveryTermsListAndEveryDocLengthReadBackAsWritten) {
  std::mt19937 rng(1);
  const auto corpus = Corpus(rng, 3000);
  const auto expected = Expected(corpus);
  auto bodies = Build(corpus);
  auto segment = SegmentPostings::Open(bodies.dict, bodies.postings);
  ASSERT_TRUE(segment.ok()) << segment.status();
  EXPECT_EQ(segment->doc_count(), corpus.size());
  uint64_t total = 0;
  for (const auto& [doc, terms] : corpus) {
    EXPECT_EQ(segment->DocLength(doc), terms.size());
    total += terms.size();
  }
  EXPECT_EQ(segment->total_length(), total);
  EXPECT_EQ(segment->DocLength(corpus.rbegin()->first + 1), 0u);
  for (const auto& [term, list] : expected) {
    auto info = segment->Find(term);
    ASSERT_TRUE(info.has_value()) << term;
    EXPECT_EQ(info->df, list.size());
    std::vector<std::pair<uint32_t, uint32_t>> got;
    for (PostingCursor c = segment->Cursor(*info); c.Valid(); c.Next()) {
      got.emplace_back(c.doc(), c.tf());
      EXPECT_LE(c.tf(), c.block_impact().max_tf);
      EXPECT_GE(segment->DocLength(c.doc()), c.block_impact().min_doc_length);
    }
    EXPECT_EQ(got, list) << term;
  }
  EXPECT_FALSE(segment->Find("t50").has_value());
  EXPECT_FALSE(segment->Find("").has_value());
}

TEST(SegmentPostingsTest, AdvanceLandsOnTheFirstDocAtOrAfterTheTargetSkippingBlocks) {
  std::mt19937 rng(2);
  const auto corpus = Corpus(rng, 5000);
  const auto expected = Expected(corpus);
  auto bodies = Build(corpus);
  auto segment = SegmentPostings::Open(bodies.dict, bodies.postings);
  ASSERT_TRUE(segment.ok()) << segment.status();
  const auto& list = expected.at("t0");  // The longest list: many blocks.
  ASSERT_GT(list.size(), 10 * kBlockSize);
  for (int trial = 0; trial < 200; ++trial) {
    PostingCursor c = segment->Cursor(*segment->Find("t0"));
    uint32_t target = 0;
    for (int step = 0; step < 5; ++step) {
      target += static_cast<uint32_t>(rng() % 4000);
      c.Advance(target);
      auto want = std::lower_bound(list.begin(), list.end(), std::make_pair(target, 0u));
      if (want == list.end()) {
        EXPECT_FALSE(c.Valid());
        EXPECT_TRUE(c.status().ok()) << c.status();
        break;
      }
      ASSERT_TRUE(c.Valid()) << c.status();
      EXPECT_EQ(c.doc(), want->first);
      EXPECT_EQ(c.tf(), want->second);
    }
  }
  // Straight to the last posting: the blocks before it are skipped by their
  // headers, never decoded.
  PostingCursor c = segment->Cursor(*segment->Find("t0"));
  c.Advance(list.back().first);
  ASSERT_TRUE(c.Valid());
  EXPECT_EQ(c.doc(), list.back().first);
  EXPECT_EQ(c.blocks_decoded(), 2) << "the first block and the last";
  c.NextBlock();
  EXPECT_FALSE(c.Valid());
}

TEST(SegmentPostingsTest, DocsMustIncreaseAndTermsMustBeIndexable) {
  SegmentPostingsWriter writer;
  ASSERT_TRUE(writer.AddDoc(5, {"a"}).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(writer.AddDoc(5, {"b"})));
  EXPECT_TRUE(absl::IsInvalidArgument(writer.AddDoc(3, {"b"})));
  EXPECT_TRUE(absl::IsInvalidArgument(writer.AddDoc(6, {"b", ""})));
  auto bodies = writer.Finish();
  auto segment = SegmentPostings::Open(bodies.dict, bodies.postings);
  ASSERT_TRUE(segment.ok());
  EXPECT_EQ(segment->doc_count(), 1u) << "refused docs added nothing";
  EXPECT_FALSE(segment->Find("b").has_value());
}

// Damage anywhere is DATA_LOSS at open or from the cursor that meets it —
// never a crash or a wrong list presented as good (a flip inside a stream's
// values can still decode; the segment file's CRC catches those first).
TEST(SegmentPostingsTest, DamagedBodiesAreDataLossNeverACrash) {
  std::mt19937 rng(3);
  const auto corpus = Corpus(rng, 300);
  auto bodies = Build(corpus);
  auto walk = [](const SegmentPostings& s, const std::string& dict) {
    for (int t = 0; t < 50; ++t) {
      auto info = s.Find("t" + std::to_string(t));
      if (!info) continue;
      PostingCursor c = s.Cursor(*info);
      while (c.Valid()) c.Next();
      if (!c.status().ok()) {
        EXPECT_TRUE(absl::IsDataLoss(c.status())) << c.status();
      }
    }
  };
  for (size_t i = 0; i < bodies.dict.size(); i += 3) {
    std::string dict = bodies.dict;
    dict[i] = static_cast<char>(dict[i] ^ 0x5a);
    auto s = SegmentPostings::Open(dict, bodies.postings);
    if (!s.ok()) {
      EXPECT_TRUE(absl::IsDataLoss(s.status())) << s.status();
      continue;
    }
    walk(*s, dict);
  }
  for (size_t i = 0; i < bodies.postings.size(); i += 7) {
    std::string postings = bodies.postings;
    postings[i] = static_cast<char>(postings[i] ^ 0x5a);
    auto s = SegmentPostings::Open(bodies.dict, postings);
    ASSERT_TRUE(s.ok()) << "the dictionary is intact";
    walk(*s, bodies.dict);
  }
  auto truncated = SegmentPostings::Open(bodies.dict, bodies.postings.substr(1));
  EXPECT_TRUE(absl::IsDataLoss(truncated.status()));
  EXPECT_THAT(truncated.status().message(), HasSubstr("segment dictionary"));
}

TEST(SegmentPostingsTest, TheBodiesTravelAsSegmentFiles) {
  const std::string dir =
      (std::filesystem::path(::testing::TempDir()) / "segment-postings").string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::mt19937 rng(4);
  auto bodies = Build(Corpus(rng, 500));
  const std::string id("segment-0000001\0", 16);
  ASSERT_TRUE(WriteSegmentFile(dir + "/1.dict", {"DICT", 1, id}, bodies.dict).ok());
  ASSERT_TRUE(WriteSegmentFile(dir + "/1.post", {"POST", 1, id}, bodies.postings).ok());
  auto dict = ReadSegmentFile(dir + "/1.dict", {"DICT", 1, id});
  auto postings = ReadSegmentFile(dir + "/1.post", {"POST", 1, id});
  ASSERT_TRUE(dict.ok() && postings.ok());
  auto segment = SegmentPostings::Open(*dict, *postings);
  ASSERT_TRUE(segment.ok()) << segment.status();
  EXPECT_EQ(segment->doc_count(), 500u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dash::index
