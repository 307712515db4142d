// dashctl placement commands: the control plane's admin API
// (dash.v1.ControlPlane, proto/dash/v1/placement.proto) for operators.
//
//   placement show | placement watch [--count N] [--after-version V]
//     (per replica: role, in-sync flag, last LSN and a follower's lag in
//     records, bytes and seconds; with --json the Placement proto, whose
//     ReplicaEntry carries in_sync and lag)
//   nodes
//   failover --shard N [--epoch E]
//   promote --shard N --node ID [--accept-data-loss] [--epoch E]
//   transfer --shard N --node ID [--timeout-ms T] [--epoch E]
//   drain --node ID [--undrain]
//   replicas add|remove --shard N --node ID [--epoch E]
//   replicas move --shard N --from ID --to ID [--epoch E]
//
// They talk to --controlplane. With --json each prints the response proto as
// one JSON document (watch: one compact document per line); otherwise a
// table or the change's summary lines.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/grpc_status.h"
#include "dash/v1/placement.grpc.pb.h"
#include "dashctl/common.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/client_context.h"

namespace dash::ctl {
namespace {

using Stub = v1::ControlPlane::Stub;

// The server's default transfer timeout (TransferLeaderRequest.timeout_ms 0).
constexpr uint32_t kDefaultTransferTimeoutMs = 5000;

// Prints rows as left-aligned columns two spaces apart; the last column is
// not padded.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    printf("%s\n", line.c_str());
  }
}

const char* HealthName(v1::NodeHealth h) {
  switch (h) {
    case v1::NODE_HEALTH_HEALTHY:
      return "healthy";
    case v1::NODE_HEALTH_UNHEALTHY:
      return "unhealthy";
    default:
      return "unknown";
  }
}

// "lag=12r/3400B/0.2s": how far a follower trails its leader, as the leader
// last reported it (records, bytes, seconds); "lag=?" when it reported none
// (an older node).
std::string LagText(const v1::ReplicaEntry& r) {
  if (!r.has_lag()) return "lag=?";
  char seconds[32];
  snprintf(seconds, sizeof(seconds), "%.1fs", r.lag().lag_seconds());
  return absl::StrCat("lag=", r.lag().lag_records(), "r/", r.lag().lag_bytes(), "B/", seconds);
}

// "n2(F,in-sync,lsn=118,lag=2r/310B/0.1s)": role, sync state (a leader is in
// sync by definition), last LSN, a follower's lag, and markers for an
// unhealthy node, a transfer target and a replica being moved away; a
// follower that is not pulling its leader's log says what it does instead
// ("backoff", "cut", "snapshot", ...).
std::string ReplicaCell(const v1::ShardEntry& s, const v1::ReplicaEntry& r) {
  std::vector<std::string> parts;
  const bool follower = r.role() == v1::REPLICA_ROLE_FOLLOWER;
  switch (r.role()) {
    case v1::REPLICA_ROLE_LEADER:
      parts.push_back("L");
      break;
    case v1::REPLICA_ROLE_FOLLOWER:
      parts.push_back("F");
      parts.push_back(r.in_sync() ? "in-sync" : "behind");
      break;
    default:
      parts.push_back("?");
      break;
  }
  parts.push_back(absl::StrCat("lsn=", r.last_lsn()));
  if (follower) parts.push_back(LagText(r));
  if (follower && r.has_follow() && r.follow().state() != "pulling") {
    parts.push_back(r.follow().state());  // Not pulling: why, below the table.
  }
  if (r.health() == v1::NODE_HEALTH_UNHEALTHY) parts.push_back("unhealthy");
  if (!s.transfer_to().empty() && r.node_id() == s.transfer_to()) {
    parts.push_back("transfer-target");
  }
  if (!s.moving_from().empty() && r.node_id() == s.moving_from()) parts.push_back("moving-out");
  return absl::StrCat(r.node_id(), "(", absl::StrJoin(parts, ","), ")");
}

