#include "node/backup/repository.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/hashing.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"
#include "node/storage/file_util.h"

namespace dash::backup {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kMarker[] = "DASH-BACKUP";
constexpr char kManifest[] = "manifest.json";

bool IsHex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(),
                                       [](char c) { return isdigit(c) || (c >= 'a' && c <= 'f'); });
}

// A checkpoint's file name: one path component, no tricks.
bool IsPlainName(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
         s.find('\0') == std::string::npos;
}

json MarkerJson() { return {{"format", "dash-backup"}, {"version", kFormatVersion}}; }

json ContentJson(const Manifest& m) {
  json shards = json::array();
  for (const ShardCut& s : m.shards) {
    json files = json::array();
    for (const FileRef& f : s.files) {
      files.push_back({{"name", f.name}, {"size", f.size}, {"sha256", f.sha256}});
    }
    shards.push_back({{"shard", s.shard},
                      {"epoch", s.epoch},
                      {"leader", s.leader},
                      {"last_lsn", s.last_lsn},
                      {"last_epoch", s.last_epoch},
                      {"files", files}});
  }
  return {{"format", "dash-backup"},
          {"version", m.format_version},
          {"id", m.id},
          {"created", absl::FormatTime(absl::RFC3339_full, m.created, absl::UTCTimeZone())},
          {"dash_version", m.dash_version},
          {"shard_count", m.shard_count},
          {"placement", json::parse(m.placement_json.empty() ? "{}" : m.placement_json)},
          {"shards", shards}};
}

}  // namespace

uint64_t Manifest::total_bytes() const {
  uint64_t n = 0;
  for (const ShardCut& s : shards) {
    for (const FileRef& f : s.files) n += f.size;
  }
  return n;
}

std::string ManifestToJson(const Manifest& m) {
  json j = ContentJson(m);
  const std::string sha = Sha256Hex(j.dump());
  j["sha256"] = sha;
  return j.dump(1) + "\n";
}

absl::StatusOr<Manifest> ManifestFromJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::DataLossError("not a JSON object");
  try {
    if (j.value("format", "") != "dash-backup") {
      return absl::DataLossError("not a DASH backup manifest (format)");
    }
    const std::string sha = j.value("sha256", "");
    j.erase("sha256");
    if (sha != Sha256Hex(j.dump())) {
      return absl::DataLossError("its content does not match its SHA-256");
    }
    Manifest m;
    m.format_version = j.at("version").get<int>();
    if (m.format_version != kFormatVersion) {
      return absl::FailedPreconditionError(absl::StrCat("format version ", m.format_version,
                                                        "; this dashctl reads ", kFormatVersion));
    }
    m.id = j.at("id").get<std::string>();
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, j.at("created").get<std::string>(), &m.created,
                         &err)) {
      return absl::DataLossError(absl::StrCat("created: ", err));
    }
    m.dash_version = j.value("dash_version", "");
    m.shard_count = j.at("shard_count").get<uint32_t>();
    m.placement_json = j.at("placement").dump();
    for (const json& s : j.at("shards")) {
      ShardCut cut;
      cut.shard = s.at("shard").get<uint32_t>();
      cut.epoch = s.at("epoch").get<uint64_t>();
      cut.leader = s.at("leader").get<std::string>();
      cut.last_lsn = s.at("last_lsn").get<uint64_t>();
      cut.last_epoch = s.at("last_epoch").get<uint64_t>();
      for (const json& f : s.at("files")) {
        FileRef file{f.at("name").get<std::string>(), f.at("size").get<uint64_t>(),
                     f.at("sha256").get<std::string>()};
        if (!IsPlainName(file.name) || !IsHex64(file.sha256)) {
          return absl::DataLossError(
              absl::StrCat("shard ", cut.shard, ": bad file entry \"", file.name, "\""));
        }
        cut.files.push_back(std::move(file));
      }
      m.shards.push_back(std::move(cut));
    }
    return m;
  } catch (const json::exception& e) {
    return absl::DataLossError(absl::StrCat("malformed: ", e.what()));
  }
}

