// dashctl backup archive: continuous log archiving into a backup repository
// (node/backup/log_archive.h), and dashctl restore: the plan of a
// point-in-time restore (node/backup/pitr.h) and the servers' flags to
// carry it out.
//
// The archiver pulls each shard's log from its leader as a follower does
// (Replication.PullLog with an admin token; it counts toward no commit),
// syncs what it receives to the shard's tail segment, and seals committed
// records into segments. It follows leadership changes through the
// placement and repairs a tail that diverged from a new leader's log. A
// leader that no longer holds the records it needs (log retention ran past
// it) is a gap: the archiver reports it and stops, since no restore could
// cross it; take a new backup and archive into a new repository.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/status_macros.h"
#include "dash/v1/node.grpc.pb.h"
#include "dash/v1/placement.grpc.pb.h"
#include "dashctl/common.h"
#include "grpcpp/client_context.h"
#include "nlohmann/json.hpp"
#include "node/backup/log_archive.h"
#include "node/backup/pitr.h"
#include "node/backup/repository.h"

namespace dash::ctl {
namespace {

using backup::Repository;

std::atomic<bool> g_stop{false};
extern "C" void OnStopSignal(int) { g_stop = true; }

struct ArchiveOptions {
  std::string dest;
  double seal_interval_s = 10;
};

// Where shard `shard` is led now: (epoch, address), or UNAVAILABLE.
absl::StatusOr<std::pair<uint64_t, std::string>> LeaderOf(const v1::Placement& p, uint32_t shard) {
  for (const v1::ShardEntry& s : p.shards()) {
    if (s.shard() != shard) continue;
    for (const v1::NodeEntry& n : p.nodes()) {
      if (n.node_id() == s.leader_node_id()) return std::make_pair(s.epoch(), n.address());
    }
  }
  return absl::UnavailableError(absl::StrCat("shard ", shard, " has no leader"));
}

// Archives one shard until g_stop, or a gap or damage (returned).
absl::Status ArchiveShard(const GlobalOptions& g, const ArchiveOptions& o, const Repository& repo,
                          uint32_t shard, std::mutex* print_mu) {
  DASH_ASSIGN_OR_RETURN(backup::ShardArchive archive,
                        backup::ShardArchive::Open(repo.dir(), shard));
  auto say = [&](const std::string& line) {
    std::lock_guard<std::mutex> l(*print_mu);
    fprintf(stderr, "shard %u: %s\n", shard, line.c_str());
  };
  // An empty archive starts where the newest backup ends.
  uint64_t start_lsn = 1;
  uint64_t start_prev_epoch = 0;
  if (archive.last_lsn() == 0) {
    absl::StatusOr<std::vector<backup::Manifest>> all = repo.List();
    if (all.ok() && !all->empty()) {
      for (const backup::ShardCut& c : all->back().shards) {
        if (c.shard == shard && c.last_lsn > 0) {
          start_lsn = c.last_lsn + 1;
          start_prev_epoch = c.last_epoch;
        }
      }
    }
  }
  absl::Time last_seal = absl::Now();
  uint64_t commit_lsn = 0;
  absl::Duration backoff = absl::Milliseconds(100);
  while (!g_stop) {
    absl::StatusOr<v1::Placement> placement = ReadPlacement(g);
    absl::StatusOr<std::pair<uint64_t, std::string>> leader =
        placement.ok() ? LeaderOf(*placement, shard) : placement.status();
    if (!leader.ok()) {
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(2));
      continue;
    }
    const auto& [epoch, address] = *leader;
    auto stub = v1::Replication::NewStub(ConnectTo(g, address));
    v1::PullLogRequest request;
    request.set_shard(shard);
    request.set_epoch(epoch);
    request.set_from_lsn(archive.last_lsn() == 0 ? start_lsn : archive.last_lsn() + 1);
    request.set_prev_epoch(archive.last_lsn() == 0 ? start_prev_epoch : archive.last_epoch());
    request.set_follower_node_id("archiver");
    grpc::ClientContext ctx;
    auto reader = stub->PullLog(&ctx, request);
    v1::PullLogResponse response;
    absl::Status failed;
    while (reader->Read(&response)) {
      backoff = absl::Milliseconds(100);
      if (g_stop) {
        ctx.TryCancel();
        break;
      }
      std::vector<std::string> records(response.records().begin(), response.records().end());
      failed = archive.Append(records);
      if (!failed.ok()) {
        ctx.TryCancel();
        break;
      }
      commit_lsn = std::max(commit_lsn, response.commit_lsn());
      if (archive.tail_records() >= 10000 ||
          absl::Now() - last_seal >= absl::Seconds(o.seal_interval_s)) {
        failed = archive.Seal(commit_lsn);
        last_seal = absl::Now();
        if (!failed.ok()) {
          ctx.TryCancel();
          break;
        }
      }
    }
    absl::Status finished = FromGrpcStatus(reader->Finish(), &ctx);
    DASH_RETURN_IF_ERROR(failed);
    DASH_RETURN_IF_ERROR(archive.Seal(commit_lsn));
    if (g_stop) break;
    if (absl::IsOutOfRange(finished)) {
      if (archive.last_lsn() == 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("shard ", shard, ": ", finished.message(),
                         ". An empty archive starts at the newest backup's cut: take a backup "
                         "(dashctl backup create --dest=",
                         repo.dir(), "), then start the archiver"));
      }
      return absl::DataLossError(absl::StrCat(
          "shard ", shard, ": archive gap: ", finished.message(),
          ". No restore can cross it: take a new backup (dashctl backup create) and archive "
          "into a new repository"));
    }
    if (absl::IsFailedPrecondition(finished) && absl::StrContains(finished.message(), "diverged")) {
      // The tail holds records the new leader does not: divergence repair.
      v1::EpochEndOffsetRequest ask;
      ask.set_shard(shard);
      ask.set_epoch(epoch);
      ask.set_requested_epoch(archive.last_epoch());
      v1::EpochEndOffsetResponse answer;
      grpc::ClientContext actx;
      SetDeadline(&actx, g);
      absl::Status asked = FromGrpcStatus(stub->EpochEndOffset(&actx, ask, &answer), &actx);
      if (asked.ok()) {
        const uint64_t to = std::min(answer.end_lsn(), archive.EpochEnd(answer.epoch()));
        say(absl::StrCat("the tail diverged from the leader of epoch ", epoch,
                         "'s log: dropping lsn ", to + 1, " to ", archive.last_lsn()));
        DASH_RETURN_IF_ERROR(archive.TruncateAfter(to));
      }
      continue;
    }
    if (!finished.ok()) {
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(2));
    }
  }
  say(absl::StrCat("archived to lsn ", archive.last_lsn(), " (sealed to ", archive.sealed_lsn(),
                   ")"));
  return absl::OkStatus();
}