void PrintPlacement(const v1::Placement& p) {
  printf("placement version %lu, %u shards, replication factor %u\n",
         static_cast<unsigned long>(p.version()), p.shard_count(), p.replication_factor());
  if (!p.created()) {
    printf("not created yet: waiting for %u nodes (%d registered)\n", p.replication_factor(),
           p.nodes_size());
  }
  if (p.shards_size() == 0) return;
  std::vector<std::vector<std::string>> rows = {{"SHARD", "EPOCH", "LEADER", "REPLICAS"}};
  for (const auto& s : p.shards()) {
    std::vector<std::string> cells;
    for (const auto& r : s.replicas()) cells.push_back(ReplicaCell(s, r));
    // A leader that has not yet reported taking writes at this epoch.
    const bool pending = !s.leader_node_id().empty() && s.leader_ready_epoch() != s.epoch();
    rows.push_back({absl::StrCat(s.shard()), absl::StrCat(s.epoch()),
                    s.leader_node_id().empty()
                        ? "-"
                        : absl::StrCat(s.leader_node_id(), pending ? " (not ready)" : ""),
                    absl::StrJoin(cells, " ")});
  }
  PrintTable(rows);
  // Followers whose log stream to their leader is not open, and why.
  for (const auto& s : p.shards()) {
    for (const auto& r : s.replicas()) {
      if (r.role() != v1::REPLICA_ROLE_FOLLOWER || !r.has_follow() ||
          r.follow().state() == "pulling") {
        continue;
      }
      const v1::FollowerStatus& f = r.follow();
      printf(
          "shard %u %s: not pulling from %s (%s, %lu failed attempts, leader silent %.1fs)%s%s\n",
          s.shard(), r.node_id().c_str(), s.leader_node_id().c_str(), f.state().c_str(),
          static_cast<unsigned long>(f.retries()),
          static_cast<double>(f.leader_silent_ms()) / 1000.0, f.last_error().empty() ? "" : ": ",
          f.last_error().c_str());
    }
  }
}

std::string HeartbeatCell(const google::protobuf::Timestamp& t) {
  using google::protobuf::util::TimeUtil;
  if (t.seconds() == 0 && t.nanos() == 0) return "never";
  const double ago_s =
      static_cast<double>(TimeUtil::DurationToMilliseconds(TimeUtil::GetCurrentTime() - t)) /
      1000.0;
  char ago[32];
  snprintf(ago, sizeof(ago), "%.1fs ago", std::max(0.0, ago_s));
  return absl::StrCat(TimeUtil::ToString(t), " (", ago, ")");
}

void PrintNodes(const v1::ListNodesResponse& resp) {
  std::vector<std::vector<std::string>> rows = {
      {"NODE", "ADDRESS", "HEALTH", "LAST_HEARTBEAT", "DRAINING"}};
  for (const auto& n : resp.nodes()) {
    rows.push_back({n.node_id(), n.address(), HealthName(n.health()),
                    HeartbeatCell(n.last_heartbeat()), n.draining() ? "yes" : "no"});
  }
  PrintTable(rows);
}

void PrintChange(const v1::PlacementChange& c) {
  for (const auto& line : c.summary()) printf("%s\n", line.c_str());
  for (const auto& l : c.lost()) {
    printf("LOST shard %u: LSNs (%lu, %lu] reported by %s\n", l.shard(),
           static_cast<unsigned long>(l.from_lsn()), static_cast<unsigned long>(l.to_lsn()),
           l.reported_by().c_str());
  }
  printf("shards changed: %s\n",
         c.shards_changed().empty() ? "none" : absl::StrJoin(c.shards_changed(), ", ").c_str());
}

absl::StatusOr<v1::Placement> GetPlacement(Stub& stub, const GlobalOptions& g) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx, g);
  v1::Placement p;
  grpc::Status st = stub.GetPlacement(&ctx, v1::GetPlacementRequest(), &p);
  if (!st.ok()) return FromGrpcStatus(st, &ctx);
  return p;
}

int RunShow(const GlobalOptions& g) {
  auto stub = v1::ControlPlane::NewStub(ConnectControlPlane(g));
  absl::StatusOr<v1::Placement> p = GetPlacement(*stub, g);
  if (!p.ok()) return Fail(p.status());
  if (g.json) {
    printf("%s\n", ToJson(*p, true).c_str());
  } else {
    PrintPlacement(*p);
  }
  return kOk;
}

struct WatchOptions {
  uint64_t count = 0;  // 0: until interrupted or the server ends the stream.
  uint64_t after_version = 0;
};

