#include "node/backup/log_archive.h"

#include <algorithm>
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/types/span.h"
#include "common/status_macros.h"
#include "node/storage/file_util.h"

namespace dash::backup {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[] = "DASHLOG1";
constexpr size_t kMagicSize = 8;
constexpr char kTail[] = "open.seg";

void PutU32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}

uint32_t GetU32(absl::string_view in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(in[i]);
  return v;
}

std::string Frame(absl::Span<const ArchivedRecord> records, bool magic) {
  std::string out = magic ? std::string(kMagic, kMagicSize) : "";
  for (const ArchivedRecord& r : records) {
    PutU32(&out, static_cast<uint32_t>(r.encoded.size()));
    out += r.encoded;
  }
  return out;
}

// The records of a segment file's bytes. With `torn_ok` (the tail), an
// incomplete last record (a crash mid-append) ends the list; otherwise it is
// damage.
absl::StatusOr<std::vector<ArchivedRecord>> ParseSegment(const std::string& path,
                                                         absl::string_view bytes, bool torn_ok) {
  if (bytes.size() < kMagicSize || bytes.substr(0, kMagicSize) != kMagic) {
    if (torn_ok && bytes.size() < kMagicSize) return std::vector<ArchivedRecord>();
    return absl::DataLossError(absl::StrCat(path, ": not a log archive segment"));
  }
  std::vector<ArchivedRecord> records;
  size_t pos = kMagicSize;
  while (pos < bytes.size()) {
    if (bytes.size() - pos < 4 || bytes.size() - pos - 4 < GetU32(bytes.substr(pos))) {
      if (torn_ok) break;
      return absl::DataLossError(absl::StrCat(path, ": truncated at byte ", pos));
    }
    const uint32_t len = GetU32(bytes.substr(pos));
    absl::string_view encoded = bytes.substr(pos + 4, len);
    absl::StatusOr<storage::LogRecord> rec = storage::DecodeLogRecord(encoded);
    if (!rec.ok()) {
      return absl::DataLossError(
          absl::StrCat(path, ": record at byte ", pos, ": ", rec.status().message()));
    }
    if (!records.empty() && rec->lsn != records.back().lsn + 1) {
      return absl::DataLossError(
          absl::StrCat(path, ": lsn ", rec->lsn, " follows lsn ", records.back().lsn));
    }
    records.push_back(
        ArchivedRecord{rec->lsn, rec->epoch, rec->commit_time_micros, std::string(encoded)});
    pos += 4 + len;
  }
  return records;
}

struct SealedSegment {
  uint64_t first = 0;
  uint64_t last = 0;
  std::string path;
};

// The sealed segments of `dir` by first LSN, checked to be consecutive.
absl::StatusOr<std::vector<SealedSegment>> ListSealed(const std::string& dir) {
  std::vector<SealedSegment> out;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return out;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name == kTail || name.size() < 4 || name.substr(name.size() - 4) != ".seg") continue;
    std::vector<std::string> parts = absl::StrSplit(name.substr(0, name.size() - 4), '-');
    SealedSegment s;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &s.first) ||
        !absl::SimpleAtoi(parts[1], &s.last) || s.first == 0 || s.last < s.first) {
      return absl::DataLossError(absl::StrCat(e.path().string(), ": not a segment's name"));
    }
    s.path = e.path().string();
    out.push_back(std::move(s));
  }
  if (ec) return storage::IoError("cannot list", dir, ec.value());
  std::sort(out.begin(), out.end(),
            [](const SealedSegment& a, const SealedSegment& b) { return a.first < b.first; });
  for (size_t i = 1; i < out.size(); ++i) {
    if (out[i].first != out[i - 1].last + 1) {
      return absl::DataLossError(absl::StrCat(dir, ": segments ",
                                              fs::path(out[i - 1].path).filename().string(),
                                              " and ", fs::path(out[i].path).filename().string(),
                                              " are not consecutive (a segment is missing)"));
    }
  }
  return out;
}

absl::StatusOr<std::vector<ArchivedRecord>> ReadSealed(const SealedSegment& s) {
  DASH_ASSIGN_OR_RETURN(std::string bytes, storage::ReadFile(s.path));
  DASH_ASSIGN_OR_RETURN(std::vector<ArchivedRecord> records,
                        ParseSegment(s.path, bytes, /*torn_ok=*/false));
  if (records.empty() || records.front().lsn != s.first || records.back().lsn != s.last) {
    return absl::DataLossError(
        absl::StrCat(s.path, ": holds lsn ", records.empty() ? 0 : records.front().lsn, " to ",
                     records.empty() ? 0 : records.back().lsn, ", not what its name says"));
  }
  return records;
}

