// Deterministic protobuf serialization, for digests and keys derived from
// message content. (Plain SerializeAsString orders map entries by hash, which
// differs between processes.) Thread-safe: pure function.
#ifndef DASH_COMMON_PROTO_BYTES_H_
#define DASH_COMMON_PROTO_BYTES_H_

#include <string>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/message_lite.h"

namespace dash {

inline std::string DeterministicSerialize(const google::protobuf::MessageLite& m) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream out(&bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return bytes;
}

}  // namespace dash

#endif  // DASH_COMMON_PROTO_BYTES_H_