int RunWatch(const GlobalOptions& g, const WatchOptions& o) {
  auto stub = v1::ControlPlane::NewStub(ConnectControlPlane(g));
  grpc::ClientContext ctx;  // No deadline: a watch lasts as long as it is wanted.
  v1::WatchPlacementRequest req;
  req.set_after_version(o.after_version);
  std::unique_ptr<grpc::ClientReader<v1::Placement>> reader = stub->WatchPlacement(&ctx, req);
  v1::Placement p;
  uint64_t seen = 0;
  bool enough = false;
  while (reader->Read(&p)) {
    if (g.json) {
      printf("%s\n", ToJson(p, false).c_str());
    } else {
      if (seen > 0) printf("\n");
      printf("version %lu\n", static_cast<unsigned long>(p.version()));
      PrintPlacement(p);
    }
    fflush(stdout);
    if (o.count > 0 && ++seen >= o.count) {
      enough = true;
      ctx.TryCancel();
      break;
    }
  }
  grpc::Status st = reader->Finish();
  if (enough || st.ok()) return kOk;
  return Fail(FromGrpcStatus(st, &ctx));
}

int RunNodes(const GlobalOptions& g) {
  auto stub = v1::ControlPlane::NewStub(ConnectControlPlane(g));
  grpc::ClientContext ctx;
  SetDeadline(&ctx, g);
  v1::ListNodesResponse resp;
  grpc::Status st = stub->ListNodes(&ctx, v1::ListNodesRequest(), &resp);
  if (!st.ok()) return Fail(FromGrpcStatus(st, &ctx));
  if (g.json) {
    printf("%s\n", ToJson(resp, true).c_str());
  } else {
    PrintNodes(resp);
  }
  return kOk;
}

// One mutating call: `call` issues it on a context whose deadline is
// --timeout plus `extra`. On success prints the PlacementChange; on failure
// prints the error (and `explain`'s hint, if any) and maps it to an exit code.
using ChangeCall = std::function<grpc::Status(Stub&, grpc::ClientContext*, v1::PlacementChange*)>;
using Explain = std::function<void(Stub&, const absl::Status&)>;

int RunChange(const GlobalOptions& g, std::chrono::milliseconds extra, const ChangeCall& call,
              const Explain& explain = nullptr) {
  auto stub = v1::ControlPlane::NewStub(ConnectControlPlane(g));
  v1::PlacementChange change;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, g, extra);
  grpc::Status st = call(*stub, &ctx, &change);
  if (!st.ok()) {
    absl::Status status = FromGrpcStatus(st, &ctx);
    const int code = Fail(status);
    if (explain) explain(*stub, status);
    return code;
  }
  if (g.json) {
    printf("%s\n", ToJson(change, true).c_str());
  } else {
    PrintChange(change);
  }
  return kOk;
}

struct ShardOptions {
  uint32_t shard = 0;
  std::string node;
  std::string from;
  std::string to;
  uint64_t epoch = 0;  // expected_epoch; 0: any.
  bool accept_data_loss = false;
  uint32_t timeout_ms = 0;
  bool undrain = false;
};

// A promotion refused because the target lacks LSNs another replica reported
// (checked against the current table, not the message): names the flag.
void ExplainPromote(const GlobalOptions& g, const ShardOptions& o, Stub& stub,
                    const absl::Status& status) {
  if (status.code() != absl::StatusCode::kFailedPrecondition || o.accept_data_loss) return;
  absl::StatusOr<v1::Placement> p = GetPlacement(stub, g);
  if (!p.ok()) return;
  for (const auto& s : p->shards()) {
    if (s.shard() != o.shard) continue;
    const v1::ReplicaEntry* target = nullptr;
    uint64_t highest = 0;
    for (const auto& r : s.replicas()) {
      if (r.node_id() == o.node) target = &r;
      highest = std::max(highest, r.last_lsn());
    }
    if (target != nullptr && target->last_lsn() < highest) {
      fprintf(stderr,
              "dashctl: %s lacks LSNs (%lu, %lu]; to promote it anyway and discard them, rerun "
              "with --accept-data-loss\n",
              o.node.c_str(), static_cast<unsigned long>(target->last_lsn()),
              static_cast<unsigned long>(highest));
    }
  }
}

