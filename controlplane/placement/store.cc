#include "controlplane/placement/store.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"

namespace dash::controlplane {
namespace {

// The one key of the table; see placement/store_format.md.
constexpr char kPlacementKey[] = "placement";

class RocksPlacementStore final : public PlacementStore {
 public:
  explicit RocksPlacementStore(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}

  absl::StatusOr<std::optional<v1::Placement>> Load() override {
    std::string value;
    rocksdb::Status status = db_->Get(rocksdb::ReadOptions(), kPlacementKey, &value);
    if (status.IsNotFound()) return std::nullopt;
    if (!status.ok()) {
      return absl::UnavailableError(absl::StrCat("placement store: read: ", status.ToString()));
    }
    v1::Placement placement;
    if (!placement.ParseFromString(value)) {
      return absl::DataLossError("placement store: the stored table does not parse");
    }
    return placement;
  }

  absl::Status Save(const v1::Placement& placement) override {
    std::string value;
    if (!placement.SerializeToString(&value)) {
      return absl::InternalError("placement store: cannot serialize the table");
    }
    rocksdb::WriteOptions options;
    options.sync = true;  // Durable before anyone hears of this version.
    rocksdb::Status status = db_->Put(options, kPlacementKey, value);
    if (!status.ok()) {
      return absl::UnavailableError(absl::StrCat("placement store: write: ", status.ToString()));
    }
    return absl::OkStatus();
  }

 private:
  const std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PlacementStore>> OpenRocksPlacementStore(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("placement store: cannot create ", dir, ": ", ec.message()));
  }
  rocksdb::Options options;
  options.create_if_missing = true;
  // One small key: keep the footprint small.
  options.max_open_files = 16;
  options.keep_log_file_num = 2;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status status = rocksdb::DB::Open(options, dir, &raw);
  if (!status.ok()) {
    return absl::UnavailableError(
        absl::StrCat("placement store: cannot open ", dir, ": ", status.ToString()));
  }
  return std::unique_ptr<PlacementStore>(
      new RocksPlacementStore(std::unique_ptr<rocksdb::DB>(raw)));
}

}  // namespace dash::controlplane
