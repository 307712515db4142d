// dashctl backup create|list|verify|delete|prune: cluster backups in a
// repository directory (node/backup/repository.h).
//
// create reads the placement from --controlplane and copies a checkpoint of
// each shard's leader through the Snapshots service (a checkpoint at a
// recorded log position; chunks CRC-checked, files SHA-256-checked, paced by
// the leader's --snapshot_rate_mb_per_s so live traffic keeps its share).
// Files an earlier backup already stored are linked, not copied.
//
// Exit codes: 0 done; 1 the cluster refused or failed, or verify found damage;
// 2 bad usage; 3 unreachable.
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/progress.h"
#include "common/status_macros.h"
#include "dash/v1/node.grpc.pb.h"
#include "dash/v1/placement.grpc.pb.h"
#include "dashctl/common.h"
#include "grpcpp/client_context.h"
#include "nlohmann/json.hpp"
#include "node/backup/log_archive.h"
#include "node/backup/repository.h"
#include "node/replication/snapshot_fetcher.h"

namespace dash::ctl {
namespace {

using backup::FileRef;
using backup::Manifest;
using backup::Repository;
using backup::ShardCut;

struct BackupOptions {
  std::string dest;
  std::vector<std::string> ids;
  int attempts = 3;
  std::optional<int> keep_last;
  std::string keep_within;
};

std::string Mb(uint64_t bytes) { return absl::StrFormat("%.1f MB", bytes / 1e6); }

// Copies one shard's leader checkpoint into the repository. A leader that
// changed (FAILED_PRECONDITION) or went away (UNAVAILABLE) is looked up again
// in a fresh placement, up to `attempts` times.
absl::StatusOr<ShardCut> BackupShard(const GlobalOptions& g, const BackupOptions& o,
                                     Repository& repo, const std::string& id, uint32_t shard,
                                     v1::Placement placement,
                                     replication::SnapshotFetchProgress* progress) {
  absl::Status last;
  for (int attempt = 0; attempt < o.attempts; ++attempt) {
    if (attempt > 0) {
      absl::SleepFor(absl::Seconds(1));
      DASH_ASSIGN_OR_RETURN(placement, ReadPlacement(g));
    }
    const v1::ShardEntry* entry = nullptr;
    for (const v1::ShardEntry& s : placement.shards()) {
      if (s.shard() == shard) entry = &s;
    }
    if (entry == nullptr) return absl::InternalError(absl::StrCat("shard ", shard, ": gone"));
    std::string address;
    for (const v1::NodeEntry& n : placement.nodes()) {
      if (n.node_id() == entry->leader_node_id()) address = n.address();
    }
    if (address.empty()) {
      last = absl::UnavailableError(absl::StrCat("shard ", shard, " has no leader"));
      continue;
    }
    auto stub = v1::Snapshots::NewStub(ConnectTo(g, address));
    replication::SnapshotFetchOptions fetch;
    fetch.shard = shard;
    fetch.epoch = entry->epoch();
    fetch.follower_node_id = absl::StrCat("backup/", id);
    fetch.staging_dir = repo.StagingDir(id, shard);
    fetch.progress = progress;
    fetch.reuse = [&repo](const v1::SnapshotFile& f, const std::string& path) {
      repo.LinkStored(FileRef{f.name(), f.size(), f.sha256()}, path);
    };
    absl::StatusOr<v1::SnapshotManifest> snap = replication::FetchSnapshot(stub.get(), fetch);
    if (!snap.ok()) {
      last = absl::Status(snap.status().code(),
                          absl::StrCat("shard ", shard, " from ", entry->leader_node_id(), " (",
                                       address, "): ", snap.status().message()));
      if (absl::IsFailedPrecondition(last) || absl::IsUnavailable(last) || absl::IsDataLoss(last)) {
        continue;
      }
      return last;
    }
    ShardCut cut;
    cut.shard = shard;
    cut.epoch = entry->epoch();
    cut.leader = entry->leader_node_id();
    cut.last_lsn = snap->last_lsn();
    cut.last_epoch = snap->last_epoch();
    for (const v1::SnapshotFile& f : snap->files()) {
      FileRef ref{f.name(), f.size(), f.sha256()};
      DASH_RETURN_IF_ERROR(repo.Store(fetch.staging_dir + "/" + f.name(), ref));
      cut.files.push_back(std::move(ref));
    }
    return cut;
  }
  return last;
}

// The repository at `dest` with its writer lock held (create, delete, prune).
struct WritableRepository {
  Repository repo;
  Repository::WriterLock lock;
};
absl::StatusOr<WritableRepository> OpenForWriting(const std::string& dest, bool create) {
  DASH_ASSIGN_OR_RETURN(Repository repo, Repository::Open(dest, create));
  DASH_ASSIGN_OR_RETURN(Repository::WriterLock lock, repo.LockForWriting());
  return WritableRepository{std::move(repo), std::move(lock)};
}

int RunCreate(const GlobalOptions& g, const BackupOptions& o) {
  absl::StatusOr<WritableRepository> writable = OpenForWriting(o.dest, /*create=*/true);
  if (!writable.ok()) return Fail(writable.status());
  Repository* repo = &writable->repo;
  absl::StatusOr<v1::Placement> placement = ReadPlacement(g);
  if (!placement.ok()) return Fail(placement.status());
  const absl::Time start = absl::Now();
  Manifest m;
  m.id = repo->NewId(start);
  m.created = start;
  m.dash_version = DASH_VERSION;
  m.placement_json = ToJson(*placement, /*pretty=*/false);
  m.shard_count = placement->shard_count();
  replication::SnapshotFetchProgress fetched;
  Progress progress("backup", placement->shards_size(), "shards");
  for (const v1::ShardEntry& s : placement->shards()) {
    absl::StatusOr<ShardCut> cut = BackupShard(g, o, *repo, m.id, s.shard(), *placement, &fetched);
    if (!cut.ok()) {
      progress.Finish(" failed");
      (void)repo->RemoveStaging(m.id);
      return Fail(cut.status());
    }
    m.shards.push_back(*std::move(cut));
    progress.Add(1);
  }
  progress.Finish(" done");
  if (absl::Status st = repo->Commit(m); !st.ok()) return Fail(st);
  (void)repo->RemoveStaging(m.id);
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  const uint64_t copied = fetched.bytes_received.load();
  if (g.json) {
    nlohmann::json j = {{"id", m.id},
                        {"dest", o.dest},
                        {"shards", m.shards.size()},
                        {"total_bytes", m.total_bytes()},
                        {"copied_bytes", copied},
                        {"reused_bytes", fetched.bytes_reused.load()},
                        {"seconds", secs},
                        {"mb_per_s", secs > 0 ? copied / 1e6 / secs : 0}};
    for (const ShardCut& c : m.shards) {
      j["cut"].push_back({{"shard", c.shard},
                          {"epoch", c.epoch},
                          {"leader", c.leader},
                          {"last_lsn", c.last_lsn},
                          {"last_epoch", c.last_epoch}});
    }
    printf("%s\n", j.dump(1).c_str());
  } else {
    printf("backup %s in %s: %zu shards, %s (%s copied, %s already stored), %.1f s, %.1f MB/s\n",
           m.id.c_str(), o.dest.c_str(), m.shards.size(), Mb(m.total_bytes()).c_str(),
           Mb(copied).c_str(), Mb(fetched.bytes_reused.load()).c_str(), secs,
           secs > 0 ? copied / 1e6 / secs : 0.0);
    for (const ShardCut& c : m.shards) {
      printf("  shard %u: leader %s, epoch %lu, lsn %lu, %zu files\n", c.shard, c.leader.c_str(),
             static_cast<unsigned long>(c.epoch), static_cast<unsigned long>(c.last_lsn),
             c.files.size());
    }
  }
  return kOk;
}

int RunList(const GlobalOptions& g, const BackupOptions& o) {
  absl::StatusOr<Repository> repo = Repository::Open(o.dest, /*create=*/false);
  if (!repo.ok()) return Fail(repo.status());
  absl::StatusOr<std::vector<Manifest>> all = repo->List();
  if (!all.ok()) return Fail(all.status());
  nlohmann::json out = nlohmann::json::array();
  if (!g.json) printf("%-20s %-25s %6s %12s  %s\n", "ID", "CREATED", "SHARDS", "BYTES", "LSNS");
  for (const Manifest& m : *all) {
    std::string lsns;
    nlohmann::json cut = nlohmann::json::array();
    for (const ShardCut& c : m.shards) {
      absl::StrAppend(&lsns, lsns.empty() ? "" : " ", c.shard, ":", c.epoch, ":", c.last_lsn);
      cut.push_back({{"shard", c.shard}, {"epoch", c.epoch}, {"last_lsn", c.last_lsn}});
    }
    const std::string created =
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", m.created, absl::UTCTimeZone());
    if (g.json) {
      out.push_back({{"id", m.id},
                     {"created", created},
                     {"shards", m.shards.size()},
                     {"total_bytes", m.total_bytes()},
                     {"cut", cut}});
    } else {
      printf("%-20s %-25s %6zu %12lu  %s\n", m.id.c_str(), created.c_str(), m.shards.size(),
             static_cast<unsigned long>(m.total_bytes()), lsns.c_str());
    }
  }
  if (g.json) {
    printf("%s\n", out.dump(1).c_str());
    return kOk;
  }
  // The log archive, when there is one (dashctl backup archive): how far it
  // goes, and the commit time of its newest record (its lag behind the
  // cluster's writes).
  const uint32_t shards = all->empty() ? 0 : all->back().shard_count;
  for (uint32_t shard = 0; shard < shards; ++shard) {
    absl::StatusOr<backup::ArchiveExtent> e = backup::ArchiveExtentOf(repo->dir(), shard);
    if (!e.ok()) {
      printf("%slog archive shard %u: %s\n", shard == 0 ? "\n" : "", shard,
             std::string(e.status().message()).c_str());
      continue;
    }
    if (e->last_lsn == 0) continue;
    printf(
        "%slog archive shard %u: lsn %lu to %lu (sealed to %lu in %zu segments), newest "
        "record committed %s\n",
        shard == 0 ? "\n" : "", shard, static_cast<unsigned long>(e->first_lsn),
        static_cast<unsigned long>(e->last_lsn), static_cast<unsigned long>(e->sealed_lsn),
        e->segments,
        absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMicros(e->last_time_micros),
                         absl::UTCTimeZone())
            .c_str());
  }
  return kOk;
}

int RunVerify(const GlobalOptions& g, const BackupOptions& o) {
  absl::StatusOr<Repository> repo = Repository::Open(o.dest, /*create=*/false);
  if (!repo.ok()) return Fail(repo.status());
  Progress progress("backup verify", 0, "bytes");
  uint64_t reported = 0;
  absl::StatusOr<std::vector<backup::Damage>> damage = repo->Verify(o.ids, [&](uint64_t bytes) {
    progress.Add(bytes - reported);
    reported = bytes;
  });
  progress.Finish();
  if (!damage.ok()) return Fail(damage.status());
  nlohmann::json out = nlohmann::json::array();
  for (const backup::Damage& d : *damage) {
    const std::string shard = d.shard.has_value() ? absl::StrCat(" shard ", *d.shard) : "";
    if (g.json) {
      out.push_back(
          {{"backup", d.backup_id}, {"file", d.file}, {"path", d.path}, {"problem", d.problem}});
      if (d.shard.has_value()) out.back()["shard"] = *d.shard;
    } else {
      printf("DAMAGED: backup %s%s: %s (%s): %s\n", d.backup_id.c_str(), shard.c_str(),
             d.file.c_str(), d.path.c_str(), d.problem.c_str());
    }
  }
  if (g.json) {
    printf("%s\n", out.dump(1).c_str());
  } else if (damage->empty()) {
    printf("backups in %s verified: every file present with its size and SHA-256 (%s hashed)\n",
           o.dest.c_str(), Mb(reported).c_str());
  }
  return damage->empty() ? kOk : kServerError;
}

// After backups were deleted: the log archive's sealed segments that end
// before every remaining backup's cut (per shard) serve no restore any more.
// Nothing goes while no backup remains.
absl::StatusOr<backup::ArchiveDropStats> DropUnusedArchive(const Repository& repo) {
  DASH_ASSIGN_OR_RETURN(std::vector<Manifest> left, repo.List());
  backup::ArchiveDropStats total;
  if (left.empty()) return total;
  for (uint32_t shard = 0; shard < left.front().shard_count; ++shard) {
    uint64_t oldest_cut = UINT64_MAX;
    for (const Manifest& m : left) {
      for (const ShardCut& c : m.shards) {
        if (c.shard == shard) oldest_cut = std::min(oldest_cut, c.last_lsn);
      }
    }
    if (oldest_cut == UINT64_MAX) continue;
    DASH_ASSIGN_OR_RETURN(backup::ArchiveDropStats s,
                          backup::DropArchiveBefore(repo.dir(), shard, oldest_cut));
    total.segments += s.segments;
    total.bytes += s.bytes;
  }
  return total;
}

int PrintDeleted(const GlobalOptions& g, const std::vector<std::string>& ids,
                 const Repository::DeleteStats& stats, const Repository& repo) {
  absl::StatusOr<backup::ArchiveDropStats> archive = DropUnusedArchive(repo);
  if (!archive.ok()) return Fail(archive.status());
  if (g.json) {
    printf("%s\n", nlohmann::json({{"deleted", ids},
                                   {"files_removed", stats.files_removed},
                                   {"bytes_removed", stats.bytes_removed},
                                   {"archive_segments_removed", archive->segments},
                                   {"archive_bytes_removed", archive->bytes}})
                       .dump()
                       .c_str());
  } else {
    printf("deleted %d backups; %d files no other backup uses removed (%s)\n", stats.backups,
           stats.files_removed, Mb(stats.bytes_removed).c_str());
    if (archive->segments > 0) {
      printf("log archive: %d segments older than every remaining backup removed (%s)\n",
             archive->segments, Mb(archive->bytes).c_str());
    }
  }
  return kOk;
}

int RunDelete(const GlobalOptions& g, const BackupOptions& o) {
  absl::StatusOr<WritableRepository> writable = OpenForWriting(o.dest, /*create=*/false);
  if (!writable.ok()) return Fail(writable.status());
  absl::StatusOr<Repository::DeleteStats> stats = writable->repo.Delete(o.ids);
  if (!stats.ok()) return Fail(stats.status());
  return PrintDeleted(g, o.ids, *stats, writable->repo);
}

// "7d", "36h", "90m": absl's durations plus days.
absl::StatusOr<absl::Duration> ParseAge(const std::string& text) {
  absl::Duration d;
  int days = 0;
  if (!text.empty() && text.back() == 'd' &&
      absl::SimpleAtoi(text.substr(0, text.size() - 1), &days) && days >= 0) {
    return absl::Hours(24) * days;
  }
  if (absl::ParseDuration(text, &d) && d >= absl::ZeroDuration()) return d;
  return absl::InvalidArgumentError(
      absl::StrCat("--keep-within: \"", text, "\" is not a duration (e.g. 7d, 36h, 90m)"));
}

int RunPrune(const GlobalOptions& g, const BackupOptions& o) {
  if (!o.keep_last.has_value() && o.keep_within.empty()) {
    return Fail(absl::InvalidArgumentError("give --keep-last, --keep-within or both"));
  }
  std::optional<absl::Duration> within;
  if (!o.keep_within.empty()) {
    absl::StatusOr<absl::Duration> d = ParseAge(o.keep_within);
    if (!d.ok()) return Fail(d.status());
    within = *d;
  }
  absl::StatusOr<WritableRepository> writable = OpenForWriting(o.dest, /*create=*/false);
  if (!writable.ok()) return Fail(writable.status());
  Repository* repo = &writable->repo;
  absl::StatusOr<std::vector<Manifest>> all = repo->List();
  if (!all.ok()) return Fail(all.status());
  const std::vector<std::string> doomed =
      backup::SelectExpired(*all, o.keep_last, within, absl::Now());
  Repository::DeleteStats stats;
  if (!doomed.empty()) {
    absl::StatusOr<Repository::DeleteStats> deleted = repo->Delete(doomed);
    if (!deleted.ok()) return Fail(deleted.status());
    stats = *deleted;
  }
  return PrintDeleted(g, doomed, stats, *repo);
}

}  // namespace

