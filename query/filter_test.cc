#include "query/filter.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dash::query {
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
}  // namespace dash::query

namespace dash::query {
namespace {

// What one query may ask the node to hold is bounded, and timestamps outside
// what google.protobuf.Timestamp allows are refused (year 100000 was taken).
TEST(FilterTest, BoundsOnKeysClausesValuesSizeAndTimestampsNameTheField) {
  auto message = [](const v1::Filter& f) { return std::string(ValidateFilter(f).message()); };
  v1::Filter key;
  key.add_metadata()->set_key(std::string(129, 'k'));
  *key.mutable_metadata(0)->mutable_eq() = Int(1);
  EXPECT_THAT(message(key), ::testing::StartsWith("filter.metadata[0].key: is 129 bytes"));
  key.mutable_metadata(0)->set_key(std::string(128, 'k'));
  EXPECT_TRUE(ValidateFilter(key).ok());

  v1::Filter clauses;
  for (int i = 0; i < 65; ++i) {
    v1::MetadataFilter* m = clauses.add_metadata();
    m->set_key("k" + std::to_string(i));
    *m->mutable_eq() = Int(i);
  }
  EXPECT_THAT(message(clauses), ::testing::StartsWith("filter.metadata: has 65 conditions"));
  clauses.mutable_metadata()->RemoveLast();
  EXPECT_TRUE(ValidateFilter(clauses).ok());

  v1::Filter in;
  in.add_metadata()->set_key("k");
  for (int i = 0; i < 1025; ++i) *in.mutable_metadata(0)->mutable_in()->add_values() = Int(i);
  EXPECT_THAT(message(in), ::testing::StartsWith("filter.metadata[0].in: lists 1025 values"));

  v1::Filter str;
  str.add_metadata()->set_key("k");
  *str.mutable_metadata(0)->mutable_eq() = Str(std::string(4097, 's'));
  EXPECT_THAT(message(str), ::testing::StartsWith("filter.metadata[0].eq: is 4097 bytes"));

  v1::Filter big;  // Within every per-field bound, over the total.
  for (int i = 0; i < 20; ++i) {
    v1::MetadataFilter* m = big.add_metadata();
    m->set_key("k" + std::to_string(i));
    for (int j = 0; j < 2; ++j) *m->mutable_in()->add_values() = Str(std::string(4000, 'v'));
  }
  EXPECT_THAT(message(big), ::testing::StartsWith("filter: is "));

  v1::Filter far;
  google::protobuf::Timestamp year100000;
  year100000.set_seconds(3093527980800LL);
  *far.mutable_valid_overlaps()->mutable_start() = year100000;
  EXPECT_THAT(message(far), ::testing::StartsWith("filter.valid_overlaps.start: seconds out of"));
  v1::Filter at;
  *at.mutable_valid_at() = Ts(10);
  at.mutable_valid_at()->set_nanos(-1);
  EXPECT_THAT(message(at), ::testing::StartsWith("filter.valid_at: nanos out of range"));
  v1::Filter value;
  value.add_metadata()->set_key("when");
  value.mutable_metadata(0)->mutable_eq()->mutable_timestamp_value()->set_seconds(-62135596801LL);
  EXPECT_THAT(message(value), ::testing::StartsWith("filter.metadata[0].eq.timestamp_value:"));
}

}  // namespace
}  // namespace dash::query
