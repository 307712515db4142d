#include "node/index/postings_block.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::index {
namespace {

// Doc lengths for docs 0..: 10 + doc % 37.
uint32_t LengthOf(uint32_t doc) { return 10 + doc % 37; }

std::vector<Posting> RandomBlock(std::mt19937& rng, size_t n, uint32_t max_gap) {
  std::vector<Posting> postings;
  uint32_t doc = std::uniform_int_distribution<uint32_t>(0, 1000)(rng);
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) doc += std::uniform_int_distribution<uint32_t>(1, max_gap)(rng);
    // Mostly small tfs, now and then a large one.
    const uint32_t tf = rng() % 10 == 0 ? std::uniform_int_distribution<uint32_t>(1, 70000)(rng)
                                        : std::uniform_int_distribution<uint32_t>(1, 4)(rng);
    postings.push_back(Posting{doc, tf});
  }
  return postings;
}

bool Same(const std::vector<Posting>& a, const std::vector<Posting>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].doc != b[i].doc || a[i].tf != b[i].tf) return false;
  }
  return true;
}

TEST(PostingsBlockTest, BlocksOfEverySizeAndGapDecodeToWhatWasEncoded) {
  std::mt19937 rng(7);
  for (size_t n :
       {size_t{1}, size_t{2}, size_t{3}, size_t{4}, size_t{5}, size_t{127}, kBlockSize}) {
    for (uint32_t max_gap : {1u, 3u, 300u, 70000u, 30000000u}) {
      const std::vector<Posting> postings = RandomBlock(rng, n, max_gap);
      std::string bytes;
      ASSERT_TRUE(EncodeBlock(postings, LengthOf, &bytes).ok());
      std::vector<Posting> decoded;
      absl::StatusOr<size_t> used = DecodeBlock(bytes, &decoded);
      ASSERT_TRUE(used.ok()) << used.status() << " n=" << n << " gap=" << max_gap;
      EXPECT_EQ(*used, bytes.size());
      EXPECT_TRUE(Same(decoded, postings)) << "n=" << n << " gap=" << max_gap;
    }
  }
}

TEST(PostingsBlockTest, TheImpactIsTheBlocksLastDocLargestTfAndShortestDoc) {
  const std::vector<Posting> postings = {{5, 2}, {9, 7}, {40, 1}, {41, 3}};
  std::string bytes;
  ASSERT_TRUE(EncodeBlock(postings, LengthOf, &bytes).ok());
  size_t block_bytes = 0;
  absl::StatusOr<BlockImpact> impact = ReadImpact(bytes, &block_bytes);
  ASSERT_TRUE(impact.ok()) << impact.status();
  EXPECT_EQ(impact->count, 4u);
  EXPECT_EQ(impact->first_doc, 5u);
  EXPECT_EQ(impact->last_doc, 41u);
  EXPECT_EQ(impact->max_tf, 7u);
  EXPECT_EQ(impact->min_doc_length, LengthOf(40));  // 13: doc 40 is the shortest.
  EXPECT_EQ(block_bytes, bytes.size());
}

TEST(PostingsBlockTest, BlocksFollowOneAnotherInOneBuffer) {
  std::mt19937 rng(11);
  std::vector<std::vector<Posting>> blocks;
  std::string bytes;
  for (int i = 0; i < 5; ++i) {
    blocks.push_back(RandomBlock(rng, kBlockSize, 50));
    ASSERT_TRUE(EncodeBlock(blocks.back(), LengthOf, &bytes).ok());
  }
  absl::string_view rest = bytes;
  for (const auto& expected : blocks) {
    std::vector<Posting> decoded;
    absl::StatusOr<size_t> used = DecodeBlock(rest, &decoded);
    ASSERT_TRUE(used.ok()) << used.status();
    EXPECT_TRUE(Same(decoded, expected));
    rest.remove_prefix(*used);
  }
  EXPECT_TRUE(rest.empty());
}