// Adds the options of a shard-level command.
void AddShard(CLI::App* cmd, ShardOptions* o) {
  cmd->add_option("--shard", o->shard, "Shard")->required();
}
void AddNode(CLI::App* cmd, ShardOptions* o, const std::string& what) {
  cmd->add_option("--node", o->node, what)->required();
}
void AddEpoch(CLI::App* cmd, ShardOptions* o) {
  cmd->add_option("--epoch", o->epoch,
                  "Refuse unless the shard is at this epoch (expected_epoch; 0: any)");
}

void AddReplicaCommands(CLI::App& app, GlobalOptions& g, std::function<int()>* run) {
  CLI::App* replicas = app.add_subcommand("replicas", "Change a shard's replica set");
  replicas->require_subcommand(1);

  auto ao = std::make_shared<ShardOptions>();
  CLI::App* add = replicas->add_subcommand("add", "Add a follower (in sync once caught up)");
  AddShard(add, ao.get());
  AddNode(add, ao.get(), "Node to host the new replica");
  AddEpoch(add, ao.get());
  add->callback([&g, ao, run] {
    *run = [&g, ao] {
      v1::AddReplicaRequest req;
      req.set_shard(ao->shard);
      req.set_node_id(ao->node);
      req.set_expected_epoch(ao->epoch);
      return RunChange(g, {}, [&](Stub& s, grpc::ClientContext* c, v1::PlacementChange* r) {
        return s.AddReplica(c, req, r);
      });
    };
  });

  auto ro = std::make_shared<ShardOptions>();
  CLI::App* remove =
      replicas->add_subcommand("remove", "Remove a follower (the leader: transfer first)");
  AddShard(remove, ro.get());
  AddNode(remove, ro.get(), "Node whose replica to remove");
  AddEpoch(remove, ro.get());
  remove->callback([&g, ro, run] {
    *run = [&g, ro] {
      v1::RemoveReplicaRequest req;
      req.set_shard(ro->shard);
      req.set_node_id(ro->node);
      req.set_expected_epoch(ro->epoch);
      return RunChange(g, {}, [&](Stub& s, grpc::ClientContext* c, v1::PlacementChange* r) {
        return s.RemoveReplica(c, req, r);
      });
    };
  });

  auto mo = std::make_shared<ShardOptions>();
  CLI::App* move = replicas->add_subcommand(
      "move", "Add a replica on --to; remove the one on --from once the new one is in sync");
  AddShard(move, mo.get());
  move->add_option("--from", mo->from, "Node whose replica moves away")->required();
  move->add_option("--to", mo->to, "Node to host the replica")->required();
  AddEpoch(move, mo.get());
  move->callback([&g, mo, run] {
    *run = [&g, mo] {
      v1::MoveReplicaRequest req;
      req.set_shard(mo->shard);
      req.set_from_node_id(mo->from);
      req.set_to_node_id(mo->to);
      req.set_expected_epoch(mo->epoch);
      return RunChange(g, {}, [&](Stub& s, grpc::ClientContext* c, v1::PlacementChange* r) {
        return s.MoveReplica(c, req, r);
      });
    };
  });
}

}  // namespace

