// Text checks shared by validation code. Thread-safe: pure functions.
#ifndef DASH_COMMON_TEXT_H_
#define DASH_COMMON_TEXT_H_

#include "absl/strings/string_view.h"

namespace dash {

// True when `s` is well-formed UTF-8 (no overlongs, surrogates or code points
// above U+10FFFF).
bool IsValidUtf8(absl::string_view s);

// True when `s` contains an ASCII control character (0x00-0x1F, 0x7F).
bool HasControlChars(absl::string_view s);

}  // namespace dash

#endif  // DASH_COMMON_TEXT_H_
