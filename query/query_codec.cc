#include "query/query_codec.h"

namespace dash::query {

v1::CorpusStatsProto ToProto(const CorpusStats& stats) {
  v1::CorpusStatsProto p;
  p.set_docs(stats.docs);
  p.set_total_length(stats.total_length);
  for (const auto& [term, df] : stats.df) (*p.mutable_df())[term] = df;
  return p;
}

CorpusStats FromProto(const v1::CorpusStatsProto& proto) {
  CorpusStats s;
  s.docs = proto.docs();
  s.total_length = proto.total_length();
  for (const auto& [term, df] : proto.df()) s.df[term] = df;
  return s;
}

void ToProto(const LegRequest& request, v1::ShardLegsRequest* out) {
  for (const auto& t : request.terms) out->add_terms(t);
  out->set_bm25_k1(request.bm25.k1);
  out->set_bm25_b(request.bm25.b);
  *out->mutable_stats() = ToProto(request.stats);
  for (float f : request.embedding) out->add_embedding(f);
  out->set_vector_mode(request.vector_mode);
  out->set_depth(static_cast<uint32_t>(request.depth));
  *out->mutable_filter() = request.filter;
  out->set_support_only(request.support_only);
  out->set_bypass_filter_cache(request.bypass_filter_cache);
}

LegRequest FromProto(const v1::ShardLegsRequest& proto) {
  LegRequest r;
  r.terms.assign(proto.terms().begin(), proto.terms().end());
  r.bm25.k1 = proto.bm25_k1();
  r.bm25.b = proto.bm25_b();
  r.stats = FromProto(proto.stats());
  r.embedding.assign(proto.embedding().begin(), proto.embedding().end());
  r.vector_mode = proto.vector_mode();
  r.depth = proto.depth();
  r.filter = proto.filter();
  r.support_only = proto.support_only();
  r.bypass_filter_cache = proto.bypass_filter_cache();
  return r;
}

void ToProto(const LegResult& result, v1::ShardLegsResponse* out) {
  for (const auto& c : result.lexical) {
    v1::ScoredId* s = out->add_lexical();
    s->set_id(c.id);
    s->set_score(c.score);
  }
  for (const auto& c : result.vector) {
    v1::ScoredId* s = out->add_vector();
    s->set_id(c.id);
    s->set_score(c.score);
  }
  out->set_vector_plan(result.vector_plan);
  *out->mutable_read_at() = result.read_at;
}

LegResult FromProto(const v1::ShardLegsResponse& proto) {
  LegResult r;
  for (const auto& s : proto.lexical()) r.lexical.push_back({s.id(), s.score()});
  for (const auto& s : proto.vector()) r.vector.push_back({s.id(), s.score()});
  r.vector_plan = proto.vector_plan();
  r.read_at = proto.read_at();
  return r;
}

void ToProto(const FetchOptions& options, v1::ShardFetchRequest* out) {
  out->set_stance_mode(options.stance_mode);
  out->set_include_evidence(options.include_evidence);
  for (const auto& t : options.terms) out->add_terms(t);
  out->set_bm25_k1(options.bm25.k1);
  out->set_bm25_b(options.bm25.b);
  *out->mutable_stats() = ToProto(options.stats);
  *out->mutable_filter() = options.filter;
  out->set_include_edges(options.include_edges);
}

FetchOptions FromProto(const v1::ShardFetchRequest& proto) {
  FetchOptions o;
  o.stance_mode = proto.stance_mode();
  o.include_evidence = proto.include_evidence();
  o.terms.assign(proto.terms().begin(), proto.terms().end());
  o.bm25.k1 = proto.bm25_k1();
  o.bm25.b = proto.bm25_b();
  o.stats = FromProto(proto.stats());
  o.filter = proto.filter();
  o.include_edges = proto.include_edges();
  return o;
}

}  // namespace dash::query