void AddPlacementCommands(CLI::App& app, GlobalOptions& g, std::function<int()>* run) {
  CLI::App* placement =
      app.add_subcommand("placement", "Show or watch the control plane's placement table");
  placement->require_subcommand(1);
  CLI::App* show = placement->add_subcommand("show", "Print the placement table");
  show->callback([&g, run] { *run = [&g] { return RunShow(g); }; });

  auto wo = std::make_shared<WatchOptions>();
  CLI::App* watch = placement->add_subcommand(
      "watch", "Print the placement table, then every new version as it is persisted");
  watch->add_option("--count", wo->count, "Stop after this many versions (0: never)")
      ->capture_default_str();
  watch->add_option("--after-version", wo->after_version,
                    "Print nothing until the table is newer than this version");
  watch->callback([&g, wo, run] { *run = [&g, wo] { return RunWatch(g, *wo); }; });

  CLI::App* nodes = app.add_subcommand("nodes", "List the registered nodes and their health");
  nodes->callback([&g, run] { *run = [&g] { return RunNodes(g); }; });

  auto fo = std::make_shared<ShardOptions>();
  CLI::App* failover =
      app.add_subcommand("failover",
                         "Replace the shard's leader now with the follower holding the most "
                         "(refused unless the healthy followers intersect every majority)");
  AddShard(failover, fo.get());
  AddEpoch(failover, fo.get());
  failover->callback([&g, fo, run] {
    *run = [&g, fo] {
      v1::FailoverRequest req;
      req.set_shard(fo->shard);
      req.set_expected_epoch(fo->epoch);
      return RunChange(g, {}, [&](Stub& s, grpc::ClientContext* c, v1::PlacementChange* r) {
        return s.Failover(c, req, r);
      });
    };
  });

  auto po = std::make_shared<ShardOptions>();
  CLI::App* promote = app.add_subcommand(
      "promote", "Make a replica the leader (refused if it lacks reported LSNs)");
  AddShard(promote, po.get());
  AddNode(promote, po.get(), "Node whose replica to promote");
  promote->add_flag("--accept-data-loss", po->accept_data_loss,
                    "Promote even if it discards LSNs other replicas reported");
  AddEpoch(promote, po.get());
  promote->callback([&g, po, run] {
    *run = [&g, po] {
      v1::PromoteRequest req;
      req.set_shard(po->shard);
      req.set_node_id(po->node);
      req.set_accept_data_loss(po->accept_data_loss);
      req.set_expected_epoch(po->epoch);
      return RunChange(
          g, {},
          [&](Stub& s, grpc::ClientContext* c, v1::PlacementChange* r) {
            return s.Promote(c, req, r);
          },
          [&](Stub& s, const absl::Status& st) { ExplainPromote(g, *po, s, st); });
    };
  });

  auto to = std::make_shared<ShardOptions>();
  CLI::App* transfer = app.add_subcommand(
      "transfer", "Planned leadership transfer: the target catches up, then leads; nothing lost");
  AddShard(transfer, to.get());
  AddNode(transfer, to.get(), "Node to lead the shard");
  transfer
      ->add_option("--timeout-ms", to->timeout_ms,
                   "Abandon the transfer if the target has not caught up by then (0: 5000)")
      ->capture_default_str();
  AddEpoch(transfer, to.get());
  transfer->callback([&g, to, run] {
    *run = [&g, to] {
      v1::TransferLeaderRequest req;
      req.set_shard(to->shard);
      req.set_node_id(to->node);
      req.set_timeout_ms(to->timeout_ms);
      req.set_expected_epoch(to->epoch);
      // The call returns once the transfer completed or was abandoned.
      const uint32_t wait_ms = to->timeout_ms > 0 ? to->timeout_ms : kDefaultTransferTimeoutMs;
      return RunChange(g, std::chrono::milliseconds(wait_ms),
                       [&](Stub& s, grpc::ClientContext* c, v1::PlacementChange* r) {
                         return s.TransferLeader(c, req, r);
                       });
    };
  });

  auto dro = std::make_shared<ShardOptions>();
  CLI::App* drain = app.add_subcommand(
      "drain", "Move the leadership of every shard the node leads away and mark it draining");
  AddNode(drain, dro.get(), "Node to drain");
  drain->add_flag("--undrain", dro->undrain, "Clear the draining mark instead");
  drain->callback([&g, dro, run] {
    *run = [&g, dro] {
      v1::DrainNodeRequest req;
      req.set_node_id(dro->node);
      req.set_undrain(dro->undrain);
      // Draining transfers each shard the node leads, one default transfer
      // timeout each at worst; ask the table how many that is.
      std::chrono::milliseconds extra(0);
      if (!dro->undrain) {
        auto stub = v1::ControlPlane::NewStub(ConnectControlPlane(g));
        absl::StatusOr<v1::Placement> p = GetPlacement(*stub, g);
        if (!p.ok()) return Fail(p.status());
        int led = 0;
        for (const auto& s : p->shards()) led += s.leader_node_id() == dro->node ? 1 : 0;
        extra = std::chrono::milliseconds(static_cast<int64_t>(std::max(1, led)) *
                                          kDefaultTransferTimeoutMs);
      }
      return RunChange(g, extra, [&](Stub& s, grpc::ClientContext* c, v1::PlacementChange* r) {
        return s.DrainNode(c, req, r);
      });
    };
  });

  AddReplicaCommands(app, g, run);
}

}  // namespace dash::ctl
