// dashctl verify: do the replicas of each shard hold the same state?
//
// Reads the placement from --controlplane, asks every healthy replica of each
// shard for its state digest (NodeAdmin.GetReplicaChecksum) and compares the
// digests of replicas at the same LSN. Under writes the replicas of a shard are
// rarely at the same LSN at the same instant, so it asks again (up to
// --attempts times, 100 ms apart) until they are; a shard whose replicas never
// line up is reported as not compared.
//
// Exit codes: 0 every shard compared and agreed; 1 a shard diverged or could
// not be compared; 3 the control plane could not be reached.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/progress.h"
#include "dash/v1/node.grpc.pb.h"
#include "dash/v1/placement.grpc.pb.h"
#include "dashctl/common.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "nlohmann/json.hpp"

namespace dash::ctl {
namespace {

struct VerifyOptions {
  int attempts = 50;
};

int RunVerify(const GlobalOptions& g, const VerifyOptions& o) {
  auto cp = v1::ControlPlane::NewStub(ConnectControlPlane(g));
  v1::Placement placement;
  {
    grpc::ClientContext ctx;
    SetDeadline(&ctx, g);
    grpc::Status st = cp->GetPlacement(&ctx, v1::GetPlacementRequest(), &placement);
    if (!st.ok()) return Fail(FromGrpcStatus(st, &ctx));
  }
  std::map<std::string, std::string> address;
  std::map<std::string, bool> healthy;
  for (const auto& n : placement.nodes()) {
    address[n.node_id()] = n.address();
    healthy[n.node_id()] = n.health() == v1::NODE_HEALTH_HEALTHY;
  }
  bool all_agree = true;
  nlohmann::json report = nlohmann::json::array();
  Progress progress("verify", placement.shards_size(), "shards");
  for (const v1::ShardEntry& shard : placement.shards()) {
    std::vector<std::string> nodes, skipped;
    for (const auto& r : shard.replicas()) {
      (healthy[r.node_id()] ? nodes : skipped).push_back(r.node_id());
    }
    std::vector<v1::ReplicaChecksum> sums;
    std::string error;
    bool aligned = false;
    for (int attempt = 0; attempt < o.attempts && !aligned; ++attempt) {
      if (attempt > 0) absl::SleepFor(absl::Milliseconds(100));
      sums.clear();
      error.clear();
      for (const std::string& node : nodes) {
        auto admin = v1::NodeAdmin::NewStub(ConnectTo(g, address[node]));
        v1::ReplicaChecksumRequest req;
        req.set_shard(shard.shard());
        v1::ReplicaChecksum sum;
        grpc::ClientContext ctx;
        SetDeadline(&ctx, g);
        grpc::Status st = admin->GetReplicaChecksum(&ctx, req, &sum);
        if (!st.ok()) {
          error = absl::StrCat(node, ": ", st.error_message());
          break;
        }
        sums.push_back(sum);
      }
      if (!error.empty()) continue;
      aligned = true;
      for (const auto& s : sums) aligned = aligned && s.last_lsn() == sums[0].last_lsn();
    }
    nlohmann::json entry = {{"shard", shard.shard()}, {"epoch", shard.epoch()}};
    std::vector<std::string> parts;
    for (const auto& s : sums) {
      entry["replicas"].push_back({{"node_id", s.node_id()},
                                   {"last_lsn", s.last_lsn()},
                                   {"sha256", s.sha256()},
                                   {"keys", s.keys()}});
      parts.push_back(
          absl::StrCat(s.node_id(), " lsn ", s.last_lsn(), " ", s.sha256().substr(0, 16)));
    }
    if (!skipped.empty()) entry["skipped_unhealthy"] = skipped;
    std::string verdict;
    if (!error.empty()) {
      verdict = "unreachable";
      all_agree = false;
      printf("shard %u: NOT COMPARED: %s\n", shard.shard(), error.c_str());
    } else if (!aligned) {
      verdict = "not_compared";
      all_agree = false;
      printf("shard %u: NOT COMPARED: replicas stayed at different LSNs (writes in flight): %s\n",
             shard.shard(), absl::StrJoin(parts, ", ").c_str());
    } else {
      bool same = true;
      for (const auto& s : sums) same = same && s.sha256() == sums[0].sha256();
      verdict = same ? "agree" : "diverged";
      all_agree = all_agree && same;
      if (!g.json) {
        if (same) {
          printf("shard %u: lsn %lu: %zu replicas agree (sha256 %s, %lu keys)%s\n", shard.shard(),
                 static_cast<unsigned long>(sums.empty() ? 0 : sums[0].last_lsn()), sums.size(),
                 sums.empty() ? "-" : sums[0].sha256().substr(0, 16).c_str(),
                 static_cast<unsigned long>(sums.empty() ? 0 : sums[0].keys()),
                 skipped.empty()
                     ? ""
                     : absl::StrCat("; unhealthy, not checked: ", absl::StrJoin(skipped, ","))
                           .c_str());
        } else {
          printf("shard %u: DIVERGED at lsn %lu: %s\n", shard.shard(),
                 static_cast<unsigned long>(sums[0].last_lsn()),
                 absl::StrJoin(parts, ", ").c_str());
        }
      }
    }
    entry["verdict"] = verdict;
    report.push_back(entry);
    progress.Add(1);
  }
  progress.Finish(all_agree ? " done" : " done, with differences");
  if (g.json) printf("%s\n", report.dump(1).c_str());
  return all_agree ? kOk : kServerError;
}

}  // namespace

void AddVerifyCommand(CLI::App& app, GlobalOptions& g, std::function<int()>* run) {
  auto o = std::make_shared<VerifyOptions>();
  CLI::App* verify = app.add_subcommand(
      "verify", "Compare the state digests of each shard's replicas at the same LSN");
  verify
      ->add_option("--attempts", o->attempts,
                   "Tries, 100 ms apart, to find a shard's replicas at one LSN")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  verify->callback([&g, o, run] { *run = [&g, o] { return RunVerify(g, *o); }; });
}

}  // namespace dash::ctl
