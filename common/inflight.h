// Server interceptors every DASH server installs: a count of calls in flight,
// so that a graceful stop waits for the calls that are running and for
// nothing else, and a clear code for requests that cannot be parsed.
//
// grpc::Server::Shutdown(deadline) also waits for every client connection to
// close, and an idle C++ client only notices the server's GOAWAY when its
// backup poller runs (every 5 s): a node with any connected client, even an
// idle one, took the whole deadline to stop. With the counter the owner
// waits until no call runs (or its grace ends) and then shuts down at once,
// which closes idle connections immediately.
//
// Install the factory with ServerBuilder::experimental().SetInterceptorCreators.
// Thread-safe.
#ifndef DASH_COMMON_INFLIGHT_H_
#define DASH_COMMON_INFLIGHT_H_

#include <chrono>
#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/support/server_interceptor.h"

namespace dash {

class InflightCalls {
 public:
  // One interceptor per call: it counts the call from when it starts until
  // it is finished. Health watches and reflection streams are not counted
  // (they last as long as their client likes; common/serving.h).
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> Factory();
  // Factory() and ParseErrorsAsInvalidArgument(), in the vector
  // SetInterceptorCreators takes.
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> Factories();

  int count() const;
  // Waits until no call is in flight or `deadline` passes; true when none is.
  bool WaitUntilIdle(absl::Time deadline) const;

  void Enter();
  void Exit();

 private:
  mutable absl::Mutex mu_;
  int count_ ABSL_GUARDED_BY(mu_) = 0;
};

// An interceptor factory that turns gRPC's answer to a request it could not
// parse (INTERNAL or UNIMPLEMENTED with no message, by API flavour) into
// INVALID_ARGUMENT "request: cannot be parsed as the request of <method>
// (...)": the caller's input is wrong, and retrying it never helps.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
ParseErrorsAsInvalidArgument();

// Stops `server` gracefully: calls in flight get up to `grace` to finish,
// then the server shuts down at once (cancelling what still runs and closing
// idle connections).
template <typename Server>
void ShutdownWhenIdle(Server* server, const InflightCalls& inflight, absl::Duration grace) {
  inflight.WaitUntilIdle(absl::Now() + grace);
  server->Shutdown(std::chrono::system_clock::now());
}

}  // namespace dash

#endif  // DASH_COMMON_INFLIGHT_H_
