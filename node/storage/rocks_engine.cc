// RocksDB implementation of the storage Engine: one DB per shard replica, one
// column family per key family.
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "node/storage/engine.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/transaction_log.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/utilities/write_batch_with_index.h"

namespace dash::storage {
namespace {

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = absl::StrCat(what, ": ", s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsInvalidArgument() || s.IsNotSupported()) return absl::InternalError(msg);
  return absl::UnavailableError(msg);
}

absl::string_view View(const rocksdb::Slice& s) { return absl::string_view(s.data(), s.size()); }
rocksdb::Slice Sl(absl::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

// Wraps a rocksdb::Iterator restricted to keys with a prefix.
class RocksCursor final : public Cursor {
 public:
  RocksCursor(std::unique_ptr<rocksdb::Iterator> it, std::string prefix, absl::string_view start)
      : it_(std::move(it)), prefix_(std::move(prefix)) {
    it_->Seek(Sl(start.empty() || start < absl::string_view(prefix_) ? absl::string_view(prefix_)
                                                                     : start));
  }
  bool Valid() const override {
    return it_->Valid() && absl::StartsWith(View(it_->key()), prefix_);
  }
  absl::string_view key() const override { return View(it_->key()); }
  absl::string_view value() const override { return View(it_->value()); }
  void Next() override { it_->Next(); }
  void Seek(absl::string_view prefix) override {
    prefix_.assign(prefix.data(), prefix.size());
    it_->Seek(Sl(prefix_));
  }
  absl::Status status() const override { return FromRocks(it_->status(), "iterator"); }

 private:
  // A write set's merged iterator owns (and deletes) its base iterator.
  std::unique_ptr<rocksdb::Iterator> it_;
  std::string prefix_;
};

class RocksEngine;

class RocksSnapshot final : public Reader {
 public:
  RocksSnapshot(rocksdb::DB* db, const std::vector<rocksdb::ColumnFamilyHandle*>* cfs)
      : db_(db), cfs_(cfs), snapshot_(db->GetSnapshot()) {
    options_.snapshot = snapshot_;
  }
  ~RocksSnapshot() override { db_->ReleaseSnapshot(snapshot_); }

  absl::StatusOr<std::optional<std::string>> Get(Family f, absl::string_view key) const override {
    std::string value;
    rocksdb::Status s = db_->Get(options_, (*cfs_)[static_cast<int>(f)], Sl(key), &value);
    if (s.IsNotFound()) return std::nullopt;
    if (!s.ok()) return FromRocks(s, "get");
    return value;
  }
  std::unique_ptr<Cursor> Scan(Family f, absl::string_view prefix,
                               absl::string_view start) const override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options_, (*cfs_)[static_cast<int>(f)]));
    return std::make_unique<RocksCursor>(std::move(it), std::string(prefix), start);
  }

 private:
  rocksdb::DB* const db_;
  const std::vector<rocksdb::ColumnFamilyHandle*>* const cfs_;
  const rocksdb::Snapshot* const snapshot_;
  rocksdb::ReadOptions options_;
};

class RocksWriteSet final : public WriteSet {
 public:
  RocksWriteSet(rocksdb::DB* db, const std::vector<rocksdb::ColumnFamilyHandle*>* cfs)
      : db_(db), cfs_(cfs), batch_(rocksdb::BytewiseComparator(), 0, /*overwrite_key=*/true) {}

