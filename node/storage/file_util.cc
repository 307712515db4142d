#include "node/storage/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/hashing.h"
#include "common/status_macros.h"

namespace dash::storage {

absl::Status IoError(absl::string_view what, const std::string& path, int err) {
  return absl::UnavailableError(absl::StrCat(what, " ", path, ": ", std::strerror(err)));
}

namespace {

// Reads the file at `path` start to end, handing `fn` each chunk. A missing
// file is NOT_FOUND with `missing_is_not_found`, else an I/O error like any.
absl::Status ForEachChunk(const std::string& path, bool missing_is_not_found,
                          const std::function<void(absl::string_view)>& fn) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT && missing_is_not_found) {
      return absl::NotFoundError(absl::StrCat(path, " does not exist"));
    }
    return IoError("cannot open", path, errno);
  }
  std::vector<char> buffer(1 << 20);
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return IoError("cannot read", path, err);
    }
    if (n == 0) break;
    fn(absl::string_view(buffer.data(), static_cast<size_t>(n)));
  }
  ::close(fd);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> Sha256OfFile(const std::string& path) {
  Sha256Hasher hasher;
  DASH_RETURN_IF_ERROR(ForEachChunk(path, /*missing_is_not_found=*/false,
                                    [&](absl::string_view chunk) { hasher.Update(chunk); }));
  return hasher.HexDigest();
}

absl::Status SyncPath(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open", path, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return IoError("cannot sync", path, err);
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& tmp_path,
                                 absl::string_view data) {
  return WriteFileAtomically(path, tmp_path, std::vector<absl::string_view>{data});
}

namespace {

// Writes all of `data` to `fd` (retrying short writes); closes `fd` on error.
absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return IoError("cannot write", path, err);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status AppendToFile(const std::string& path, absl::string_view data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("cannot open", path, errno);
  DASH_RETURN_IF_ERROR(WriteAll(fd, data, path));
  if (::fdatasync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return IoError("cannot sync", path, err);
  }
  ::close(fd);
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& tmp_path,
                                 const std::vector<absl::string_view>& parts) {
  const int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("cannot create", tmp_path, errno);
  for (absl::string_view data : parts) DASH_RETURN_IF_ERROR(WriteAll(fd, data, tmp_path));
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return IoError("cannot sync", tmp_path, err);
  }
  ::close(fd);
  if (::rename(tmp_path.c_str(), path.c_str()) != 0) {
    return IoError(absl::StrCat("cannot rename ", tmp_path, " to"), path, errno);
  }
  std::string parent = std::filesystem::path(path).parent_path().string();
  return SyncPath(parent.empty() ? "." : parent);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::string data;
  DASH_RETURN_IF_ERROR(
      ForEachChunk(path, /*missing_is_not_found=*/true,
                   [&](absl::string_view chunk) { data.append(chunk.data(), chunk.size()); }));
  return data;
}

}  // namespace dash::storage
