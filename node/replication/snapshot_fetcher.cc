#include "node/replication/snapshot_fetcher.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/hashing.h"
#include "common/status_macros.h"
#include "glog/logging.h"
#include "grpcpp/client_context.h"
#include "node/replication/internal/snapshot_files.h"

namespace dash::replication {
namespace {

namespace fs = std::filesystem;

// Cancels the call in flight when the caller's `cancelled` turns true or a
// stream goes without a chunk for too long: a blocked Read() would otherwise
// never look at either.
class Watchdog {
 public:
  Watchdog(const std::function<bool()>& cancelled, absl::Duration stall_timeout)
      : cancelled_(cancelled), stall_timeout_(stall_timeout), thread_([this] { Run(); }) {}
  ~Watchdog() {
    {
      absl::MutexLock l(&mu_);
      done_ = true;
    }
    thread_.join();
  }

  // Watches `ctx` (a stream when `stream`: also for stalls) until Unwatch().
  void Watch(grpc::ClientContext* ctx, bool stream) {
    absl::MutexLock l(&mu_);
    ctx_ = ctx;
    stream_ = stream;
    stalled_ = false;
    last_progress_ = absl::Now();
  }
  void Unwatch() {
    absl::MutexLock l(&mu_);
    ctx_ = nullptr;
  }
  void Progress() {
    absl::MutexLock l(&mu_);
    last_progress_ = absl::Now();
  }
  bool stalled() const {
    absl::MutexLock l(&mu_);
    return stalled_;
  }

 private:
  void Run() {
    absl::MutexLock l(&mu_);
    while (!done_) {
      mu_.AwaitWithTimeout(absl::Condition(&done_), absl::Milliseconds(50));
      if (done_ || ctx_ == nullptr) continue;
      // The caller's predicate runs without mu_: it may take locks of its own.
      mu_.Unlock();
      const bool cancelled = cancelled_ != nullptr && cancelled_();
      mu_.Lock();
      if (ctx_ == nullptr) continue;
      if (cancelled) {
        ctx_->TryCancel();
      } else if (stream_ && absl::Now() - last_progress_ > stall_timeout_) {
        stalled_ = true;
        ctx_->TryCancel();
      }
    }
  }

  const std::function<bool()>& cancelled_;
  const absl::Duration stall_timeout_;
  mutable absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stream_ ABSL_GUARDED_BY(mu_) = false;
  bool stalled_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time last_progress_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;  // Last: starts once the fields above are set.
};

class Fetcher {
 public:
  Fetcher(v1::Snapshots::StubInterface* stub, const SnapshotFetchOptions& options)
      : stub_(stub),
        o_(options),
        progress_(options.progress != nullptr ? options.progress : &own_progress_),
        watchdog_(o_.cancelled, o_.stall_timeout) {}

  absl::StatusOr<v1::SnapshotManifest> Run() {
    std::error_code ec;
    fs::create_directories(o_.staging_dir, ec);
    if (ec) return internal::IoError("cannot create", o_.staging_dir, ec.value());
    DASH_ASSIGN_OR_RETURN(std::optional<v1::SnapshotManifest> manifest, LoadStaged());
    bool restarted = false;
    for (;;) {
      if (!manifest.has_value()) {
        DASH_ASSIGN_OR_RETURN(manifest, CreateAndStage());
      }
      progress_->total_bytes = manifest->total_bytes();
      absl::Status fetched = FetchAll(*manifest);
      if (fetched.ok()) break;
      if (!absl::IsNotFound(fetched) || restarted) return fetched;
      LOG(INFO) << "shard " << o_.shard << ": snapshot " << manifest->snapshot_id()
                << " is gone from the leader; starting over: " << fetched;
      restarted = true;
      manifest.reset();
    }
    DASH_RETURN_IF_ERROR(internal::SyncPath(o_.staging_dir));
    Release(*manifest);
    return *manifest;
  }

 private:
  std::string PathOf(const std::string& name) const {
    return (fs::path(o_.staging_dir) / name).string();
  }
  bool Cancelled() const { return o_.cancelled != nullptr && o_.cancelled(); }
  absl::Status CancelledError() const {
    return absl::CancelledError(absl::StrCat("shard ", o_.shard, ": snapshot fetch cancelled"));
  }

  absl::Status Wipe() {
    std::error_code ec;
    fs::remove_all(o_.staging_dir, ec);
    if (!ec) fs::create_directories(o_.staging_dir, ec);
    if (ec) return internal::IoError("cannot wipe", o_.staging_dir, ec.value());
    return absl::OkStatus();
  }

