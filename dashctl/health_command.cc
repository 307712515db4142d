// dashctl health [--service NAME] [ADDR...]: the standard gRPC health check
// (grpc.health.v1) of any DASH process — node, router or control plane — at
// each ADDR (default --addr). One line per address, "ADDR SERVICE STATUS", or
// with --json the HealthCheckResponse per line with its address. Exit 0 when
// every address is SERVING, 1 when one is not (or does not know the service),
// 3 when one cannot be reached: usable as a container health check.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/grpc_status.h"
#include "dashctl/common.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace dash::ctl {

void AddHealthCommand(CLI::App& app, GlobalOptions& g, std::function<int()>* run) {
  struct Options {
    std::string service;
    std::vector<std::string> addresses;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "health", "Is a process SERVING? (grpc.health.v1; exit 0 yes, 1 no, 3 unreachable)");
  cmd->add_option("--service", o->service,
                  "A service (dash.v1.Data, dash.v1.ControlPlane, ...); default: the process "
                  "as a whole");
  cmd->add_option("addresses", o->addresses, "host:port of each process (default --addr)");
  cmd->callback([&g, o, run] {
    *run = [&g, o] {
      std::vector<std::string> addresses = o->addresses;
      if (addresses.empty()) addresses.push_back(g.addr);
      int exit_code = kOk;
      for (const std::string& address : addresses) {
        auto stub = grpc::health::v1::Health::NewStub(ConnectTo(g, address));
        grpc::ClientContext ctx;
        SetDeadline(&ctx, g);
        grpc::health::v1::HealthCheckRequest req;
        req.set_service(o->service);
        grpc::health::v1::HealthCheckResponse resp;
        const grpc::Status st = stub->Check(&ctx, req, &resp);
        if (!st.ok()) {
          fprintf(stderr, "%s: ", address.c_str());
          const int code = Fail(FromGrpcStatus(st));
          // NOT_FOUND: the process runs but does not know the service.
          exit_code = std::max(exit_code, code == kUsage ? kServerError : code);
          continue;
        }
        const std::string status =
            grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status());
        if (g.json) {
          printf("{\"address\":\"%s\",\"service\":\"%s\",\"status\":\"%s\"}\n", address.c_str(),
                 o->service.c_str(), status.c_str());
        } else {
          printf("%s %s %s\n", address.c_str(), o->service.empty() ? "-" : o->service.c_str(),
                 status.c_str());
        }
        if (resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
          exit_code = std::max<int>(exit_code, kServerError);
        }
      }
      return exit_code;
    };
  });
}

}  // namespace dash::ctl