TEST(PostingsBlockTest, AnInvalidBlockIsRefusedBeforeAnythingIsWritten) {
  std::string bytes;
  EXPECT_TRUE(absl::IsInvalidArgument(EncodeBlock({}, LengthOf, &bytes)));
  EXPECT_TRUE(absl::IsInvalidArgument(EncodeBlock({{3, 1}, {3, 1}}, LengthOf, &bytes)))
      << "docs must increase";
  EXPECT_TRUE(absl::IsInvalidArgument(EncodeBlock({{3, 1}, {2, 1}}, LengthOf, &bytes)));
  EXPECT_TRUE(absl::IsInvalidArgument(EncodeBlock({{3, 0}}, LengthOf, &bytes))) << "tf 0";
  std::vector<Posting> too_many(kBlockSize + 1);
  for (uint32_t i = 0; i < too_many.size(); ++i) too_many[i] = {i, 1};
  EXPECT_TRUE(absl::IsInvalidArgument(EncodeBlock(too_many, LengthOf, &bytes)));
  EXPECT_TRUE(bytes.empty());
}

// Every truncation and every single flipped bit is either detected
// (DATA_LOSS) or decodes to a well-formed block; none reads out of bounds
// (run under ASan to check that part) or crashes.
TEST(PostingsBlockTest, DamagedBlocksAreDataLossNeverACrash) {
  std::mt19937 rng(3);
  std::string bytes;
  ASSERT_TRUE(EncodeBlock(RandomBlock(rng, 100, 1000), LengthOf, &bytes).ok());
  std::vector<Posting> decoded;
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    absl::StatusOr<size_t> used = DecodeBlock(absl::string_view(bytes).substr(0, cut), &decoded);
    EXPECT_TRUE(absl::IsDataLoss(used.status())) << "truncated to " << cut << ": " << used.status();
  }
  int detected = 0, well_formed = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = bytes;
      damaged[i] = static_cast<char>(damaged[i] ^ (1 << bit));
      absl::StatusOr<size_t> used = DecodeBlock(damaged, &decoded);
      if (!used.ok()) {
        EXPECT_TRUE(absl::IsDataLoss(used.status())) << used.status();
        ++detected;
        continue;
      }
      ++well_formed;
      ASSERT_FALSE(decoded.empty());
      for (size_t k = 1; k < decoded.size(); ++k) ASSERT_LT(decoded[k - 1].doc, decoded[k].doc);
      for (const Posting& p : decoded) ASSERT_GE(p.tf, 1u);
    }
  }
  // The block carries no checksum (the segment file's footer does): a flip
  // in a stream's value bits can decode to other well-formed postings.
  EXPECT_GT(detected, 0);
  std::printf("%d of %d flipped bits detected by the block alone\n", detected,
              detected + well_formed);
}

TEST(PostingsBlockTest, TheUpperBoundHoldsForEveryPostingOfTheBlock) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    const std::vector<Posting> postings = RandomBlock(rng, 1 + rng() % kBlockSize, 100);
    std::string bytes;
    ASSERT_TRUE(EncodeBlock(postings, LengthOf, &bytes).ok());
    const BlockImpact impact = *ReadImpact(bytes, nullptr);
    query::Bm25Params params;
    params.k1 = std::uniform_real_distribution<double>(0, 3)(rng);
    params.b = std::uniform_real_distribution<double>(0, 1)(rng);
    const double avgdl = std::uniform_real_distribution<double>(1, 80)(rng);
    const double weight = std::uniform_real_distribution<double>(0.01, 10)(rng);
    const double bound = BlockUpperBound(impact, weight, params, avgdl);
    double best = 0;
    for (const Posting& p : postings) {
      const double norm = params.k1 * (1 - params.b + params.b * LengthOf(p.doc) / avgdl);
      best = std::max(best, weight * (p.tf * (params.k1 + 1)) / (p.tf + norm));
    }
    EXPECT_GE(bound, best - 1e-12 * best) << "trial " << trial;
  }
}

}  // namespace
}  // namespace dash::index
