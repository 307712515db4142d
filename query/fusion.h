// Fusion of ranked lists (lexical and vector legs) into one ranking. Shared by
// the node (fusing across the shards it hosts) and the router (fusing across
// nodes): each leg is merged globally first, then fused once.
// Thread-safe: pure functions.
#ifndef DASH_QUERY_FUSION_H_
#define DASH_QUERY_FUSION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dash::fusion {

// One leg's ranked list, best first (ties by id ascending).
struct Candidate {
  std::string id;
  double score = 0;
};

struct LegView {
  double score = 0;
  uint32_t rank = 0;  // 1-based position in the leg.
};

struct FusedHit {
  std::string id;
  double score = 0;
  std::optional<LegView> lexical;
  std::optional<LegView> vector;
};

struct RrfParams {
  double k = 60;
  double lexical_weight = 1;
  double vector_weight = 1;
};

struct LinearParams {
  double alpha = 0.5;  // Weight of the vector leg.
};

// Sorts a leg best first, ties by id ascending.
void SortLeg(std::vector<Candidate>& leg);

// score = sum over legs of weight / (k + rank).
std::vector<FusedHit> FuseRrf(const std::vector<Candidate>& lexical,
                              const std::vector<Candidate>& vector, const RrfParams& params);
// Each leg min-max normalized over its candidates (all equal -> 1); a hit
// missing from a leg gets 0 there. score = (1 - alpha) * lex + alpha * vec.
std::vector<FusedHit> FuseLinear(const std::vector<Candidate>& lexical,
                                 const std::vector<Candidate>& vector, const LinearParams& params);
// Both fusions return hits ordered by score descending, ties by id ascending.
// With only one non-empty leg, use FuseSingle: score = that leg's score.
std::vector<FusedHit> FuseSingle(const std::vector<Candidate>& leg, bool is_vector);

}  // namespace dash::fusion

#endif  // DASH_QUERY_FUSION_H_
