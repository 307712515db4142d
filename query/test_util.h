// Builders for write batches in tests.
#ifndef DASH_QUERY_TEST_UTIL_H_
#define DASH_QUERY_TEST_UTIL_H_

#include <string>

#include "dash/v1/data.pb.h"

namespace dash::query::testing {

inline v1::WriteOp ClaimOp(const std::string& id, const std::string& text = "") {
  v1::WriteOp op;
  op.mutable_claim()->set_claim_id(id);
  op.mutable_claim()->set_text(text.empty() ? "claim text of " + id : text);
  return op;
}

inline v1::WriteOp EvidenceOp(const std::string& claim_id, const std::string& evidence_id,
                              v1::Stance stance = v1::STANCE_SUPPORTS) {
  v1::WriteOp op;
  v1::Evidence* e = op.mutable_evidence();
  e->set_claim_id(claim_id);
  e->set_evidence_id(evidence_id);
  e->set_stance(stance);
  e->mutable_citation()->set_source_uri("https://example.org/" + evidence_id);
  e->mutable_citation()->set_source_title("Source " + evidence_id);
  e->mutable_citation()->set_quote("quoted sentence " + evidence_id);
  e->mutable_citation()->set_span_start(10);
  e->mutable_citation()->set_span_end(30);
  return op;
}

inline v1::WriteOp EdgeOp(const std::string& from, const std::string& to,
                          v1::Relation relation = v1::RELATION_SUPPORTS) {
  v1::WriteOp op;
  op.mutable_edge()->set_from_claim(from);
  op.mutable_edge()->set_to_claim(to);
  op.mutable_edge()->set_relation(relation);
  op.mutable_edge()->set_weight(1.0);
  return op;
}

inline v1::WriteOp DeleteOp(const std::string& id) {
  v1::WriteOp op;
  op.mutable_delete_()->set_claim_id(id);
  return op;
}

// A batch holding one claim with `evidence` pieces of evidence.
inline v1::WriteRequest ClaimBatch(const std::string& tenant, const std::string& id,
                                   int evidence = 1) {
  v1::WriteRequest req;
  req.set_tenant(tenant);
  *req.add_ops() = ClaimOp(id);
  for (int i = 0; i < evidence; ++i) *req.add_ops() = EvidenceOp(id, id + "-e" + std::to_string(i));
  return req;
}

}  // namespace dash::query::testing

#endif  // DASH_QUERY_TEST_UTIL_H_
