#include "node/backup/pitr.h"

#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "dash/v1/placement.pb.h"
#include "google/protobuf/util/json_util.h"
#include "node/backup/log_archive.h"

namespace dash::backup {
namespace {

std::string TimeText(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

// Plans one shard of backup `m`. FAILED_PRECONDITION when the target is
// before the backup's cut (an older backup may reach it) or beyond what the
// archive holds.
absl::StatusOr<ShardPlan> PlanShard(const Repository& repo, const Manifest& m, const ShardCut& cut,
                                    const RestoreTarget& target) {
  ShardPlan plan;
  plan.shard = cut.shard;
  plan.cut_lsn = plan.to_lsn = cut.last_lsn;
  plan.to_epoch = cut.last_epoch;
  plan.max_epoch = std::max(cut.epoch, cut.last_epoch);
  if (target.kind == RestoreTarget::Kind::kBackup) return plan;

  DASH_ASSIGN_OR_RETURN(ArchiveExtent extent, ArchiveExtentOf(repo.dir(), cut.shard));
  plan.archived_lsn = extent.last_lsn;
  std::optional<std::pair<uint64_t, uint64_t>> token;
  if (auto it = target.tokens.find(cut.shard);
      target.kind == RestoreTarget::Kind::kTokens && it != target.tokens.end()) {
    token = it->second;
    if (token->second < cut.last_lsn) {
      return absl::FailedPreconditionError(absl::StrCat("shard ", cut.shard, ": backup ", m.id,
                                                        " is at lsn ", cut.last_lsn,
                                                        ", after the target lsn ", token->second));
    }
  }
  const bool by_time = target.kind == RestoreTarget::Kind::kTime;
  if (by_time && m.created > target.time) {
    return absl::FailedPreconditionError(
        absl::StrCat("backup ", m.id, " was taken at ", TimeText(m.created), ", after the target"));
  }
  const bool gap = extent.last_lsn > cut.last_lsn && extent.first_lsn > cut.last_lsn + 1;
  if (gap) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shard ", cut.shard, ": the archive starts at lsn ", extent.first_lsn, ", backup ", m.id,
        " ends at lsn ", cut.last_lsn, ": lsn ", cut.last_lsn + 1, " to ", extent.first_lsn - 1,
        " are in neither (restore with --to-backup, or from a newer backup)"));
  }
  if (extent.last_lsn <= cut.last_lsn) {
    // Nothing archived after the cut: the backup is the end, unless a token
    // asks for more.
    if (token && token->second > cut.last_lsn) {
      return absl::FailedPreconditionError(absl::StrCat(
          "shard ", cut.shard, ": the target lsn ", token->second, " is not archived (the archive ",
          extent.last_lsn == 0 ? std::string("is empty")
                               : absl::StrCat("ends at lsn ", extent.last_lsn),
          ", backup ", m.id, " at lsn ", cut.last_lsn, ")"));
    }
    return plan;
  }
  // From the cut's own record when archived: it must be the archive's
  // record (the same epoch), and its commit time places the backup in time.
  const uint64_t from = std::max({cut.last_lsn, uint64_t{1}, extent.first_lsn});
  absl::Status failed;
  DASH_RETURN_IF_ERROR(ReadArchive(repo.dir(), cut.shard, from, [&](const ArchivedRecord& r) {
    if (r.lsn == cut.last_lsn) {
      if (r.epoch != cut.last_epoch) {
        failed = absl::FailedPreconditionError(
            absl::StrCat("shard ", cut.shard, ": backup ", m.id, "'s record at lsn ", r.lsn,
                         " is of epoch ", cut.last_epoch, ", the archive's of epoch ", r.epoch,
                         " (the backup holds a record its leader never committed)"));
        return false;
      }
      if (by_time && absl::FromUnixMicros(r.commit_time_micros) > target.time) {
        failed = absl::FailedPreconditionError(absl::StrCat(
            "backup ", m.id, "'s shard ", cut.shard, " is at a record of ",
            TimeText(absl::FromUnixMicros(r.commit_time_micros)), ", after the target"));
        return false;
      }
      plan.to_time_micros = r.commit_time_micros;
      return true;
    }
    if (by_time && absl::FromUnixMicros(r.commit_time_micros) > target.time) return false;
    plan.to_lsn = r.lsn;
    plan.to_epoch = r.epoch;
    plan.to_time_micros = r.commit_time_micros;
    plan.max_epoch = std::max(plan.max_epoch, r.epoch);
    if (token && r.lsn == token->second) return false;
    return true;
  }));
  DASH_RETURN_IF_ERROR(failed);
  if (token) {
    if (plan.to_lsn != token->second) {
      return absl::FailedPreconditionError(absl::StrCat("shard ", cut.shard,
                                                        ": the archive ends at lsn ", plan.to_lsn,
                                                        ", before the target lsn ", token->second));
    }
    if (plan.to_epoch != token->first) {
      return absl::FailedPreconditionError(absl::StrCat(
          "shard ", cut.shard, ": the archive's record at lsn ", token->second, " is of epoch ",
          plan.to_epoch, ", not ", token->first, " (that token's write is not in this history)"));
    }
  }
  return plan;
}