int RunArchive(const GlobalOptions& g, const ArchiveOptions& o) {
  absl::StatusOr<Repository> repo = Repository::Open(o.dest, /*create=*/true);
  if (!repo.ok()) return Fail(repo.status());
  absl::StatusOr<Repository::WriterLock> lock = repo->LockForArchiving();
  if (!lock.ok()) return Fail(lock.status());
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
  // A cluster not created or not reachable yet is waited for (an archiver
  // may start with it), saying so every 10 s.
  absl::StatusOr<v1::Placement> placement = ReadPlacement(g);
  for (absl::Time said = absl::InfinitePast(); !placement.ok() && !g_stop;
       placement = ReadPlacement(g)) {
    if (absl::Now() - said >= absl::Seconds(10)) {
      fprintf(stderr, "waiting for the cluster at %s: %s\n", g.controlplane.c_str(),
              std::string(placement.status().message()).c_str());
      said = absl::Now();
    }
    absl::SleepFor(absl::Milliseconds(500));
  }
  if (!placement.ok()) return Fail(placement.status());
  fprintf(stderr, "archiving the log of %u shards into %s (stop with SIGINT or SIGTERM)\n",
          placement->shard_count(), o.dest.c_str());
  std::mutex print_mu;
  std::mutex result_mu;
  absl::Status result;
  std::vector<std::thread> threads;
  for (uint32_t shard = 0; shard < placement->shard_count(); ++shard) {
    threads.emplace_back([&, shard] {
      absl::Status st = ArchiveShard(g, o, *repo, shard, &print_mu);
      if (!st.ok()) {
        std::lock_guard<std::mutex> l(result_mu);
        if (result.ok()) result = st;
        g_stop = true;  // A gap or damage stops the archiver: it must be seen.
      }
    });
  }
  for (std::thread& t : threads) t.join();
  return result.ok() ? kOk : Fail(result);
}

