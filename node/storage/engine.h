// The narrow storage interface a shard replica is written against.
//
// A shard replica's state lives in named key families (column families in the
// RocksDB engine). Writes are staged in a WriteSet, which reads its own
// pending writes on top of the latest committed state, and become visible
// atomically when committed. Engine and its readers are thread-safe; a
// WriteSet belongs to one thread.
#ifndef DASH_NODE_STORAGE_ENGINE_H_
#define DASH_NODE_STORAGE_ENGINE_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dash::storage {

// Key families. The numbering is not persisted (families are opened by name).
enum class Family : int {
  kMeta = 0,
  kLog,
  kUndo,  // Before-images of the records that may still be truncated.
  kTenants,
  kClaims,
  kEvidence,
  kEdges,
  kEdgesIn,
  kIdempotency,
  kDocs,      // Lexical index: per-claim term vectors.
  kTerms,     // Lexical index: document frequency per term.
  kPostings,  // Lexical index: term -> claims with tf and length.
  kCount,     // Not a family.
};

const char* FamilyName(Family f);

// Iterates the keys of one family that start with a prefix, in byte order.
class Cursor {
 public:
  virtual ~Cursor() = default;
  virtual bool Valid() const = 0;
  // REQUIRES: Valid(). Views stay valid until the next Next().
  virtual absl::string_view key() const = 0;
  virtual absl::string_view value() const = 0;
  virtual void Next() = 0;
  // Restarts at the first key that starts with `prefix`, which the cursor is
  // restricted to from then on. Reading many prefixes of one family through
  // one cursor is cheaper than one Scan each: a RocksDB iterator costs more to
  // create than to seek.
  virtual void Seek(absl::string_view prefix) = 0;
  // An I/O or corruption error that ended the iteration early.
  virtual absl::Status status() const = 0;
};

class Reader {
 public:
  virtual ~Reader() = default;
  // std::nullopt when the key does not exist.
  virtual absl::StatusOr<std::optional<std::string>> Get(Family f, absl::string_view key) const = 0;
  // Keys of `f` that start with `prefix`, beginning at the first key >= `start`
  // (or at the prefix itself when `start` is empty).
  virtual std::unique_ptr<Cursor> Scan(Family f, absl::string_view prefix,
                                       absl::string_view start = {}) const = 0;
};

// `*cursor` (a cursor of `r` over `f`, created at first use) positioned at
// `prefix`: many prefixes of one family read through one cursor.
inline Cursor* ScanReusing(const Reader& r, Family f, absl::string_view prefix,
                           std::unique_ptr<Cursor>* cursor) {
  if (*cursor == nullptr) {
    *cursor = r.Scan(f, prefix);
  } else {
    (*cursor)->Seek(prefix);
  }
  return cursor->get();
}

// Pending changes that read through to the latest committed state.
class WriteSet : public Reader {
 public:
  virtual void Put(Family f, absl::string_view key, absl::string_view value) = 0;
  virtual void Delete(Family f, absl::string_view key) = 0;
  // Save points nest; RollbackToSavePoint undoes every change since the most
  // recent one and removes it, PopSavePoint removes it and keeps the changes.
  virtual void SetSavePoint() = 0;
  virtual void RollbackToSavePoint() = 0;
  virtual void PopSavePoint() = 0;
  virtual size_t ApproximateBytes() const = 0;
  virtual bool Empty() const = 0;
};

// What a family holds, in bytes: its table files on disk and its memtables
// in memory (whose changes are also in the write-ahead log).
struct FamilyUsage {
  Family family = Family::kMeta;
  uint64_t table_bytes = 0;
  uint64_t memtable_bytes = 0;
};

struct StorageUsage {
  std::vector<FamilyUsage> families;  // In Family order.
  uint64_t wal_bytes = 0;             // Write-ahead log files, all families.
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::unique_ptr<WriteSet> NewWriteSet() = 0;
  // Applies every change of `ws` atomically. With `sync` the changes are on
  // stable storage before this returns. Returns UNAVAILABLE on an I/O error,
  // after which the engine may refuse further writes.
  virtual absl::Status Commit(WriteSet& ws, bool sync) = 0;
  // A consistent point-in-time view of the committed state.
  virtual std::unique_ptr<Reader> NewSnapshot() = 0;
  // Removes keys in [begin, end) of `f` (used for log retention).
  virtual absl::Status DeleteRange(Family f, absl::string_view begin, absl::string_view end) = 0;
  // Writes a consistent copy of the whole database (every family) into `dir`,
  // which must not exist: hard links to the immutable table files where the
  // file system allows, copies otherwise. The copy opens as an engine.
  virtual absl::Status CreateCheckpoint(const std::string& dir) = 0;
  // Writes every family's memtable to table files and waits for it. Writes
  // may go on meanwhile; a checkpoint taken right after has little left to
  // flush.
  virtual absl::Status Flush() = 0;
  // Where the bytes are (for NodeInfo and capacity planning).
  virtual absl::StatusOr<StorageUsage> Usage() = 0;
};

struct EngineOptions {
  // Block cache shared by the families, in bytes.
  size_t block_cache_bytes = 64 << 20;
  bool create_if_missing = true;
};

// Opens (or creates) the RocksDB engine in directory `path`.
absl::StatusOr<std::unique_ptr<Engine>> OpenRocksEngine(const std::string& path,
                                                        const EngineOptions& options);

}  // namespace dash::storage

#endif  // DASH_NODE_STORAGE_ENGINE_H_