absl::StatusOr<RestorePlan> PlanFrom(const Repository& repo, const Manifest& m,
                                     const RestoreTarget& target) {
  RestorePlan plan;
  plan.backup = m;
  for (const auto& [shard, token] : target.tokens) {
    if (shard >= m.shard_count) {
      return absl::InvalidArgumentError(
          absl::StrCat("to_token: shard ", shard, " is not one of ", m.shard_count, " shards"));
    }
  }
  for (const ShardCut& cut : m.shards) {
    if (target.exact && target.tokens.count(cut.shard) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("restore_to: no token for shard ", cut.shard,
                       " (give one per shard, as `dashctl restore` prints them)"));
    }
    DASH_ASSIGN_OR_RETURN(ShardPlan s, PlanShard(repo, m, cut, target));
    plan.shards.push_back(s);
  }
  return plan;
}

}  // namespace

absl::StatusOr<std::map<uint32_t, std::pair<uint64_t, uint64_t>>> ParseTokens(
    const std::string& text) {
  std::map<uint32_t, std::pair<uint64_t, uint64_t>> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<absl::string_view> f = absl::StrSplit(part, ':');
    uint32_t shard = 0;
    uint64_t epoch = 0;
    uint64_t lsn = 0;
    if (f.size() != 3 || !absl::SimpleAtoi(f[0], &shard) || !absl::SimpleAtoi(f[1], &epoch) ||
        !absl::SimpleAtoi(f[2], &lsn) || epoch == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("to_token: \"", part, "\" is not shard:epoch:lsn (epoch from 1)"));
    }
    if (!out.emplace(shard, std::make_pair(epoch, lsn)).second) {
      return absl::InvalidArgumentError(absl::StrCat("to_token: shard ", shard, " twice"));
    }
  }
  if (out.empty()) return absl::InvalidArgumentError("to_token: no token");
  return out;
}

absl::StatusOr<RestoreTarget> ServerRestoreTarget(const std::string& restore_to) {
  RestoreTarget target;
  if (restore_to.empty()) return target;
  target.kind = RestoreTarget::Kind::kTokens;
  target.exact = true;
  DASH_ASSIGN_OR_RETURN(target.tokens, ParseTokens(restore_to));
  return target;
}

absl::StatusOr<std::map<std::string, std::string>> ParseNodeMap(const std::string& text) {
  std::map<std::string, std::string> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<std::string> f = absl::StrSplit(part, '=');
    if (f.size() != 2 || f[0].empty() || f[1].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("node_map: \"", part, "\" is not OLD_ID=NEW_ID"));
    }
    if (!out.emplace(f[0], f[1]).second) {
      return absl::InvalidArgumentError(absl::StrCat("node_map: node ", f[0], " twice"));
    }
  }
  return out;
}

