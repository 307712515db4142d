#include "query/fusion.h"

#include <algorithm>
#include <map>

namespace dash::fusion {
namespace {

bool Better(double sa, const std::string& a, double sb, const std::string& b) {
  return sa != sb ? sa > sb : a < b;
}

std::vector<FusedHit> Collect(const std::vector<Candidate>& lexical,
                              const std::vector<Candidate>& vector) {
  std::map<std::string, FusedHit> by_id;
  for (size_t i = 0; i < lexical.size(); ++i) {
    FusedHit& h = by_id[lexical[i].id];
    h.id = lexical[i].id;
    h.lexical = LegView{lexical[i].score, static_cast<uint32_t>(i + 1)};
  }
  for (size_t i = 0; i < vector.size(); ++i) {
    FusedHit& h = by_id[vector[i].id];
    h.id = vector[i].id;
    h.vector = LegView{vector[i].score, static_cast<uint32_t>(i + 1)};
  }
  std::vector<FusedHit> out;
  out.reserve(by_id.size());
  for (auto& [id, h] : by_id) out.push_back(std::move(h));
  return out;
}

void SortHits(std::vector<FusedHit>& hits) {
  std::sort(hits.begin(), hits.end(), [](const FusedHit& a, const FusedHit& b) {
    return Better(a.score, a.id, b.score, b.id);
  });
}

}  // namespace

void SortLeg(std::vector<Candidate>& leg) {
  std::sort(leg.begin(), leg.end(), [](const Candidate& a, const Candidate& b) {
    return Better(a.score, a.id, b.score, b.id);
  });
}

std::vector<FusedHit> FuseRrf(const std::vector<Candidate>& lexical,
                              const std::vector<Candidate>& vector, const RrfParams& params) {
  std::vector<FusedHit> hits = Collect(lexical, vector);
  for (FusedHit& h : hits) {
    h.score = 0;
    if (h.lexical) h.score += params.lexical_weight / (params.k + h.lexical->rank);
    if (h.vector) h.score += params.vector_weight / (params.k + h.vector->rank);
  }
  SortHits(hits);
  return hits;
}

std::vector<FusedHit> FuseLinear(const std::vector<Candidate>& lexical,
                                 const std::vector<Candidate>& vector, const LinearParams& params) {
  auto bounds = [](const std::vector<Candidate>& leg) {
    double lo = 0, hi = 0;
    for (size_t i = 0; i < leg.size(); ++i) {
      lo = i == 0 ? leg[i].score : std::min(lo, leg[i].score);
      hi = i == 0 ? leg[i].score : std::max(hi, leg[i].score);
    }
    return std::make_pair(lo, hi);
  };
  auto normalize = [](double s, std::pair<double, double> b) {
    return b.second > b.first ? (s - b.first) / (b.second - b.first) : 1.0;
  };
  const auto lb = bounds(lexical), vb = bounds(vector);
  std::vector<FusedHit> hits = Collect(lexical, vector);
  for (FusedHit& h : hits) {
    const double l = h.lexical ? normalize(h.lexical->score, lb) : 0;
    const double v = h.vector ? normalize(h.vector->score, vb) : 0;
    h.score = (1 - params.alpha) * l + params.alpha * v;
  }
  SortHits(hits);
  return hits;
}

std::vector<FusedHit> FuseSingle(const std::vector<Candidate>& leg, bool is_vector) {
  std::vector<FusedHit> hits = is_vector ? Collect({}, leg) : Collect(leg, {});
  for (FusedHit& h : hits) h.score = is_vector ? h.vector->score : h.lexical->score;
  SortHits(hits);
  return hits;
}

}  // namespace dash::fusion