absl::StatusOr<v1::Placement> ReadPlacement(const GlobalOptions& g) {
  auto cp = v1::ControlPlane::NewStub(ConnectControlPlane(g));
  v1::Placement placement;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, g);
  grpc::Status st = cp->GetPlacement(&ctx, v1::GetPlacementRequest(), &placement);
  if (!st.ok()) return FromGrpcStatus(st, &ctx);
  if (!placement.created()) {
    return absl::FailedPreconditionError("the cluster is not created yet: nothing to back up");
  }
  return placement;
}

void AddBackupCommands(CLI::App& app, GlobalOptions& g, std::function<int()>* run) {
  auto o = std::make_shared<BackupOptions>();
  CLI::App* backup = app.add_subcommand("backup", "Cluster backups in a repository directory");
  backup->require_subcommand(1);
  auto dest = [o](CLI::App* cmd) {
    cmd->add_option("--dest", o->dest, "The backup repository (a directory)")->required();
  };
  CLI::App* create = backup->add_subcommand(
      "create", "Copy a checkpoint of every shard's leader, at a recorded LSN, into --dest");
  dest(create);
  create
      ->add_option("--attempts", o->attempts,
                   "Tries per shard when its leader changes or is unreachable")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  create->callback([&g, o, run] { *run = [&g, o] { return RunCreate(g, *o); }; });

  CLI::App* list = backup->add_subcommand("list", "The backups in --dest, oldest first");
  dest(list);
  list->callback([&g, o, run] { *run = [&g, o] { return RunList(g, *o); }; });

  CLI::App* verify = backup->add_subcommand(
      "verify", "Re-hash every file of the backups (all, or the ids given); name any damage");
  dest(verify);
  verify->add_option("ids", o->ids, "Backup ids (default: all)");
  verify->callback([&g, o, run] { *run = [&g, o] { return RunVerify(g, *o); }; });

  CLI::App* del =
      backup->add_subcommand("delete", "Delete backups, and the files no remaining backup uses");
  dest(del);
  del->add_option("ids", o->ids, "Backup ids")->required();
  del->callback([&g, o, run] { *run = [&g, o] { return RunDelete(g, *o); }; });

  CLI::App* prune = backup->add_subcommand(
      "prune", "Retention: delete the backups outside the newest N and older than T");
  dest(prune);
  prune->add_option("--keep-last", o->keep_last, "Keep the newest N backups")
      ->check(CLI::Range(1, 1000000));
  prune->add_option("--keep-within", o->keep_within,
                    "Keep backups younger than this (7d, 36h, 90m)");
  prune->callback([&g, o, run] { *run = [&g, o] { return RunPrune(g, *o); }; });
}

}  // namespace dash::ctl