// The tail's records after `sealed_lsn` (a crash between sealing and
// rewriting the tail leaves sealed records in it).
absl::StatusOr<std::vector<ArchivedRecord>> ReadTail(const std::string& dir, uint64_t sealed_lsn) {
  const std::string path = (fs::path(dir) / kTail).string();
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::vector<ArchivedRecord>();
  DASH_ASSIGN_OR_RETURN(std::string bytes, storage::ReadFile(path));
  DASH_ASSIGN_OR_RETURN(std::vector<ArchivedRecord> records,
                        ParseSegment(path, bytes, /*torn_ok=*/true));
  records.erase(std::remove_if(records.begin(), records.end(),
                               [&](const ArchivedRecord& r) { return r.lsn <= sealed_lsn; }),
                records.end());
  if (!records.empty() && sealed_lsn != 0 && records.front().lsn != sealed_lsn + 1) {
    return absl::DataLossError(absl::StrCat(path, ": starts at lsn ", records.front().lsn,
                                            ", the sealed segments end at ", sealed_lsn));
  }
  return records;
}

}  // namespace

std::string ArchiveDir(const std::string& repo_dir, uint32_t shard) {
  return (fs::path(repo_dir) / "log" / absl::StrCat("shard-", shard)).string();
}

absl::StatusOr<ShardArchive> ShardArchive::Open(const std::string& repo_dir, uint32_t shard) {
  const std::string dir = ArchiveDir(repo_dir, shard);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return storage::IoError("cannot create", dir, ec.value());
  DASH_ASSIGN_OR_RETURN(std::vector<SealedSegment> sealed, ListSealed(dir));
  uint64_t sealed_lsn = 0;
  uint64_t sealed_epoch = 0;
  if (!sealed.empty()) {
    DASH_ASSIGN_OR_RETURN(std::vector<ArchivedRecord> last, ReadSealed(sealed.back()));
    sealed_lsn = last.back().lsn;
    sealed_epoch = last.back().epoch;
  }
  DASH_ASSIGN_OR_RETURN(std::vector<ArchivedRecord> tail, ReadTail(dir, sealed_lsn));
  ShardArchive archive(dir, sealed_lsn, sealed_epoch, std::move(tail));
  // Trims a torn append, and rewrites the tail a crash left sealed records in.
  DASH_RETURN_IF_ERROR(archive.RewriteTail());
  return archive;
}

uint64_t ShardArchive::last_lsn() const { return tail_.empty() ? sealed_lsn_ : tail_.back().lsn; }

uint64_t ShardArchive::last_epoch() const {
  return tail_.empty() ? sealed_epoch_ : tail_.back().epoch;
}

uint64_t ShardArchive::EpochEnd(uint64_t epoch) const {
  for (auto it = tail_.rbegin(); it != tail_.rend(); ++it) {
    if (it->epoch <= epoch) return it->lsn;
  }
  return sealed_lsn_;
}

absl::Status ShardArchive::Append(const std::vector<std::string>& encoded) {
  if (encoded.empty()) return absl::OkStatus();
  std::vector<ArchivedRecord> added;
  uint64_t expect = last_lsn() + 1;
  uint64_t epoch = last_epoch();
  for (const std::string& e : encoded) {
    DASH_ASSIGN_OR_RETURN(storage::LogRecord rec, storage::DecodeLogRecord(e));
    // The first record of an empty archive may be any: archiving can start
    // after the log did (the backup before it holds the rest).
    const bool any_start = last_lsn() == 0 && added.empty();
    if (!any_start && rec.lsn != expect) {
      return absl::InvalidArgumentError(
          absl::StrCat("archive ", dir_, ": lsn ", rec.lsn, " does not follow ", expect - 1));
    }
    if (rec.epoch < epoch) {
      return absl::InvalidArgumentError(absl::StrCat("archive ", dir_, ": lsn ", rec.lsn,
                                                     " is of epoch ", rec.epoch,
                                                     ", older than the previous record's ", epoch));
    }
    expect = rec.lsn + 1;
    epoch = rec.epoch;
    added.push_back(ArchivedRecord{rec.lsn, rec.epoch, rec.commit_time_micros, e});
  }
  const std::string path = (fs::path(dir_) / kTail).string();
  const bool fresh = !fs::exists(path);
  const std::string bytes = Frame(added, /*magic=*/fresh);
  DASH_RETURN_IF_ERROR(storage::AppendToFile(path, bytes));
  if (fresh) DASH_RETURN_IF_ERROR(storage::SyncPath(dir_));
  for (ArchivedRecord& r : added) tail_.push_back(std::move(r));
  return absl::OkStatus();
}

absl::Status ShardArchive::RewriteTail() {
  const std::string path = (fs::path(dir_) / kTail).string();
  return storage::WriteFileAtomically(path, path + ".tmp", Frame(tail_, /*magic=*/true));
}

absl::Status ShardArchive::Seal(uint64_t commit_lsn) {
  size_t n = 0;
  while (n < tail_.size() && tail_[n].lsn <= commit_lsn) ++n;
  if (n == 0) return absl::OkStatus();
  const absl::Span<const ArchivedRecord> sealed(tail_.data(), n);
  const std::string path =
      (fs::path(dir_) / absl::StrFormat("%020d-%020d.seg", sealed.front().lsn, sealed.back().lsn))
          .string();
  // The sealed segment first: a crash before the tail is rewritten leaves
  // its records in both, and Open drops them from the tail.
  DASH_RETURN_IF_ERROR(
      storage::WriteFileAtomically(path, path + ".tmp", Frame(sealed, /*magic=*/true)));
  sealed_lsn_ = sealed.back().lsn;
  sealed_epoch_ = sealed.back().epoch;
  tail_.erase(tail_.begin(), tail_.begin() + n);
  return RewriteTail();
}

