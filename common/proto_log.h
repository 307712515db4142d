// Protobuf's own log lines, rate-limited. Protobuf logs one line for every
// message it cannot parse ("String field contains invalid UTF-8 data ..."):
// a client sending malformed requests could otherwise fill a server's log at
// the rate it sends them. Call once at start-up, before serving.
#ifndef DASH_COMMON_PROTO_LOG_H_
#define DASH_COMMON_PROTO_LOG_H_

#include <cstdint>

namespace dash {

// Routes protobuf's messages to glog, at most one line per 10 s per level;
// the lines dropped meanwhile are counted in the next one.
void RateLimitProtobufLogs();

// Protobuf log lines seen since start (dropped or not).
uint64_t ProtobufLogLines();

}  // namespace dash

#endif  // DASH_COMMON_PROTO_LOG_H_