struct RestoreOptions {
  std::string from;
  std::string backup;
  std::string to_time;
  std::string to_token;
  std::string node_map;
  bool to_backup = false;
  bool force = false;
};

std::string MicrosText(int64_t micros) {
  if (micros == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMicros(micros),
                          absl::UTCTimeZone());
}

int RunRestore(const GlobalOptions& g, const RestoreOptions& o) {
  backup::RestoreTarget target;
  target.kind = backup::RestoreTarget::Kind::kEnd;
  if (o.to_backup) target.kind = backup::RestoreTarget::Kind::kBackup;
  if (!o.to_time.empty()) {
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, o.to_time, &target.time, &err)) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("--to-time: \"", o.to_time, "\" is not RFC 3339 (", err, ")")));
    }
    target.kind = backup::RestoreTarget::Kind::kTime;
  }
  if (!o.to_token.empty()) {
    absl::StatusOr<std::map<uint32_t, std::pair<uint64_t, uint64_t>>> tokens =
        backup::ParseTokens(o.to_token);
    if (!tokens.ok()) return Fail(tokens.status());
    target.kind = backup::RestoreTarget::Kind::kTokens;
    target.tokens = *std::move(tokens);
  }
  absl::StatusOr<Repository> repo = Repository::Open(o.from, /*create=*/false);
  if (!repo.ok()) return Fail(repo.status());
  absl::StatusOr<backup::RestorePlan> plan = backup::PlanRestore(*repo, o.backup, target);
  if (!plan.ok()) return Fail(plan.status());
  absl::StatusOr<std::map<std::string, std::string>> node_map = backup::ParseNodeMap(o.node_map);
  if (!node_map.ok()) return Fail(node_map.status());
  if (absl::Status st = backup::CheckNodeMap(plan->backup, *node_map); !st.ok()) return Fail(st);

  // A damaged backup is refused here, as the servers would refuse it.
  absl::StatusOr<std::vector<backup::Damage>> damage = repo->Verify({plan->backup.id});
  if (!damage.ok()) return Fail(damage.status());
  if (!damage->empty()) {
    for (const backup::Damage& d : *damage) {
      fprintf(stderr, "damaged: backup %s%s %s (%s): %s\n", d.backup_id.c_str(),
              d.shard ? absl::StrCat(" shard ", *d.shard).c_str() : "", d.file.c_str(),
              d.path.c_str(), d.problem.c_str());
    }
    return Fail(absl::DataLossError(
        absl::StrCat("backup ", plan->backup.id, " is damaged: not restoring from it")));
  }
  // Restore builds a new cluster: one already running at --controlplane is
  // refused unless forced.
  {
    GlobalOptions quick = g;
    quick.timeout_s = std::min(g.timeout_s, 3.0);
    absl::StatusOr<v1::Placement> running = ReadPlacement(quick);
    if (running.ok() && !o.force) {
      return Fail(absl::FailedPreconditionError(absl::StrCat(
          "the control plane at ", g.controlplane, " runs a cluster of ", running->shard_count(),
          " shards: a restore builds a new cluster from empty data directories. Stop this one "
          "(or point --controlplane at the new one), or pass --force to plan anyway")));
    }
  }
  std::vector<std::string> flags = {absl::StrCat("--restore_from=", repo->dir()),
                                    absl::StrCat("--restore_backup=", plan->backup.id)};
  bool replays = false;
  for (const backup::ShardPlan& s : plan->shards) replays = replays || s.to_lsn != s.cut_lsn;
  if (replays) flags.push_back(absl::StrCat("--restore_to=", plan->Tokens()));
  if (!node_map->empty()) flags.push_back(absl::StrCat("--restore_node_map=", o.node_map));
  if (g.json) {
    nlohmann::json j;
    j["backup"] = plan->backup.id;
    j["restore_to"] = plan->Tokens();
    j["flags"] = flags;
    for (const backup::ShardPlan& s : plan->shards) {
      j["shards"].push_back({{"shard", s.shard},
                             {"cut_lsn", s.cut_lsn},
                             {"to_lsn", s.to_lsn},
                             {"to_epoch", s.to_epoch},
                             {"to_time", MicrosText(s.to_time_micros)},
                             {"replayed_records", s.to_lsn - s.cut_lsn},
                             {"archived_lsn", s.archived_lsn}});
    }
    printf("%s\n", j.dump(2).c_str());
    return kOk;
  }
  printf("restore from backup %s (taken %s), verified\n", plan->backup.id.c_str(),
         absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", plan->backup.created, absl::UTCTimeZone()).c_str());
  printf("%-6s %12s %12s %8s %10s %-24s %12s\n", "shard", "backup lsn", "restore to", "epoch",
         "replayed", "last commit", "archived to");
  for (const backup::ShardPlan& s : plan->shards) {
    printf("%-6u %12lu %12lu %8lu %10lu %-24s %12lu\n", s.shard, s.cut_lsn, s.to_lsn, s.to_epoch,
           s.to_lsn - s.cut_lsn, MicrosText(s.to_time_micros).c_str(), s.archived_lsn);
  }
  printf(
      "\nStart a new control plane and every node (each with its --node_id from the backup, "
      "or as --node-map renames it, and an empty --data_dir) with:\n  %s\n",
      absl::StrJoin(flags, " ").c_str());
  return kOk;
}

}  // namespace