absl::Status ShardArchive::TruncateAfter(uint64_t lsn) {
  if (lsn < sealed_lsn_) {
    return absl::FailedPreconditionError(
        absl::StrCat("archive ", dir_, ": cannot drop lsn ", lsn + 1, " to ", sealed_lsn_,
                     ": they are sealed (committed); the shard's log lost committed records, or "
                     "this archive belongs to another cluster"));
  }
  const size_t before = tail_.size();
  tail_.erase(std::remove_if(tail_.begin(), tail_.end(),
                             [lsn](const ArchivedRecord& r) { return r.lsn > lsn; }),
              tail_.end());
  return tail_.size() == before ? absl::OkStatus() : RewriteTail();
}

absl::Status ReadArchive(const std::string& repo_dir, uint32_t shard, uint64_t from_lsn,
                         const std::function<bool(const ArchivedRecord& record)>& visit) {
  const std::string dir = ArchiveDir(repo_dir, shard);
  DASH_ASSIGN_OR_RETURN(std::vector<SealedSegment> sealed, ListSealed(dir));
  uint64_t next = from_lsn;
  bool started = false;
  auto visit_all = [&](const std::string& path,
                       const std::vector<ArchivedRecord>& records) -> absl::StatusOr<bool> {
    for (const ArchivedRecord& r : records) {
      if (r.lsn < next) continue;
      if (r.lsn != next) {
        if (!started) {
          return absl::NotFoundError(absl::StrCat("shard ", shard, "'s archive starts at lsn ",
                                                  r.lsn, ", after lsn ", from_lsn));
        }
        return absl::DataLossError(
            absl::StrCat(path, ": lsn ", r.lsn, " where ", next, " was expected"));
      }
      started = true;
      ++next;
      if (!visit(r)) return false;
    }
    return true;
  };
  uint64_t sealed_lsn = 0;
  for (const SealedSegment& s : sealed) {
    sealed_lsn = s.last;
    if (s.last < next) continue;
    DASH_ASSIGN_OR_RETURN(std::vector<ArchivedRecord> records, ReadSealed(s));
    DASH_ASSIGN_OR_RETURN(bool more, visit_all(s.path, records));
    if (!more) return absl::OkStatus();
  }
  DASH_ASSIGN_OR_RETURN(std::vector<ArchivedRecord> tail, ReadTail(dir, sealed_lsn));
  DASH_ASSIGN_OR_RETURN(bool more, visit_all((fs::path(dir) / kTail).string(), tail));
  (void)more;
  if (!started) {
    return absl::NotFoundError(
        absl::StrCat("shard ", shard, "'s archive ends before lsn ", from_lsn));
  }
  return absl::OkStatus();
}

absl::StatusOr<ArchiveExtent> ArchiveExtentOf(const std::string& repo_dir, uint32_t shard) {
  const std::string dir = ArchiveDir(repo_dir, shard);
  DASH_ASSIGN_OR_RETURN(std::vector<SealedSegment> sealed, ListSealed(dir));
  ArchiveExtent extent;
  extent.segments = sealed.size();
  if (!sealed.empty()) {
    extent.first_lsn = sealed.front().first;
    extent.sealed_lsn = extent.last_lsn = sealed.back().last;
  }
  DASH_ASSIGN_OR_RETURN(std::vector<ArchivedRecord> tail, ReadTail(dir, extent.sealed_lsn));
  if (!tail.empty()) {
    if (extent.first_lsn == 0) extent.first_lsn = tail.front().lsn;
    extent.last_lsn = tail.back().lsn;
    extent.last_time_micros = tail.back().commit_time_micros;
  } else if (!sealed.empty()) {
    DASH_ASSIGN_OR_RETURN(std::vector<ArchivedRecord> last, ReadSealed(sealed.back()));
    extent.last_time_micros = last.back().commit_time_micros;
  }
  return extent;
}

absl::StatusOr<ArchiveDropStats> DropArchiveBefore(const std::string& repo_dir, uint32_t shard,
                                                   uint64_t keep_from_lsn) {
  const std::string dir = ArchiveDir(repo_dir, shard);
  DASH_ASSIGN_OR_RETURN(std::vector<SealedSegment> sealed, ListSealed(dir));
  ArchiveDropStats stats;
  for (const SealedSegment& s : sealed) {
    if (s.last >= keep_from_lsn) break;
    std::error_code ec;
    const uint64_t size = fs::file_size(s.path, ec);
    if (!fs::remove(s.path, ec) || ec) return storage::IoError("cannot remove", s.path, ec.value());
    ++stats.segments;
    stats.bytes += size;
  }
  if (stats.segments > 0) DASH_RETURN_IF_ERROR(storage::SyncPath(dir));
  return stats;
}

}  // namespace dash::backup