absl::StatusOr<Repository> Repository::Open(const std::string& dir, bool create) {
  if (dir.empty()) return absl::InvalidArgumentError("dest: empty: name the backup directory");
  std::error_code ec;
  const std::string marker = (fs::path(dir) / kMarker).string();
  if (!fs::exists(marker, ec)) {
    if (!create) {
      return absl::NotFoundError(
          absl::StrCat(dir, ": not a DASH backup repository (no ", kMarker, ")"));
    }
    if (fs::exists(dir, ec) && !fs::is_empty(dir, ec)) {
      return absl::FailedPreconditionError(absl::StrCat(
          dir, ": exists, is not empty and is not a DASH backup repository: refusing to write"));
    }
    fs::create_directories(fs::path(dir) / "files", ec);
    if (!ec) fs::create_directories(fs::path(dir) / "backups", ec);
    if (ec) return storage::IoError("cannot create", dir, ec.value());
    DASH_RETURN_IF_ERROR(
        storage::WriteFileAtomically(marker, marker + ".tmp", MarkerJson().dump() + "\n"));
  }
  DASH_ASSIGN_OR_RETURN(std::string text, storage::ReadFile(marker));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("format", "") != "dash-backup") {
    return absl::FailedPreconditionError(absl::StrCat(marker, ": not a DASH backup marker"));
  }
  if (j.value("version", 0) != kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(marker, ": format version ",
                                                      j.value("version", 0),
                                                      "; this dashctl "
                                                      "writes and reads ",
                                                      kFormatVersion));
  }
  return Repository(dir);
}

Repository::WriterLock::~WriterLock() {
  if (fd_ >= 0) ::close(fd_);  // Releases the flock.
}

absl::StatusOr<Repository::WriterLock> Repository::LockForWriting() const {
  return Lock("LOCK", "another dashctl backup");
}

absl::StatusOr<Repository::WriterLock> Repository::LockForArchiving() const {
  std::error_code ec;
  fs::create_directories(fs::path(dir_) / "log", ec);
  if (ec) return storage::IoError("cannot create", (fs::path(dir_) / "log").string(), ec.value());
  return Lock("log/LOCK", "another dashctl backup archive");
}

absl::StatusOr<Repository::WriterLock> Repository::Lock(const std::string& name,
                                                        const std::string& who) const {
  const std::string path = (fs::path(dir_) / name).string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return storage::IoError("cannot open", path, errno);
  WriterLock lock(fd);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char holder[32] = {0};
    const ssize_t n = ::pread(fd, holder, sizeof(holder) - 1, 0);
    return absl::FailedPreconditionError(
        absl::StrCat(dir_, ": ", who, " (pid ", n > 0 ? holder : "?",
                     ") is writing to this repository; try again when it is done"));
  }
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    return storage::IoError("cannot write", path, errno);
  }
  return lock;
}

std::string Repository::StoredPath(const std::string& sha256) const {
  return (fs::path(dir_) / "files" / sha256.substr(0, 2) / sha256).string();
}

std::string Repository::StagingDir(const std::string& id, uint32_t shard) const {
  return (fs::path(dir_) / "staging" / id / absl::StrCat("shard-", shard)).string();
}

std::string Repository::ManifestPath(const std::string& id) const {
  return (fs::path(dir_) / "backups" / id / kManifest).string();
}

std::string Repository::NewId(absl::Time now) const {
  const std::string base = absl::FormatTime("%Y%m%dT%H%M%SZ", now, absl::UTCTimeZone());
  std::error_code ec;
  std::string id = base;
  for (int n = 2; fs::exists(fs::path(dir_) / "backups" / id, ec) ||
                  fs::exists(fs::path(dir_) / "staging" / id, ec);
       ++n) {
    id = absl::StrCat(base, "-", n);
  }
  return id;
}

bool Repository::LinkStored(const FileRef& file, const std::string& path) const {
  if (!IsHex64(file.sha256)) return false;
  std::error_code ec;
  fs::create_hard_link(StoredPath(file.sha256), path, ec);
  return !ec;
}

