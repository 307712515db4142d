#include "node/replication/snapshot_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <mutex>
#include <random>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "node/replication/internal/snapshot_files.h"

namespace dash::replication {
namespace {

namespace fs = std::filesystem;

std::string RandomHex() {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> l(mu);
  return absl::StrCat(absl::Hex(rng(), absl::kZeroPad16));
}

// Lists the checkpoint in `dir` as manifest files, each with its size and
// SHA-256.
absl::Status Describe(const std::string& dir, v1::SnapshotManifest* manifest) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    // A checkpoint is flat: anything else would be left out of the copy.
    if (!it->is_regular_file() || !internal::IsValidFileName(name)) {
      return absl::InternalError(
          absl::StrCat("checkpoint ", dir, " holds ", name, ", which is not a plain file"));
    }
    names.push_back(name);
  }
  if (ec) return absl::UnavailableError(absl::StrCat("cannot list ", dir, ": ", ec.message()));
  std::sort(names.begin(), names.end());
  uint64_t total = 0;
  for (const std::string& name : names) {
    const std::string path = absl::StrCat(dir, "/", name);
    const uint64_t size = fs::file_size(path, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("cannot stat ", path, ": ", ec.message()));
    DASH_ASSIGN_OR_RETURN(std::string sha256, internal::Sha256OfFile(path));
    v1::SnapshotFile* file = manifest->add_files();
    file->set_name(name);
    file->set_size(size);
    file->set_sha256(std::move(sha256));
    total += size;
  }
  manifest->set_total_bytes(total);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<SnapshotStore>> SnapshotStore::Open(shard::ShardHost* host,
                                                                   SnapshotStoreOptions options) {
  if (options.dir.empty()) return absl::InvalidArgumentError("dir: must not be empty");
  // Snapshots of an earlier run are unknown to every follower's leader now.
  std::error_code ec;
  fs::remove_all(options.dir, ec);
  if (!ec) fs::create_directories(options.dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot wipe snapshot dir ", options.dir, ": ", ec.message()));
  }
  return std::unique_ptr<SnapshotStore>(new SnapshotStore(host, std::move(options)));
}

SnapshotStore::~SnapshotStore() { Close(); }

void SnapshotStore::Delete(const std::vector<std::shared_ptr<Snapshot>>& doomed) {
  for (const auto& s : doomed) {
    std::error_code ec;
    fs::remove_all(s->dir, ec);
    if (ec) LOG(WARNING) << "cannot delete snapshot " << s->dir << ": " << ec.message();
  }
}

void SnapshotStore::TakeExpired(std::vector<std::shared_ptr<Snapshot>>* doomed) {
  const int64_t now = options_.clock->NowMicros();
  const int64_t expiry = absl::ToInt64Microseconds(options_.idle_expiry);
  for (auto it = snapshots_.begin(); it != snapshots_.end();) {
    Snapshot& s = *it->second;
    if (s.readers == 0 && now - s.last_use_micros > expiry) {
      LOG(INFO) << "snapshot " << s.id << " of shard " << s.shard << " expired";
      doomed->push_back(std::move(it->second));
      it = snapshots_.erase(it);
    } else {
      ++it;
    }
  }
}

absl::Status SnapshotStore::MakeRoom(uint32_t shard, const std::string& follower,
                                     std::vector<std::shared_ptr<Snapshot>>* doomed) {
  auto live = [&] {
    size_t n = creating_[shard];
    for (const auto& [id, s] : snapshots_) n += s->shard == shard ? 1 : 0;
    return n;
  };
  // The follower asks again: it gave up its earlier snapshot.
  for (auto it = snapshots_.begin(); it != snapshots_.end();) {
    const Snapshot& s = *it->second;
    if (!follower.empty() && s.shard == shard && s.follower == follower && s.readers == 0) {
      doomed->push_back(std::move(it->second));
      it = snapshots_.erase(it);
    } else {
      ++it;
    }
  }
  while (live() >= options_.max_per_shard) {
    auto victim = snapshots_.end();
    for (auto it = snapshots_.begin(); it != snapshots_.end(); ++it) {
      const Snapshot& s = *it->second;
      if (s.shard != shard || s.readers > 0) continue;
      if (victim == snapshots_.end() || s.last_use_micros < victim->second->last_use_micros) {
        victim = it;
      }
    }
    if (victim == snapshots_.end()) {
      return absl::ResourceExhaustedError(
          absl::StrCat("shard ", shard, ": ", options_.max_per_shard,
                       " snapshots are being made or read already; retry when one is released"));
    }
    LOG(INFO) << "snapshot " << victim->first << " of shard " << shard << " evicted";
    doomed->push_back(std::move(victim->second));
    snapshots_.erase(victim);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::SnapshotManifest> SnapshotStore::Create(uint32_t shard, uint64_t epoch,
                                                           const std::string& follower) {
  DASH_ASSIGN_OR_RETURN(std::shared_ptr<shard::ShardReplica> replica,
                        host_->ReplicaAt(shard, epoch, /*must_lead=*/true));

  std::vector<std::shared_ptr<Snapshot>> doomed;
  absl::Status room;
  {
    absl::MutexLock l(&mu_);
    if (closed_) return absl::UnavailableError("the node is shutting down");
    TakeExpired(&doomed);
    room = MakeRoom(shard, follower, &doomed);
    if (room.ok()) ++creating_[shard];
  }
  Delete(doomed);
  if (!room.ok()) return room;
  absl::Cleanup done_creating = [&] {
    absl::MutexLock l(&mu_);
    --creating_[shard];
  };

  auto snapshot = std::make_shared<Snapshot>();
  snapshot->id = absl::StrCat(shard, "-", RandomHex());
  snapshot->shard = shard;
  snapshot->follower = follower;
  snapshot->dir = absl::StrCat(options_.dir, "/", snapshot->id);
  absl::Cleanup delete_dir = [&] { Delete({snapshot}); };
  auto log_end = replica->CreateCheckpoint(snapshot->dir);
  // Hashing may take a while: it must not keep the replica open (an
  // InstallSnapshot or RemoveReplica waits for every reference).
  replica.reset();
  if (!log_end.ok()) return log_end.status();
  v1::SnapshotManifest& m = snapshot->manifest;
  m.set_snapshot_id(snapshot->id);
  m.set_shard(shard);
  m.set_last_lsn(log_end->first);
  m.set_last_epoch(log_end->second);
  DASH_RETURN_IF_ERROR(Describe(snapshot->dir, &m));

  absl::MutexLock l(&mu_);
  if (closed_) return absl::UnavailableError("the node is shutting down");
  snapshot->last_use_micros = options_.clock->NowMicros();
  snapshots_[snapshot->id] = snapshot;
  std::move(delete_dir).Cancel();
  LOG(INFO) << "snapshot " << snapshot->id << " of shard " << shard << " for " << follower
            << ": lsn " << m.last_lsn() << ", " << m.files_size() << " files, " << m.total_bytes()
            << " bytes";
  return m;
}

absl::StatusOr<std::unique_ptr<SnapshotStore::FileReader>> SnapshotStore::OpenFile(
    const std::string& id, uint32_t shard, const std::string& name, uint64_t offset) {
  std::vector<std::shared_ptr<Snapshot>> doomed;
  std::shared_ptr<Snapshot> snapshot;
  uint64_t size = 0;
  absl::Status status;
  {
    absl::MutexLock l(&mu_);
    TakeExpired(&doomed);
    auto it = snapshots_.find(id);
    if (it == snapshots_.end()) {
      status = absl::NotFoundError(
          absl::StrCat("snapshot ", id, " is unknown on node ", host_->node_id(),
                       " (expired, released or made before a restart): create a new one"));
    } else if (it->second->shard != shard) {
      status = absl::InvalidArgumentError(absl::StrCat("shard: snapshot ", id, " is of shard ",
                                                       it->second->shard, ", not ", shard));
    } else {
      const v1::SnapshotManifest& m = it->second->manifest;
      auto file = std::find_if(m.files().begin(), m.files().end(),
                               [&](const v1::SnapshotFile& f) { return f.name() == name; });
      if (file == m.files().end()) {
        status = absl::InvalidArgumentError(
            absl::StrCat("name: \"", name, "\" is not a file of snapshot ", id));
      } else if (offset > file->size()) {
        status = absl::InvalidArgumentError(absl::StrCat(
            "offset: ", offset, " is beyond the size of ", name, " (", file->size(), ")"));
      } else {
        snapshot = it->second;
        size = file->size();
        ++snapshot->readers;
        snapshot->last_use_micros = options_.clock->NowMicros();
      }
    }
  }
  Delete(doomed);
  if (!status.ok()) return status;
  const std::string path = absl::StrCat(snapshot->dir, "/", name);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    Touch(snapshot.get(), -1);
    // Released while we opened it: as if it had been unknown.
    if (err == ENOENT) {
      return absl::NotFoundError(absl::StrCat("snapshot ", id, " was released"));
    }
    return internal::IoError("cannot open", path, err);
  }
  return std::unique_ptr<FileReader>(new FileReader(this, std::move(snapshot), path, fd, size));
}

void SnapshotStore::Touch(Snapshot* snapshot, int reader_delta) {
  absl::MutexLock l(&mu_);
  snapshot->readers += reader_delta;
  snapshot->last_use_micros = options_.clock->NowMicros();
}

absl::Status SnapshotStore::Release(const std::string& id, uint32_t shard) {
  std::vector<std::shared_ptr<Snapshot>> doomed;
  absl::Status status;
  {
    absl::MutexLock l(&mu_);
    TakeExpired(&doomed);
    auto it = snapshots_.find(id);
    if (it != snapshots_.end() && it->second->shard != shard) {
      status = absl::InvalidArgumentError(absl::StrCat("shard: snapshot ", id, " is of shard ",
                                                       it->second->shard, ", not ", shard));
    } else if (it != snapshots_.end()) {
      LOG(INFO) << "snapshot " << id << " of shard " << shard << " released";
      doomed.push_back(std::move(it->second));
      snapshots_.erase(it);
    }
  }
  Delete(doomed);
  return status;
}

void SnapshotStore::Close() {
  std::vector<std::shared_ptr<Snapshot>> doomed;
  {
    absl::MutexLock l(&mu_);
    closed_ = true;
    for (auto& [id, s] : snapshots_) doomed.push_back(std::move(s));
    snapshots_.clear();
  }
  Delete(doomed);
}

size_t SnapshotStore::size() const {
  absl::MutexLock l(&mu_);
  return snapshots_.size();
}

SnapshotStore::FileReader::~FileReader() {
  ::close(fd_);
  store_->Touch(snapshot_.get(), -1);
}

absl::StatusOr<std::string> SnapshotStore::FileReader::Read(uint64_t offset, size_t max_bytes) {
  if (offset >= size_) return std::string();
  std::string out(std::min<uint64_t>(max_bytes, size_ - offset), '\0');
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return internal::IoError("cannot read", path_, errno);
    if (n == 0) {
      // Checkpoint files never change: a short file is damage, not growth.
      return absl::DataLossError(absl::StrCat(path_, " is shorter (", offset + done,
                                              " bytes) than its manifest says (", size_, ")"));
    }
    done += static_cast<size_t>(n);
  }
  store_->Touch(snapshot_.get(), 0);
  return out;
}

}  // namespace dash::replication