  // The staged manifest, if there is a usable one. Anything else in the
  // directory is wiped.
  absl::StatusOr<std::optional<v1::SnapshotManifest>> LoadStaged() {
    const std::string path = PathOf(internal::kStagedManifest);
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      DASH_RETURN_IF_ERROR(Wipe());
      return std::nullopt;
    }
    std::ifstream in(path, std::ios::binary);
    std::stringstream data;
    data << in.rdbuf();
    v1::SnapshotManifest m;
    absl::Status usable = !in.fail() && m.ParseFromString(data.str())
                              ? internal::CheckManifest(m, o_.shard)
                              : absl::DataLossError(absl::StrCat(path, " does not parse"));
    if (!usable.ok()) {
      LOG(WARNING) << "shard " << o_.shard << ": discarding the staged snapshot: " << usable;
      DASH_RETURN_IF_ERROR(Wipe());
      return std::nullopt;
    }
    return m;
  }

  absl::StatusOr<v1::SnapshotManifest> CreateAndStage() {
    if (Cancelled()) return CancelledError();
    DASH_RETURN_IF_ERROR(Wipe());
    v1::CreateSnapshotRequest request;
    request.set_shard(o_.shard);
    request.set_epoch(o_.epoch);
    request.set_follower_node_id(o_.follower_node_id);
    v1::SnapshotManifest m;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + o_.create_timeout));
    watchdog_.Watch(&ctx, /*stream=*/false);
    const grpc::Status status = stub_->CreateSnapshot(&ctx, request, &m);
    watchdog_.Unwatch();
    if (!status.ok()) return Cancelled() ? CancelledError() : FromGrpcStatus(status, &ctx);
    DASH_RETURN_IF_ERROR(internal::CheckManifest(m, o_.shard));
    ++progress_->snapshots_created;
    DASH_RETURN_IF_ERROR(internal::WriteFileAtomically(PathOf(internal::kStagedManifest),
                                                       PathOf(internal::kStagedManifestTmp),
                                                       m.SerializeAsString()));
    LOG(INFO) << "shard " << o_.shard << ": fetching snapshot " << m.snapshot_id() << " (lsn "
              << m.last_lsn() << ", " << m.total_bytes() << " bytes) into " << o_.staging_dir;
    return m;
  }

  absl::Status FetchAll(const v1::SnapshotManifest& m) {
    for (const v1::SnapshotFile& file : m.files()) DASH_RETURN_IF_ERROR(FetchFile(m, file));
    return absl::OkStatus();
  }

  // Brings one file to its full, verified content, keeping what is staged
  // when it checks out.
  absl::Status FetchFile(const v1::SnapshotManifest& m, const v1::SnapshotFile& file) {
    const std::string path = PathOf(file.name());
    std::error_code ec;
    if (o_.reuse != nullptr && !fs::exists(path, ec)) o_.reuse(file, path);
    uint64_t have = fs::exists(path, ec) ? fs::file_size(path, ec) : 0;
    if (ec) return internal::IoError("cannot stat", path, ec.value());
    if (have > file.size()) {
      have = 0;  // Not from this snapshot.
      ++progress_->files_refetched;
    } else if (have == file.size()) {
      DASH_ASSIGN_OR_RETURN(std::string sha256, internal::Sha256OfFile(path));
      if (sha256 == file.sha256()) {
        progress_->bytes_reused += have;
        return absl::OkStatus();
      }
      LOG(WARNING) << "shard " << o_.shard << ": staged " << path
                   << " fails its SHA-256; fetching it again";
      have = 0;
      ++progress_->files_refetched;
    }
    for (;;) {
      DASH_RETURN_IF_ERROR(FetchRange(m, file, path, have));
      DASH_ASSIGN_OR_RETURN(std::string sha256, internal::Sha256OfFile(path));
      if (sha256 == file.sha256()) {
        progress_->bytes_reused += have;
        ++progress_->files_complete;
        return absl::OkStatus();
      }
      fs::remove(path, ec);
      if (have == 0) {
        // Every byte came with a good CRC: the leader's file is not what its
        // manifest says.
        return absl::DataLossError(absl::StrCat("snapshot ", m.snapshot_id(), ": ", file.name(),
                                                " as sent does not match its SHA-256"));
      }
      // The part staged earlier was damaged; the whole file comes again.
      LOG(WARNING) << "shard " << o_.shard << ": resumed " << path
                   << " fails its SHA-256; fetching it again from the start";
      have = 0;
      ++progress_->files_refetched;
    }
  }

  // Streams `file` from `offset` to its end into `path`. On any error the
  // file ends at the last byte that passed its CRC, synced.
  absl::Status FetchRange(const v1::SnapshotManifest& m, const v1::SnapshotFile& file,
                          const std::string& path, uint64_t offset) {
    if (Cancelled()) return CancelledError();
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return internal::IoError("cannot open", path, errno);
    uint64_t at = offset;  // The file's good length.
    absl::Status local;    // This side's verdict on the stream.
    grpc::Status remote;
    bool stalled = false;
    if (::ftruncate(fd, static_cast<off_t>(at)) != 0) {
      local = internal::IoError("cannot truncate", path, errno);
    } else if (at < file.size()) {
      v1::FetchSnapshotFileRequest request;
      request.set_snapshot_id(m.snapshot_id());
      request.set_shard(m.shard());
      request.set_name(file.name());
      request.set_offset(offset);
      grpc::ClientContext ctx;
      watchdog_.Watch(&ctx, /*stream=*/true);
      std::unique_ptr<grpc::ClientReaderInterface<v1::SnapshotChunk>> reader =
          stub_->FetchSnapshotFile(&ctx, request);
      v1::SnapshotChunk chunk;
      while (local.ok() && reader->Read(&chunk)) {
        watchdog_.Progress();
        local = WriteChunk(fd, path, file, at, chunk);
        if (!local.ok()) break;
        at += chunk.data().size();
        progress_->bytes_received += chunk.data().size();
        ++progress_->chunks_received;
        if (Cancelled()) local = CancelledError();
      }
      if (!local.ok()) {
        ctx.TryCancel();
        while (reader->Read(&chunk)) {
        }
      }
      remote = reader->Finish();
      watchdog_.Unwatch();
      stalled = watchdog_.stalled();
      if (local.ok() && !remote.ok()) {
        if (Cancelled()) {
          local = CancelledError();
        } else if (stalled) {
          local = absl::UnavailableError(absl::StrCat("snapshot ", m.snapshot_id(),
                                                      ": no chunk of ", file.name(), " for ",
                                                      absl::FormatDuration(o_.stall_timeout)));
        } else {
          local = FromGrpcStatus(remote, &ctx);
        }
      } else if (local.ok() && at != file.size()) {
        local = absl::UnavailableError(absl::StrCat("snapshot ", m.snapshot_id(),
                                                    ": the stream of ", file.name(), " ended at ",
                                                    at, " of ", file.size(), " bytes"));
      }
    }
    // A failed write may have left a partial chunk: cut back to what checked.
    if (::ftruncate(fd, static_cast<off_t>(at)) != 0 && local.ok()) {
      local = internal::IoError("cannot truncate", path, errno);
    }
    if (::fsync(fd) != 0 && local.ok()) local = internal::IoError("cannot sync", path, errno);
    ::close(fd);
    return local;
  }

  // Checks one chunk (in order, within the file, CRC) and writes it at `at`.
  static absl::Status WriteChunk(int fd, const std::string& path, const v1::SnapshotFile& file,
                                 uint64_t at, const v1::SnapshotChunk& chunk) {
    DASH_RETURN_IF_ERROR(internal::CheckChunk(file, at, chunk));
    const std::string& data = chunk.data();
    size_t done = 0;
    while (done < data.size()) {
      const ssize_t n =
          ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(at + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return internal::IoError("cannot write", path, errno);
      done += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  void Release(const v1::SnapshotManifest& m) {
    v1::ReleaseSnapshotRequest request;
    request.set_snapshot_id(m.snapshot_id());
    request.set_shard(m.shard());
    v1::ReleaseSnapshotResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + o_.release_timeout));
    const grpc::Status status = stub_->ReleaseSnapshot(&ctx, request, &response);
    // Best effort: the leader deletes an unused snapshot on its own later.
    if (!status.ok()) {
      LOG(WARNING) << "shard " << o_.shard << ": releasing snapshot " << m.snapshot_id() << ": "
                   << FromGrpcStatus(status, &ctx);
    }
  }

  v1::Snapshots::StubInterface* const stub_;
  const SnapshotFetchOptions& o_;
  SnapshotFetchProgress own_progress_;
  SnapshotFetchProgress* const progress_;
  Watchdog watchdog_;
};

}  // namespace

absl::StatusOr<v1::SnapshotManifest> FetchSnapshot(v1::Snapshots::StubInterface* stub,
                                                   const SnapshotFetchOptions& options) {
  if (options.staging_dir.empty()) return absl::InvalidArgumentError("staging_dir: must be set");
  return Fetcher(stub, options).Run();
}

}  // namespace dash::replication