absl::Status Repository::Store(const std::string& staged_path, const FileRef& file) {
  if (!IsHex64(file.sha256)) {
    return absl::InvalidArgumentError(absl::StrCat(file.name, ": bad SHA-256 ", file.sha256));
  }
  const fs::path stored = StoredPath(file.sha256);
  std::error_code ec;
  if (fs::exists(stored, ec)) return absl::OkStatus();
  fs::create_directories(stored.parent_path(), ec);
  if (ec) return storage::IoError("cannot create", stored.parent_path().string(), ec.value());
  // A hard link, not a rename: the staged copy may itself be a link to a
  // stored file, and the staging directory is removed as a whole afterwards.
  fs::create_hard_link(staged_path, stored, ec);
  if (ec) return storage::IoError("cannot store", staged_path, ec.value());
  fs::permissions(stored, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read,
                  ec);
  return storage::SyncPath(stored.parent_path().string());
}

absl::Status Repository::Commit(const Manifest& manifest) {
  std::error_code ec;
  for (const ShardCut& s : manifest.shards) {
    for (const FileRef& f : s.files) {
      if (fs::file_size(StoredPath(f.sha256), ec) != f.size || ec) {
        return absl::FailedPreconditionError(
            absl::StrCat("shard ", s.shard, ": ", f.name, " is not stored"));
      }
    }
  }
  const fs::path path = ManifestPath(manifest.id);
  fs::create_directories(path.parent_path(), ec);
  if (ec) return storage::IoError("cannot create", path.parent_path().string(), ec.value());
  DASH_RETURN_IF_ERROR(storage::WriteFileAtomically(path.string(), path.string() + ".tmp",
                                                    ManifestToJson(manifest)));
  return storage::SyncPath((fs::path(dir_) / "backups").string());
}

absl::Status Repository::RemoveStaging(const std::string& id) {
  std::error_code ec;
  fs::remove_all(fs::path(dir_) / "staging" / id, ec);
  if (ec)
    return storage::IoError("cannot remove", (fs::path(dir_) / "staging" / id).string(),
                            ec.value());
  if (fs::is_empty(fs::path(dir_) / "staging", ec)) fs::remove(fs::path(dir_) / "staging", ec);
  return absl::OkStatus();
}

absl::StatusOr<Manifest> Repository::Load(const std::string& id) const {
  if (!IsPlainName(id)) return absl::InvalidArgumentError(absl::StrCat("id: bad backup id ", id));
  const std::string path = ManifestPath(id);
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat("backup ", id, ": not in ", dir_));
  }
  DASH_ASSIGN_OR_RETURN(std::string text, storage::ReadFile(path));
  absl::StatusOr<Manifest> m = ManifestFromJson(text);
  if (!m.ok()) {
    return absl::Status(m.status().code(), absl::StrCat(path, ": ", m.status().message()));
  }
  if (m->id != id) {
    return absl::DataLossError(absl::StrCat(path, ": names backup ", m->id, ", not ", id));
  }
  return m;
}

absl::StatusOr<std::vector<Manifest>> Repository::List() const {
  std::vector<Manifest> out;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(fs::path(dir_) / "backups", ec)) {
    if (!e.is_directory()) continue;
    DASH_ASSIGN_OR_RETURN(Manifest m, Load(e.path().filename().string()));
    out.push_back(std::move(m));
  }
  if (ec) return storage::IoError("cannot list", dir_ + "/backups", ec.value());
  std::sort(out.begin(), out.end(), [](const Manifest& a, const Manifest& b) {
    return std::tie(a.created, a.id) < std::tie(b.created, b.id);
  });
  return out;
}

