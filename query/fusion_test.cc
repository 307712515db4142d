#include "query/fusion.h"

#include "gtest/gtest.h"

namespace dash::fusion {
namespace {

std::vector<std::string> Ids(const std::vector<FusedHit>& hits) {
  std::vector<std::string> out;
  for (const auto& h : hits) out.push_back(h.id);
  return out;
}

TEST(FusionTest, RrfRewardsAgreementBetweenLegs) {
  std::vector<Candidate> lex = {{"a", 9}, {"b", 7}, {"c", 5}};
  std::vector<Candidate> vec = {{"b", 0.9}, {"d", 0.8}, {"a", 0.1}};
  auto hits = FuseRrf(lex, vec, RrfParams());
  // a: 1/61 + 1/63, b: 1/62 + 1/61, c: 1/63, d: 1/62.
  ASSERT_EQ(Ids(hits), (std::vector<std::string>{"b", "a", "d", "c"}));
  EXPECT_DOUBLE_EQ(hits[0].score, 1.0 / 62 + 1.0 / 61);
  ASSERT_TRUE(hits[0].lexical.has_value());
  EXPECT_EQ(hits[0].lexical->rank, 2u);
  EXPECT_EQ(hits[0].vector->rank, 1u);
  EXPECT_FALSE(hits[2].lexical.has_value());  // d is vector-only
  EXPECT_DOUBLE_EQ(hits[2].vector->score, 0.8);
}

TEST(FusionTest, RrfWeightsAndKShiftTheBalance) {
  std::vector<Candidate> lex = {{"a", 1}, {"b", 0.5}};
  std::vector<Candidate> vec = {{"b", 1}, {"a", 0.5}};
  RrfParams p;
  p.vector_weight = 3;
  EXPECT_EQ(FuseRrf(lex, vec, p)[0].id, "b");
  p.vector_weight = 1;
  p.lexical_weight = 3;
  EXPECT_EQ(FuseRrf(lex, vec, p)[0].id, "a");
}

TEST(FusionTest, LinearNormalizesEachLegAndAlphaChoosesTheMix) {
  std::vector<Candidate> lex = {{"a", 20}, {"b", 10}, {"c", 0}};
  std::vector<Candidate> vec = {{"c", 0.9}, {"b", 0.5}, {"a", 0.1}};
  LinearParams p;
  p.alpha = 0;
  EXPECT_EQ(Ids(FuseLinear(lex, vec, p)), (std::vector<std::string>{"a", "b", "c"}));
  p.alpha = 1;
  EXPECT_EQ(Ids(FuseLinear(lex, vec, p)), (std::vector<std::string>{"c", "b", "a"}));
  p.alpha = 0.5;
  auto hits = FuseLinear(lex, vec, p);
  // a: 0.5*1 + 0.5*0 = 0.5; b: 0.5*0.5 + 0.5*0.5 = 0.5; c: 0 + 0.5 = 0.5 -> ties by id.
  EXPECT_EQ(Ids(hits), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_DOUBLE_EQ(hits[1].score, 0.5);
}

TEST(FusionTest, TiesBreakByIdDeterministically) {
  std::vector<Candidate> lex = {{"z", 1}, {"y", 1}, {"x", 1}};
  SortLeg(lex);
  EXPECT_EQ(lex[0].id, "x");
  auto single = FuseSingle(lex, false);
  EXPECT_EQ(Ids(single), (std::vector<std::string>{"x", "y", "z"}));
  EXPECT_DOUBLE_EQ(single[0].score, 1);
}

}  // namespace
}  // namespace dash::fusion
