// Fencing I/O: NodeAdmin.FenceShard sent to a shard's replicas before the
// control plane commits a new leader (controlplane/README.md, "Fencing"). A
// fenced replica persists the new epoch and acts for no older one, so a deposed
// leader can no longer gather a majority. Only the calls live here; what the
// answers allow is decided by the planner (ChooseFencedLeader, PlanPromote),
// so tests drive it with fabricated answers.
//
// Thread-safety: implementations are thread-safe.
#ifndef DASH_CONTROLPLANE_FENCING_FENCER_H_
#define DASH_CONTROLPLANE_FENCING_FENCER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dash/v1/node.pb.h"

namespace dash::controlplane {

// FenceShard(shard, epoch) to the node at `address`.
struct FenceCall {
  uint32_t shard = 0;
  uint64_t epoch = 0;
  std::string node_id;
  std::string address;  // host:port of the node's gRPC server.
};

class Fencer {
 public:
  virtual ~Fencer() = default;

  // Sends every call at once, each with a deadline of `timeout`, and returns
  // once all have answered or timed out, so it blocks for about `timeout` at
  // most. Result i answers calls[i]: the response, or the call's error
  // (FAILED_PRECONDITION from the node, DEADLINE_EXCEEDED, UNAVAILABLE, ...).
  virtual std::vector<absl::StatusOr<v1::FenceShardResponse>> Fence(
      const std::vector<FenceCall>& calls, absl::Duration timeout) = 0;
};

}  // namespace dash::controlplane

#endif  // DASH_CONTROLPLANE_FENCING_FENCER_H_
