#include "node/index/filter.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::index {
namespace {

v1::MetadataValue Int(int64_t v) {
  v1::MetadataValue m;
  m.set_int_value(v);
  return m;
}
v1::MetadataValue Str(const std::string& v) {
  v1::MetadataValue m;
  m.set_string_value(v);
  return m;
}
google::protobuf::Timestamp Ts(int64_t s) {
  google::protobuf::Timestamp t;
  t.set_seconds(s);
  return t;
}

v1::Claim ClaimWith(int64_t year, const std::string& source) {
  v1::Claim c;
  (*c.mutable_metadata())["year"] = Int(year);
  (*c.mutable_metadata())["source"] = Str(source);
  return c;
}

TEST(FilterTest, EqInAndRangeOnTypedMetadata) {
  v1::Filter f;
  auto* eq = f.add_metadata();
  eq->set_key("source");
  *eq->mutable_eq() = Str("ipcc");
  EXPECT_TRUE(MatchesClaim(f, ClaimWith(2020, "ipcc")));
  EXPECT_FALSE(MatchesClaim(f, ClaimWith(2020, "blog")));

  v1::Filter in;
  auto* m = in.add_metadata();
  m->set_key("year");
  *m->mutable_in()->add_values() = Int(2019);
  m->mutable_in()->add_values()->set_double_value(2021.0);  // int and double compare numerically
  EXPECT_TRUE(MatchesClaim(in, ClaimWith(2021, "x")));
  EXPECT_FALSE(MatchesClaim(in, ClaimWith(2020, "x")));

  v1::Filter range;
  auto* r = range.add_metadata();
  r->set_key("year");
  *r->mutable_range()->mutable_min() = Int(2010);
  *r->mutable_range()->mutable_max() = Int(2020);
  r->mutable_range()->set_max_exclusive(true);
  EXPECT_TRUE(MatchesClaim(range, ClaimWith(2010, "x")));
  EXPECT_TRUE(MatchesClaim(range, ClaimWith(2019, "x")));
  EXPECT_FALSE(MatchesClaim(range, ClaimWith(2020, "x")));
  EXPECT_FALSE(MatchesClaim(range, ClaimWith(2009, "x")));
  // Missing key or a value of another kind never matches.
  v1::Claim bare;
  EXPECT_FALSE(MatchesClaim(range, bare));
  v1::Claim texty;
  (*texty.mutable_metadata())["year"] = Str("2015");
  EXPECT_FALSE(MatchesClaim(range, texty));
}

TEST(FilterTest, ValidTimeOverlapsAndAsOf) {
  v1::Claim c;  // valid [100, 200]
  *c.mutable_valid_from() = Ts(100);
  *c.mutable_valid_to() = Ts(200);
  v1::Filter f;
  *f.mutable_valid_overlaps()->mutable_start() = Ts(150);
  *f.mutable_valid_overlaps()->mutable_end() = Ts(300);
  EXPECT_TRUE(MatchesClaim(f, c));
  *f.mutable_valid_overlaps()->mutable_start() = Ts(201);
  EXPECT_FALSE(MatchesClaim(f, c));
  v1::Filter at;
  *at.mutable_valid_at() = Ts(200);
  EXPECT_TRUE(MatchesClaim(at, c));
  *at.mutable_valid_at() = Ts(99);
  EXPECT_FALSE(MatchesClaim(at, c));
  v1::Claim open;  // no bounds: valid always
  EXPECT_TRUE(MatchesClaim(at, open));
}

TEST(FilterTest, EvidencePublishedRange) {
  v1::Filter f;
  *f.mutable_evidence_published()->mutable_start() = Ts(1000);
  v1::Evidence e;
  EXPECT_FALSE(MatchesEvidence(f, e));  // no published_at
  *e.mutable_citation()->mutable_published_at() = Ts(1500);
  EXPECT_TRUE(MatchesEvidence(f, e));
  *e.mutable_citation()->mutable_published_at() = Ts(999);
  EXPECT_FALSE(MatchesEvidence(f, e));
  EXPECT_TRUE(MatchesEvidence(v1::Filter(), e));
}

TEST(FilterTest, ValidationNamesTheField) {
  v1::Filter f;
  f.add_metadata()->set_key("year");
  EXPECT_THAT(std::string(ValidateFilter(f).message()),
              ::testing::StartsWith("filter.metadata[0]:"));
  f.mutable_metadata(0)->mutable_in();
  EXPECT_THAT(std::string(ValidateFilter(f).message()),
              ::testing::StartsWith("filter.metadata[0].in:"));
  f.mutable_metadata(0)->mutable_range();
  EXPECT_THAT(std::string(ValidateFilter(f).message()),
              ::testing::StartsWith("filter.metadata[0].range:"));
  *f.mutable_metadata(0)->mutable_range()->mutable_min() = Int(1);
  *f.mutable_metadata(0)->mutable_range()->mutable_max() = Str("z");
  EXPECT_THAT(std::string(ValidateFilter(f).message()),
              ::testing::StartsWith("filter.metadata[0].range.max:"));
  v1::Filter t;
  *t.mutable_valid_overlaps()->mutable_start() = Ts(10);
  *t.mutable_valid_overlaps()->mutable_end() = Ts(5);
  EXPECT_THAT(std::string(ValidateFilter(t).message()),
              ::testing::StartsWith("filter.valid_overlaps.end:"));
  EXPECT_TRUE(ValidateFilter(v1::Filter()).ok());
  EXPECT_TRUE(IsEmpty(v1::Filter()));
}

}  // namespace
}  // namespace dash::index
