#include "query/batch_validator.h"

#include <functional>

#include "common/hashing.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "query/test_util.h"

namespace dash::query {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using namespace testing;  // NOLINT: test builders (query::testing)

struct BadCase {
  const char* name;
  std::function<void(v1::WriteRequest&)> mutate;
  const char* path;  // Expected start of the error message.
};

class BatchValidatorTest : public ::testing::TestWithParam<BadCase> {};

v1::WriteRequest Good() {
  v1::WriteRequest req = ClaimBatch("acme", "c1", 2);
  *req.add_ops() = EdgeOp("c1", "c2");
  return req;
}

TEST(BatchValidatorTest, AcceptsAWellFormedBatch) { EXPECT_TRUE(ValidateBatch(Good()).ok()); }

TEST_P(BatchValidatorTest, RejectsWithFieldPath) {
  v1::WriteRequest req = Good();
  GetParam().mutate(req);
  absl::Status st = ValidateBatch(req);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_THAT(std::string(st.message()), StartsWith(GetParam().path));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BatchValidatorTest,
    ::testing::Values(
        BadCase{"EmptyTenant", [](auto& r) { r.set_tenant(""); }, "tenant:"},
        BadCase{"TenantWithSlash", [](auto& r) { r.set_tenant("a/b"); }, "tenant:"},
        BadCase{"NoOps", [](auto& r) { r.clear_ops(); }, "ops:"},
        BadCase{"OpNotSet", [](auto& r) { r.add_ops(); }, "ops[4]:"},
        BadCase{"EmptyClaimId",
                [](auto& r) { r.mutable_ops(0)->mutable_claim()->set_claim_id(""); },
                "ops[0].claim.claim_id:"},
        BadCase{"ClaimIdWithNul",
                [](auto& r) {
                  r.mutable_ops(0)->mutable_claim()->set_claim_id(std::string("a\0b", 3));
                },
                "ops[0].claim.claim_id:"},
        BadCase{
            "ClaimIdTooLong",
            [](auto& r) { r.mutable_ops(0)->mutable_claim()->set_claim_id(std::string(257, 'x')); },
            "ops[0].claim.claim_id:"},
        BadCase{"EmptyText", [](auto& r) { r.mutable_ops(0)->mutable_claim()->set_text(""); },
                "ops[0].claim.text:"},
        BadCase{"BadUtf8Text",
                [](auto& r) { r.mutable_ops(0)->mutable_claim()->set_text("a\xC3"); },
                "ops[0].claim.text:"},
        BadCase{"OtherTenantOnClaim",
                [](auto& r) { r.mutable_ops(0)->mutable_claim()->set_tenant("other"); },
                "ops[0].claim.tenant:"},
        BadCase{"NanEmbedding",
                [](auto& r) { r.mutable_ops(0)->mutable_claim()->add_embedding(std::nanf("")); },
                "ops[0].claim.embedding[0]:"},
        BadCase{"ValidToBeforeFrom",
                [](auto& r) {
                  auto* c = r.mutable_ops(0)->mutable_claim();
                  c->mutable_valid_from()->set_seconds(2000);
                  c->mutable_valid_to()->set_seconds(1000);
                },
                "ops[0].claim.valid_to:"},
        BadCase{"MetadataWithoutKind",
                [](auto& r) { (*r.mutable_ops(0)->mutable_claim()->mutable_metadata())["year"]; },
                "ops[0].claim.metadata[\"year\"]:"},
        BadCase{"MissingStance",
                [](auto& r) {
                  r.mutable_ops(1)->mutable_evidence()->set_stance(v1::STANCE_UNSPECIFIED);
                },
                "ops[1].evidence.stance:"},
        BadCase{"MissingCitation",
                [](auto& r) { r.mutable_ops(2)->mutable_evidence()->clear_citation(); },
                "ops[2].evidence.citation:"},
        BadCase{"EmptyQuote",
                [](auto& r) {
                  r.mutable_ops(2)->mutable_evidence()->mutable_citation()->set_quote("");
                },
                "ops[2].evidence.citation.quote:"},
        BadCase{"MissingSourceUri",
                [](auto& r) {
                  r.mutable_ops(1)->mutable_evidence()->mutable_citation()->clear_source_uri();
                },
                "ops[1].evidence.citation.source_uri:"},
        BadCase{"SpanBackwards",
                [](auto& r) {
                  r.mutable_ops(1)->mutable_evidence()->mutable_citation()->set_span_end(5);
                },
                "ops[1].evidence.citation.span_end:"},
        BadCase{"WrongQuoteHash",
                [](auto& r) {
                  r.mutable_ops(1)->mutable_evidence()->mutable_citation()->set_quote_sha256(
                      Sha256Hex("something else"));
                },
                "ops[1].evidence.citation.quote_sha256:"},
        BadCase{"SelfEdge", [](auto& r) { r.mutable_ops(3)->mutable_edge()->set_to_claim("c1"); },
                "ops[3].edge.to_claim:"},
        BadCase{"EdgeWithoutRelation",
                [](auto& r) {
                  r.mutable_ops(3)->mutable_edge()->set_relation(v1::RELATION_UNSPECIFIED);
                },
                "ops[3].edge.relation:"},
        BadCase{"InfiniteWeight",
                [](auto& r) { r.mutable_ops(3)->mutable_edge()->set_weight(INFINITY); },
                "ops[3].edge.weight:"},
        BadCase{"LongIdempotencyKey", [](auto& r) { r.set_idempotency_key(std::string(200, 'k')); },
                "idempotency_key:"}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return info.param.name; });

TEST(BatchValidatorTest, MatchingQuoteHashIsAccepted) {
  v1::WriteRequest req = Good();
  auto* c = req.mutable_ops(1)->mutable_evidence()->mutable_citation();
  c->set_quote_sha256(Sha256Hex(c->quote()));
  EXPECT_TRUE(ValidateBatch(req).ok());
}

TEST(BatchValidatorTest, ShardOfBatchNamesTheOpOnAnotherShard) {
  // Find two claims on different shards of 4.
  std::string a = "a", b;
  for (int i = 0; b.empty(); ++i) {
    std::string id = "b" + std::to_string(i);
    if (ShardOf("t", id, 4) != ShardOf("t", a, 4)) b = id;
  }
  v1::WriteRequest req = ClaimBatch("t", a);
  auto shard = ShardOfBatch(req, 4);
  ASSERT_TRUE(shard.ok());
  EXPECT_EQ(*shard, ShardOf("t", a, 4));
  *req.add_ops() = EvidenceOp(b, "e");
  absl::Status st = ShardOfBatch(req, 4).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), StartsWith("ops[2]:"));
  req.set_shard(9);
  EXPECT_THAT(std::string(ShardOfBatch(req, 4).status().message()), StartsWith("shard:"));
}

}  // namespace
}  // namespace dash::query