absl::Status CheckNodeMap(const Manifest& m, const std::map<std::string, std::string>& node_map) {
  if (node_map.empty()) return absl::OkStatus();
  v1::Placement placement;
  if (!google::protobuf::util::JsonStringToMessage(m.placement_json, &placement).ok()) {
    return absl::DataLossError(absl::StrCat("backup ", m.id, ": its placement does not parse"));
  }
  std::set<std::string> nodes;
  for (const v1::NodeEntry& n : placement.nodes()) nodes.insert(n.node_id());
  std::set<std::string> after;
  for (const std::string& n : nodes) {
    auto it = node_map.find(n);
    if (!after.insert(it == node_map.end() ? n : it->second).second) {
      return absl::InvalidArgumentError(absl::StrCat("node_map: two nodes of backup ", m.id,
                                                     " would both be ",
                                                     it == node_map.end() ? n : it->second));
    }
  }
  for (const auto& [from, to] : node_map) {
    if (nodes.count(from) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("node_map: ", from, " is not a node of backup ", m.id,
                       " (its nodes: ", absl::StrJoin(nodes, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

std::string RestorePlan::Tokens() const {
  std::vector<std::string> parts;
  for (const ShardPlan& s : shards) {
    parts.push_back(absl::StrCat(s.shard, ":", s.to_epoch, ":", s.to_lsn));
  }
  return absl::StrJoin(parts, ",");
}

absl::StatusOr<RestorePlan> PlanRestore(const Repository& repo, const std::string& backup_id,
                                        const RestoreTarget& target) {
  if (!backup_id.empty() && backup_id != "latest") {
    DASH_ASSIGN_OR_RETURN(Manifest m, repo.Load(backup_id));
    return PlanFrom(repo, m, target);
  }
  DASH_ASSIGN_OR_RETURN(std::vector<Manifest> all, repo.List());
  if (all.empty()) return absl::NotFoundError(absl::StrCat(repo.dir(), ": holds no backup"));
  if (target.kind == RestoreTarget::Kind::kBackup || target.kind == RestoreTarget::Kind::kEnd) {
    return PlanFrom(repo, all.back(), target);
  }
  // The newest backup the target can be reached from.
  std::vector<std::string> why;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    absl::StatusOr<RestorePlan> plan = PlanFrom(repo, *it, target);
    if (plan.ok()) return plan;
    if (!absl::IsFailedPrecondition(plan.status())) return plan.status();
    why.push_back(std::string(plan.status().message()));
  }
  return absl::NotFoundError(
      absl::StrCat("no backup in ", repo.dir(), " reaches the target: ", absl::StrJoin(why, "; ")));
}

absl::Status ForEachReplayBatch(
    const Repository& repo, const ShardPlan& plan, size_t batch,
    const std::function<absl::Status(const std::vector<std::string>& encoded)>& apply) {
  if (plan.to_lsn <= plan.cut_lsn) return absl::OkStatus();
  std::vector<std::string> pending;
  absl::Status failed;
  uint64_t last = plan.cut_lsn;
  DASH_RETURN_IF_ERROR(
      ReadArchive(repo.dir(), plan.shard, plan.cut_lsn + 1, [&](const ArchivedRecord& r) {
        if (r.lsn > plan.to_lsn) return false;
        if (r.lsn == plan.to_lsn && r.epoch != plan.to_epoch) {
          failed = absl::FailedPreconditionError(
              absl::StrCat("shard ", plan.shard, ": the archive's record at lsn ", r.lsn,
                           " is of epoch ", r.epoch, ", the restore's of epoch ", plan.to_epoch));
          return false;
        }
        pending.push_back(r.encoded);
        last = r.lsn;
        if (pending.size() >= batch) {
          failed = apply(pending);
          pending.clear();
          if (!failed.ok()) return false;
        }
        return r.lsn < plan.to_lsn;
      }));
  DASH_RETURN_IF_ERROR(failed);
  if (!pending.empty()) DASH_RETURN_IF_ERROR(apply(pending));
  if (last != plan.to_lsn) {
    return absl::FailedPreconditionError(absl::StrCat("shard ", plan.shard,
                                                      ": the archive ends at lsn ", last,
                                                      ", before the restore's lsn ", plan.to_lsn));
  }
  return absl::OkStatus();
}

}  // namespace dash::backup