  absl::StatusOr<std::optional<std::string>> Get(Family f, absl::string_view key) const override {
    rocksdb::PinnableSlice value;
    rocksdb::Status s = const_cast<rocksdb::WriteBatchWithIndex&>(batch_).GetFromBatchAndDB(
        db_, rocksdb::ReadOptions(), cf(f), Sl(key), &value);
    if (s.IsNotFound()) return std::nullopt;
    if (!s.ok()) return FromRocks(s, "get");
    return value.ToString();
  }
  std::unique_ptr<Cursor> Scan(Family f, absl::string_view prefix,
                               absl::string_view start) const override {
    rocksdb::Iterator* base = db_->NewIterator(rocksdb::ReadOptions(), cf(f));
    std::unique_ptr<rocksdb::Iterator> merged(
        const_cast<rocksdb::WriteBatchWithIndex&>(batch_).NewIteratorWithBase(cf(f), base));
    return std::make_unique<RocksCursor>(std::move(merged), std::string(prefix), start);
  }
  void Put(Family f, absl::string_view key, absl::string_view value) override {
    Check(batch_.Put(cf(f), Sl(key), Sl(value)));
  }
  void Delete(Family f, absl::string_view key) override { Check(batch_.Delete(cf(f), Sl(key))); }
  void SetSavePoint() override { batch_.SetSavePoint(); }
  void RollbackToSavePoint() override { Check(batch_.RollbackToSavePoint()); }
  void PopSavePoint() override { Check(batch_.PopSavePoint()); }
  size_t ApproximateBytes() const override {
    return const_cast<rocksdb::WriteBatchWithIndex&>(batch_).GetWriteBatch()->GetDataSize();
  }
  bool Empty() const override {
    return const_cast<rocksdb::WriteBatchWithIndex&>(batch_).GetWriteBatch()->Count() == 0;
  }

  rocksdb::WriteBatch* raw() { return batch_.GetWriteBatch(); }

 private:
  rocksdb::ColumnFamilyHandle* cf(Family f) const { return (*cfs_)[static_cast<int>(f)]; }
  // Staging into an in-memory batch fails only on programming errors (for
  // example a save point that does not exist).
  static void Check(const rocksdb::Status& s) {
    if (!s.ok()) {
      fprintf(stderr, "write set: %s\n", s.ToString().c_str());
      abort();
    }
  }

  rocksdb::DB* const db_;
  const std::vector<rocksdb::ColumnFamilyHandle*>* const cfs_;
  rocksdb::WriteBatchWithIndex batch_;
};

class RocksEngine final : public Engine {
 public:
  RocksEngine(std::unique_ptr<rocksdb::DB> db, std::vector<rocksdb::ColumnFamilyHandle*> cfs)
      : db_(std::move(db)), cfs_(std::move(cfs)) {}
  ~RocksEngine() override {
    for (auto* h : cfs_) db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    db_->Close().PermitUncheckedError();
  }

  std::unique_ptr<WriteSet> NewWriteSet() override {
    return std::make_unique<RocksWriteSet>(db_.get(), &cfs_);
  }
  absl::Status Commit(WriteSet& ws, bool sync) override {
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    return FromRocks(db_->Write(wo, static_cast<RocksWriteSet&>(ws).raw()), "commit");
  }
  std::unique_ptr<Reader> NewSnapshot() override {
    return std::make_unique<RocksSnapshot>(db_.get(), &cfs_);
  }
  absl::Status DeleteRange(Family f, absl::string_view begin, absl::string_view end) override {
    return FromRocks(
        db_->DeleteRange(rocksdb::WriteOptions(), cfs_[static_cast<int>(f)], Sl(begin), Sl(end)),
        "delete range");
  }
  absl::Status CreateCheckpoint(const std::string& dir) override {
    rocksdb::Checkpoint* raw = nullptr;
    DASH_RETURN_IF_ERROR(FromRocks(rocksdb::Checkpoint::Create(db_.get(), &raw), "checkpoint"));
    std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
    // No flush: the live write-ahead log is copied with the table files, and
    // opening the copy replays it. Every write goes to the log (none disables
    // it), so the copy holds exactly what was committed when it was taken, in
    // every column family alike; and the caller's pause (ShardReplica holds
    // its writes meanwhile) is only links and that short copy. (A flush here
    // would also write and sync a table file per family during the pause.)
    return FromRocks(checkpoint->CreateCheckpoint(
                         dir, /*log_size_for_flush=*/std::numeric_limits<uint64_t>::max()),
                     absl::StrCat("checkpoint into ", dir));
  }
  absl::Status Flush() override {
    rocksdb::FlushOptions options;
    options.wait = true;
    options.allow_write_stall = true;  // Never hold writes up for this flush.
    return FromRocks(db_->Flush(options, cfs_), "flush");
  }
  absl::StatusOr<StorageUsage> Usage() override {
    StorageUsage usage;
    for (int i = 0; i < static_cast<int>(Family::kCount); ++i) {
      FamilyUsage f;
      f.family = static_cast<Family>(i);
      if (!db_->GetIntProperty(cfs_[i], rocksdb::DB::Properties::kLiveSstFilesSize,
                               &f.table_bytes) ||
          !db_->GetIntProperty(cfs_[i], rocksdb::DB::Properties::kCurSizeAllMemTables,
                               &f.memtable_bytes)) {
        return absl::InternalError(absl::StrCat("no size properties for ", FamilyName(f.family)));
      }
      usage.families.push_back(f);
    }
    rocksdb::VectorLogPtr wal;
    DASH_RETURN_IF_ERROR(FromRocks(db_->GetSortedWalFiles(wal), "list write-ahead log files"));
    for (const auto& file : wal) usage.wal_bytes += file->SizeFileBytes();
    return usage;
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs_;  // Indexed by Family.
};

}  // namespace