void AddRestoreCommands(CLI::App& app, GlobalOptions& g, std::function<int()>* run) {
  CLI::App* backup = app.get_subcommand("backup");
  auto a = std::make_shared<ArchiveOptions>();
  CLI::App* archive = backup->add_subcommand(
      "archive", "Archive every shard's committed log into --dest continuously (until stopped)");
  archive->add_option("--dest", a->dest, "The backup repository (a directory)")->required();
  archive
      ->add_option("--seal-interval", a->seal_interval_s,
                   "Seconds between sealing the committed records received into a segment")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  archive->callback([&g, a, run] { *run = [&g, a] { return RunArchive(g, *a); }; });

  auto o = std::make_shared<RestoreOptions>();
  CLI::App* restore = app.add_subcommand(
      "restore",
      "Plan a restore from a backup repository, to a point in time with its log archive; "
      "verify the backup and print the servers' flags");
  restore->add_option("--from", o->from, "The backup repository (a directory)")->required();
  restore->add_option("--backup", o->backup,
                      "The backup to start from (default: the newest that reaches the target)");
  auto* to_time = restore->add_option(
      "--to-time", o->to_time, "Restore the writes committed at or before this RFC 3339 time");
  auto* to_token = restore->add_option(
      "--to-token", o->to_token,
      "Restore up to these commit tokens (shard:epoch:lsn,...); other shards to the archive's end");
  auto* to_backup =
      restore->add_flag("--to-backup", o->to_backup, "Restore the backup's cut only (no replay)");
  to_time->excludes(to_token)->excludes(to_backup);
  to_token->excludes(to_backup);
  restore->add_option("--node-map", o->node_map,
                      "Restore into nodes with other ids: OLD=NEW,... (the backup's id = the new)");
  restore->add_flag("--force", o->force, "Plan even though a cluster answers at --controlplane");
  restore->callback([&g, o, run] { *run = [&g, o] { return RunRestore(g, *o); }; });
}

}  // namespace dash::ctl
