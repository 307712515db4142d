#include "node/index/segment_file.h"

#include <sys/stat.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "node/storage/file_util.h"
#include "zlib.h"

namespace dash::index {
namespace {

using google::protobuf::io::CodedInputStream;
using google::protobuf::io::CodedOutputStream;

constexpr absl::string_view kMagic("DASHSEG\0", 8);
constexpr absl::string_view kFooterMagic = "GESD";
constexpr size_t kKindBytes = 4;
constexpr size_t kHeaderBytes = kMagic.size() + kKindBytes + 4 + kSegmentIdBytes;
constexpr size_t kFooterBytes = 8 + 4 + kFooterMagic.size();

uint32_t Crc32(absl::string_view data) {
  return static_cast<uint32_t>(
      crc32_z(crc32_z(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(data.data()), data.size()));
}

void Append32(uint32_t v, std::string* out) {
  uint8_t b[4];
  CodedOutputStream::WriteLittleEndian32ToArray(v, b);
  out->append(reinterpret_cast<const char*>(b), 4);
}

void Append64(uint64_t v, std::string* out) {
  uint8_t b[8];
  CodedOutputStream::WriteLittleEndian64ToArray(v, b);
  out->append(reinterpret_cast<const char*>(b), 8);
}

uint32_t Load32(absl::string_view at) {
  uint32_t v = 0;
  CodedInputStream::ReadLittleEndian32FromArray(reinterpret_cast<const uint8_t*>(at.data()), &v);
  return v;
}

uint64_t Load64(absl::string_view at) {
  uint64_t v = 0;
  CodedInputStream::ReadLittleEndian64FromArray(reinterpret_cast<const uint8_t*>(at.data()), &v);
  return v;
}

absl::Status CheckInfo(const SegmentFileInfo& info) {
  if (info.kind.size() != kKindBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("segment file kind \"", absl::CEscape(info.kind), "\" is not 4 bytes"));
  }
  if (info.segment_id.size() != kSegmentIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("segment id has ", info.segment_id.size(), " bytes, not ", kSegmentIdBytes));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> FrameSegmentFile(const SegmentFileInfo& info, absl::string_view body) {
  DASH_RETURN_IF_ERROR(CheckInfo(info));
  std::string file;
  file.reserve(kHeaderBytes + body.size() + kFooterBytes);
  file.append(kMagic.data(), kMagic.size());
  file.append(info.kind);
  Append32(info.version, &file);
  file.append(info.segment_id);
  file.append(body.data(), body.size());
  const uint32_t crc = Crc32(file);
  Append64(body.size(), &file);
  Append32(crc, &file);
  file.append(kFooterMagic.data(), kFooterMagic.size());
  return file;
}

absl::StatusOr<absl::string_view> UnframeSegmentFile(absl::string_view file,
                                                     const SegmentFileInfo& expected,
                                                     absl::string_view name, uint32_t* version) {
  DASH_RETURN_IF_ERROR(CheckInfo(expected));
  auto corrupt = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("segment file ", name, ": ", why));
  };
  if (file.size() < kHeaderBytes + kFooterBytes) return corrupt("truncated");
  if (file.substr(0, kMagic.size()) != kMagic) return corrupt("not a DASH segment file");
  const absl::string_view footer = file.substr(file.size() - kFooterBytes);
  if (footer.substr(12) != kFooterMagic) return corrupt("no footer (truncated?)");
  const uint64_t body_bytes = Load64(footer);
  if (body_bytes != file.size() - kHeaderBytes - kFooterBytes) {
    return corrupt("its length does not match its footer (truncated?)");
  }
  const absl::string_view covered = file.substr(0, file.size() - kFooterBytes);
  if (Crc32(covered) != Load32(footer.substr(8))) return corrupt("checksum mismatch");
  const absl::string_view kind = file.substr(kMagic.size(), kKindBytes);
  const uint32_t file_version = Load32(file.substr(kMagic.size() + kKindBytes));
  const absl::string_view id = file.substr(kMagic.size() + kKindBytes + 4, kSegmentIdBytes);
  if (kind != expected.kind) {
    return absl::FailedPreconditionError(absl::StrCat("segment file ", name, " is a \"",
                                                      absl::CEscape(kind), "\" file, not \"",
                                                      absl::CEscape(expected.kind), "\""));
  }
  if (id != expected.segment_id) {
    return absl::FailedPreconditionError(absl::StrCat("segment file ", name, " belongs to segment ",
                                                      absl::BytesToHexString(id), ", not ",
                                                      absl::BytesToHexString(expected.segment_id)));
  }
  if (file_version > expected.version) {
    return absl::FailedPreconditionError(absl::StrCat("segment file ", name, " has format version ",
                                                      file_version, "; this DASH reads up to ",
                                                      expected.version));
  }
  if (version != nullptr) *version = file_version;
  return file.substr(kHeaderBytes, body_bytes);
}

absl::Status WriteSegmentFile(const std::string& path, const SegmentFileInfo& info,
                              absl::string_view body) {
  return WriteSegmentFile(path, info, std::vector<absl::string_view>{body});
}

absl::Status WriteSegmentFile(const std::string& path, const SegmentFileInfo& info,
                              const std::vector<absl::string_view>& parts) {
  DASH_RETURN_IF_ERROR(CheckInfo(info));
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("segment file ", path, " exists; segment files are immutable"));
  }
  // The same bytes as FrameSegmentFile, the CRC computed part by part.
  std::string header;
  header.append(kMagic.data(), kMagic.size());
  header.append(info.kind);
  Append32(info.version, &header);
  header.append(info.segment_id);
  uLong crc =
      crc32_z(crc32_z(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(header.data()), header.size());
  uint64_t body_bytes = 0;
  for (absl::string_view part : parts) {
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(part.data()), part.size());
    body_bytes += part.size();
  }
  std::string footer;
  Append64(body_bytes, &footer);
  Append32(static_cast<uint32_t>(crc), &footer);
  footer.append(kFooterMagic.data(), kFooterMagic.size());
  std::vector<absl::string_view> all;
  all.reserve(parts.size() + 2);
  all.push_back(header);
  all.insert(all.end(), parts.begin(), parts.end());
  all.push_back(footer);
  return storage::WriteFileAtomically(path, path + ".tmp", all);
}

absl::StatusOr<std::string> ReadSegmentFile(const std::string& path,
                                            const SegmentFileInfo& expected, uint32_t* version) {
  DASH_ASSIGN_OR_RETURN(std::string file, storage::ReadFile(path));
  DASH_ASSIGN_OR_RETURN(absl::string_view body, UnframeSegmentFile(file, expected, path, version));
  return std::string(body);
}

}  // namespace dash::index
