#include "query/analyzer.h"

#include <libstemmer.h>

#include <memory>

#include "absl/container/flat_hash_set.h"
#include "unicode/brkiter.h"
#include "unicode/locid.h"
#include "unicode/unistr.h"

namespace dash::query {
namespace {

constexpr size_t kMaxTokenBytes = 64;

// Lucene's EnglishAnalyzer default stop set, the usual BM25 baseline's.
bool IsStopword(const std::string& w) {
  static const auto* kStop = new absl::flat_hash_set<std::string>{
      "a",   "an",    "and",  "are",   "as",    "at",   "be",   "but", "by",  "for",  "if",
      "in",  "into",  "is",   "it",    "no",    "not",  "of",   "on",  "or",  "such", "that",
      "the", "their", "then", "there", "these", "they", "this", "to",  "was", "will", "with"};
  return kStop->contains(w);
}

struct ThreadState {
  ThreadState() {
    UErrorCode status = U_ZERO_ERROR;
    words.reset(icu::BreakIterator::createWordInstance(icu::Locale::getRoot(), status));
    if (U_FAILURE(status)) words.reset();
    stemmer = sb_stemmer_new("english", "UTF_8");
  }
  ~ThreadState() {
    if (stemmer != nullptr) sb_stemmer_delete(stemmer);
  }
  std::unique_ptr<icu::BreakIterator> words;
  sb_stemmer* stemmer = nullptr;
};

ThreadState& State() {
  thread_local ThreadState state;
  return state;
}

}  // namespace

std::vector<std::string> AnalyzeText(absl::string_view text) {
  std::vector<std::string> terms;
  ThreadState& st = State();
  if (st.words == nullptr || st.stemmer == nullptr) return terms;
  const icu::UnicodeString utext = icu::UnicodeString::fromUTF8(
      icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  st.words->setText(utext);
  int32_t start = st.words->first();
  for (int32_t end = st.words->next(); end != icu::BreakIterator::DONE;
       start = end, end = st.words->next()) {
    // Rule status: UBRK_WORD_NONE (< 100) marks spaces and punctuation.
    if (st.words->getRuleStatus() < UBRK_WORD_NUMBER) continue;
    icu::UnicodeString word(utext, start, end - start);
    word.foldCase();
    std::string folded;
    word.toUTF8String(folded);
    if (folded.size() > kMaxTokenBytes || IsStopword(folded)) continue;
    const sb_symbol* stem =
        sb_stemmer_stem(st.stemmer, reinterpret_cast<const sb_symbol*>(folded.data()),
                        static_cast<int>(folded.size()));
    if (stem == nullptr) continue;  // Out of memory in the stemmer.
    terms.emplace_back(reinterpret_cast<const char*>(stem), sb_stemmer_length(st.stemmer));
  }
  return terms;
}

}  // namespace dash::query