absl::StatusOr<std::vector<Damage>> Repository::Verify(
    const std::vector<std::string>& ids, const std::function<void(uint64_t)>& progress) const {
  std::vector<std::string> which = ids;
  std::error_code ec;
  if (which.empty()) {
    for (const fs::directory_entry& e : fs::directory_iterator(fs::path(dir_) / "backups", ec)) {
      if (e.is_directory()) which.push_back(e.path().filename().string());
    }
    if (ec) return storage::IoError("cannot list", dir_ + "/backups", ec.value());
    std::sort(which.begin(), which.end());
  }
  std::vector<Damage> damage;
  std::map<std::string, std::string> hashed;  // Stored path -> problem ("" when good).
  uint64_t bytes = 0;
  for (const std::string& id : which) {
    absl::StatusOr<Manifest> m = Load(id);
    if (absl::IsNotFound(m.status()) && !ids.empty()) return m.status();
    if (!m.ok()) {
      damage.push_back(
          {id, std::nullopt, kManifest, ManifestPath(id), std::string(m.status().message())});
      continue;
    }
    for (const ShardCut& s : m->shards) {
      for (const FileRef& f : s.files) {
        const std::string path = StoredPath(f.sha256);
        auto [it, fresh] = hashed.emplace(path, "");
        if (fresh) {
          const uint64_t size = fs::exists(path, ec) ? fs::file_size(path, ec) : 0;
          if (!fs::exists(path, ec)) {
            it->second = "missing";
          } else if (size != f.size) {
            it->second = absl::StrCat("size ", size, " instead of ", f.size);
          } else {
            absl::StatusOr<std::string> sha = storage::Sha256OfFile(path);
            if (!sha.ok()) {
              it->second = std::string(sha.status().message());
            } else if (*sha != f.sha256) {
              it->second = "SHA-256 differs (damaged)";
            }
            bytes += size;
            if (progress != nullptr) progress(bytes);
          }
        }
        if (!it->second.empty()) damage.push_back({id, s.shard, f.name, path, it->second});
      }
    }
  }
  return damage;
}

absl::StatusOr<Repository::DeleteStats> Repository::Delete(const std::vector<std::string>& ids) {
  DASH_ASSIGN_OR_RETURN(std::vector<Manifest> all, List());
  std::set<std::string> doomed(ids.begin(), ids.end());
  for (const std::string& id : doomed) {
    if (std::none_of(all.begin(), all.end(), [&](const Manifest& m) { return m.id == id; })) {
      return absl::NotFoundError(absl::StrCat("backup ", id, ": not in ", dir_));
    }
  }
  DeleteStats stats;
  std::set<std::string> kept_files;
  for (const Manifest& m : all) {
    if (doomed.count(m.id) > 0) continue;
    for (const ShardCut& s : m.shards) {
      for (const FileRef& f : s.files) kept_files.insert(StoredPath(f.sha256));
    }
  }
  std::error_code ec;
  for (const std::string& id : doomed) {
    // The manifest first: a backup whose files are half gone must not remain.
    fs::remove(ManifestPath(id), ec);
    if (ec) return storage::IoError("cannot remove", ManifestPath(id), ec.value());
    fs::remove_all(fs::path(dir_) / "backups" / id, ec);
    ++stats.backups;
  }
  DASH_RETURN_IF_ERROR(storage::SyncPath((fs::path(dir_) / "backups").string()));
  for (const fs::directory_entry& e :
       fs::recursive_directory_iterator(fs::path(dir_) / "files", ec)) {
    if (!e.is_regular_file() || kept_files.count(e.path().string()) > 0) continue;
    const uint64_t size = e.file_size(ec);
    if (fs::remove(e.path(), ec)) {
      ++stats.files_removed;
      stats.bytes_removed += size;
    }
  }
  return stats;
}

std::vector<std::string> SelectExpired(const std::vector<Manifest>& backups,
                                       std::optional<int> keep_last,
                                       std::optional<absl::Duration> keep_within, absl::Time now) {
  std::vector<std::string> out;
  if (!keep_last.has_value() && !keep_within.has_value()) return out;
  const int n = static_cast<int>(backups.size());
  for (int i = 0; i + 1 < n; ++i) {  // The newest (last) is always kept.
    const int newer = n - 1 - i;     // Backups newer than this one.
    const bool outside_last = !keep_last.has_value() || newer >= *keep_last;
    const bool too_old = !keep_within.has_value() || now - backups[i].created > *keep_within;
    if (outside_last && too_old) out.push_back(backups[i].id);
  }
  return out;
}

}  // namespace dash::backup
