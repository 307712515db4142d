// The gRPC Fencer: asynchronous unary FenceShard calls on one completion
// queue per Fence() call, over one channel per node address, kept for the
// fencer's lifetime (a node that comes back is reconnected to within about a
// second: the channels' reconnect backoff is capped).
//
// Thread-safety: thread-safe.
#ifndef DASH_CONTROLPLANE_FENCING_GRPC_FENCER_H_
#define DASH_CONTROLPLANE_FENCING_GRPC_FENCER_H_

#include <memory>

#include "common/security.h"
#include "controlplane/fencing/fencer.h"

namespace dash::controlplane {

// Fences with `security`'s TLS identity (the nodes accept FenceShard from
// cluster members only).
std::unique_ptr<Fencer> NewGrpcFencer(std::shared_ptr<const Security> security);

}  // namespace dash::controlplane

#endif  // DASH_CONTROLPLANE_FENCING_GRPC_FENCER_H_
