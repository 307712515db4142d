// The text analyzer of the lexical index: Unicode word segmentation (ICU's
// UAX #29 word break rules), Unicode case folding, stopword removal and
// Snowball stemming (libstemmer). Indexing and querying must use the same
// analyzer, so its behaviour is part of the on-disk format: changing it
// requires re-indexing.
//
// Thread-safe: per-thread ICU and Snowball state.
#ifndef DASH_QUERY_ANALYZER_H_
#define DASH_QUERY_ANALYZER_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace dash::query {

// Analyzes `text` into index terms, in text order (duplicates kept):
// words and numbers only, case-folded, English stopwords (Lucene's default
// set) removed, stemmed with Snowball's English (Porter2) stemmer. Tokens
// longer than 64 bytes are dropped. Invalid UTF-8 is replaced, not rejected.
std::vector<std::string> AnalyzeText(absl::string_view text);

}  // namespace dash::query

#endif  // DASH_QUERY_ANALYZER_H_