const char* FamilyName(Family f) {
  switch (f) {
    case Family::kMeta:
      return rocksdb::kDefaultColumnFamilyName.c_str();
    case Family::kLog:
      return "log";
    case Family::kUndo:
      return "undo";
    case Family::kTenants:
      return "tenants";
    case Family::kClaims:
      return "claims";
    case Family::kEvidence:
      return "evidence";
    case Family::kEdges:
      return "edges";
    case Family::kEdgesIn:
      return "edges_in";
    case Family::kIdempotency:
      return "idempotency";
    case Family::kDocs:
      return "docs";
    case Family::kTerms:
      return "terms";
    case Family::kPostings:
      return "postings";
    case Family::kCount:
      break;
  }
  return "?";
}

absl::StatusOr<std::unique_ptr<Engine>> OpenRocksEngine(const std::string& path,
                                                        const EngineOptions& options) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table.cache_index_and_filter_blocks = true;
  // A point read (a hit's claim, an idempotency key, a tenant's state) skips
  // the files that cannot hold its key: Bloom filters, 10 bits per key
  // (about 1% false positives), as RocksDB's tuning guide suggests.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // RocksDB's compression guide: LZ4 is "almost always better than Snappy"
  // (the default), and ZSTD for the bottommost level, which holds most of
  // the data, saves space for little CPU.
  cf_options.compression = rocksdb::kLZ4Compression;
  cf_options.bottommost_compression = rocksdb::kZSTD;

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = options.create_if_missing;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  // A write-ahead log file is deleted once every family's memtable holding
  // its changes is flushed, and some families (tenants, meta) change at
  // every commit but fill their memtables slowly: without a bound, the log
  // kept every change since the last flush of the slowest family (656 MiB
  // of 1,057 on disk after 100k claims). Past this size RocksDB flushes the
  // families that hold the oldest log file.
  db_options.max_total_wal_size = 64 << 20;

  // Every write checks whether the claims, evidence and edges it writes
  // exist (counters, created_at, undo images), and most do not: a Bloom
  // filter over the memtable's keys answers those misses without walking its
  // skiplist. 1% of the 64 MiB write buffer, on these families only.
  rocksdb::ColumnFamilyOptions point_read_options = cf_options;
  point_read_options.memtable_prefix_bloom_size_ratio = 0.01;
  point_read_options.memtable_whole_key_filtering = true;

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (int i = 0; i < static_cast<int>(Family::kCount); ++i) {
    const auto f = static_cast<Family>(i);
    const bool point_reads = f == Family::kClaims || f == Family::kEvidence ||
                             f == Family::kEdges || f == Family::kIdempotency;
    descriptors.emplace_back(FamilyName(f), point_reads ? point_read_options : cf_options);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, path, descriptors, &handles, &raw);
  if (!s.ok()) return FromRocks(s, absl::StrCat("open ", path));
  return std::make_unique<RocksEngine>(std::unique_ptr<rocksdb::DB>(raw), std::move(handles));
}

}  // namespace dash::storage
