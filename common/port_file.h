// The port file every DASH server writes once it serves (`--port_file`): how
// scripts and the test harness learn a port picked with `--listen=HOST:0`.
#ifndef DASH_COMMON_PORT_FILE_H_
#define DASH_COMMON_PORT_FILE_H_

#include <cstdio>
#include <fstream>
#include <string>

namespace dash {

// Writes "<port>\n" to `path` atomically (a temporary file renamed over it), so
// a reader never sees a partial number. False on any I/O error.
inline bool WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << port << "\n";
    if (!out.good()) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

}  // namespace dash

#endif  // DASH_COMMON_PORT_FILE_H_
