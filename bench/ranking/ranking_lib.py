"""Shared code of the offline ranking studies in bench/ranking/.

- An analyzer that mirrors dash::query::AnalyzeText (query/analyzer.cc) by calling
  the same system libraries DASH's CMake build links, through ctypes: the ICU word
  break iterator (root locale, UAX #29) with its rule-status filter, ICU full case
  folding (default options), Lucene's English stop set, the 64-byte token cap and
  Snowball English (libstemmer). self_test() checks it against the expectations
  of query/analyzer_test.cc.
- Data loading: SciFact (BEIR style, training claims) and the CLIMATE-FEVER
  article-retrieval task, both read from the shared data sets folder.
- DASH's BM25 (node/index/lexical_store.cc and segment_search.cc), the metrics of
  `dashctl eval` (nDCG@10, Recall@100) and a paired randomization test.

Python 3.11, standard library only.
"""
import argparse
import collections
import ctypes
import ctypes.util
import functools
import json
import math
import pathlib
import random

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_DATASETS = REPO_ROOT.parent / "shared" / "datasets"

DASH_K1, DASH_B = 0.9, 0.4  # query/shard_target.h: Anserini's BEIR defaults.

CORPORA = ("SciFact train", "CLIMATE-FEVER articles")


def argument_parser(description):
    """The command line both studies share: --datasets DIR and --json FILE."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--datasets", type=pathlib.Path, default=DEFAULT_DATASETS, metavar="DIR",
                    help="folder holding scifact/ and climate-fever/ (default: %(default)s)")
    ap.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")
    return ap


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)


# ----------------------------------------------------------------------------
# Analyzer (mirror of query/analyzer.cc)
# ----------------------------------------------------------------------------
def _load(name):
    path = ctypes.util.find_library(name)
    if path is None:
        raise OSError("lib%s not found: the ranking studies call the system ICU and libstemmer "
                      "that DASH's CMake build links (Debian: libicu72, libstemmer0d)" % name)
    return ctypes.CDLL(path), path


_icu, _icu_path = _load("icuuc")
# ICU versions its C symbols (ubrk_open_72) unless built with renaming disabled.
_ICU_SUFFIX = "_" + _icu_path.rsplit(".so.", 1)[-1].split(".")[0]


def _icu_fn(name, restype, argtypes):
    try:
        f = getattr(_icu, name + _ICU_SUFFIX)
    except AttributeError:
        f = getattr(_icu, name)
    f.restype = restype
    f.argtypes = argtypes
    return f


_UErrorCode = ctypes.c_int
_ubrk_open = _icu_fn("ubrk_open", ctypes.c_void_p,
                     [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int32,
                      ctypes.POINTER(_UErrorCode)])
_ubrk_setText = _icu_fn("ubrk_setText", None,
                        [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int32,
                         ctypes.POINTER(_UErrorCode)])
_ubrk_first = _icu_fn("ubrk_first", ctypes.c_int32, [ctypes.c_void_p])
_ubrk_next = _icu_fn("ubrk_next", ctypes.c_int32, [ctypes.c_void_p])
_ubrk_getRuleStatus = _icu_fn("ubrk_getRuleStatus", ctypes.c_int32, [ctypes.c_void_p])
_u_strFoldCase = _icu_fn("u_strFoldCase", ctypes.c_int32,
                         [ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p, ctypes.c_int32,
                          ctypes.c_uint32, ctypes.POINTER(_UErrorCode)])
UBRK_WORD = 1
UBRK_DONE = -1
UBRK_WORD_NUMBER = 100
U_FOLD_CASE_DEFAULT = 0

_sb, _ = _load("stemmer")
_sb.sb_stemmer_new.restype = ctypes.c_void_p
_sb.sb_stemmer_new.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
_sb.sb_stemmer_stem.restype = ctypes.c_void_p
_sb.sb_stemmer_stem.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
_sb.sb_stemmer_length.restype = ctypes.c_int
_sb.sb_stemmer_length.argtypes = [ctypes.c_void_p]

# Lucene's EnglishAnalyzer default stop set, as in analyzer.cc.
STOP = frozenset("""a an and are as at be but by for if in into is it no not of on or such
that the their then there these they this to was will with""".split())
MAX_TOKEN_BYTES = 64


def _check(status, what):
    if status.value > 0:  # U_FAILURE; warnings are negative.
        raise RuntimeError("%s failed: UErrorCode %d" % (what, status.value))


_status = _UErrorCode(0)
_BREAK = _ubrk_open(UBRK_WORD, b"", None, 0, ctypes.byref(_status))  # root locale
_check(_status, "ubrk_open")
_STEMMER = _sb.sb_stemmer_new(b"english", b"UTF_8")
if not _STEMMER:
    raise RuntimeError("sb_stemmer_new(english, UTF_8) failed")


@functools.lru_cache(maxsize=None)
def _stem(folded_utf8):
    p = _sb.sb_stemmer_stem(_STEMMER, folded_utf8, len(folded_utf8))
    if not p:
        raise MemoryError("sb_stemmer_stem")
    return ctypes.string_at(p, _sb.sb_stemmer_length(_STEMMER)).decode("utf-8")


def _folded_words(text):
    """The case-folded UTF-8 form of every word or number segment of text, in order."""
    raw = text.encode("utf-16-le", errors="replace")
    n = len(raw) // 2
    if n == 0:
        return []
    buf = ctypes.create_string_buffer(raw, len(raw) + 2)
    status = _UErrorCode(0)
    _ubrk_setText(_BREAK, buf, n, ctypes.byref(status))
    _check(status, "ubrk_setText")
    addr = ctypes.addressof(buf)
    words = []
    start = _ubrk_first(_BREAK)
    end = _ubrk_next(_BREAK)
    while end != UBRK_DONE:
        # Rule status below UBRK_WORD_NUMBER marks spaces and punctuation.
        if _ubrk_getRuleStatus(_BREAK) >= UBRK_WORD_NUMBER:
            length = end - start
            cap = 3 * length + 8  # full case folding expands at most threefold
            dest = ctypes.create_string_buffer(2 * cap)
            status = _UErrorCode(0)
            m = _u_strFoldCase(dest, cap, addr + 2 * start, length, U_FOLD_CASE_DEFAULT,
                               ctypes.byref(status))
            _check(status, "u_strFoldCase")
            words.append(dest.raw[: 2 * m].decode("utf-16-le", errors="replace").encode("utf-8"))
        start = end
        end = _ubrk_next(_BREAK)
    return words


def analyze_positions(text):
    """AnalyzeText with word positions: ([(term, position)], word count).

    A term's position is the ordinal of its word among all word and number
    segments of text, so stopwords and over-long tokens still occupy a position
    (as with position increments in Lucene, Terrier or Wumpus)."""
    out = []
    words = _folded_words(text)
    for pos, folded in enumerate(words):
        if len(folded) <= MAX_TOKEN_BYTES and folded.decode("utf-8") not in STOP:
            out.append((_stem(folded), pos))
    return out, len(words)


@functools.lru_cache(maxsize=None)
def analyze(text):
    """dash::query::AnalyzeText: the terms of text in order, duplicates kept (a tuple)."""
    return tuple(t for t, _ in analyze_positions(text)[0])


def self_test():
    """Fail unless the mirror meets the expectations of query/analyzer_test.cc."""
    cases = [
        (analyze("The polar bears are RUNNING into the melting ice."),
         ("polar", "bear", "run", "melt", "ice")),
        (analyze("CO2 rose 1.1 degrees -- (since 1850)!"),
         ("co2", "rose", "1.1", "degre", "sinc", "1850")),
        (analyze("STRASSE"), analyze("stra\u00dfe")),
        (analyze("\u03a3\u0399\u03a3"), analyze("\u03c3\u03b9\u03c2")),
        (analyze("caf\u00e9"), ("caf\u00e9",)),
        (analyze("warming"), analyze("warmed")),
        (analyze("Extinctions"), analyze("extinction")),
        (analyze(""), ()),
        (analyze("the and of, to!"), ()),
        (analyze("x" * 200), ()),
    ]
    for i, (got, want) in enumerate(cases):
        if got != want:
            raise RuntimeError("analyzer mirror disagrees with query/analyzer_test.cc (case %d): "
                               "%r != %r" % (i, got, want))


# ----------------------------------------------------------------------------
# Data. A document is (id, title, [quotes]); DASH indexes one field: the title
# followed by every evidence quote, each analysed separately and concatenated.
# A query is (claim text, set of relevant document ids).
# ----------------------------------------------------------------------------
def load_scifact(datasets):
    """SciFact, BEIR style: the 5,183 abstracts (title + sentences, as `dashctl
    convert scifact` ingests them) and the training claims with their cited_doc_ids."""
    docs = []
    with open(pathlib.Path(datasets, "scifact", "corpus.jsonl"), encoding="utf-8") as f:
        for line in f:
            j = json.loads(line)
            # dashctl convert scifact: whitespace-only sentences are not evidence;
            # a document without evidence is skipped; an empty title becomes the first quote.
            quotes = [s for s in j["sentences"] if s.strip(" \t\r\n")]
            if not quotes:
                continue
            title = j.get("title", "") or quotes[0]
            docs.append(("scifact-%d" % j["doc_id"], title, quotes))
    queries = []
    with open(pathlib.Path(datasets, "scifact", "claims_train.jsonl"), encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            j = json.loads(line)
            rel = {"scifact-%d" % d for d in j["cited_doc_ids"]}
            if rel:
                queries.append((j["claim"], rel))
    return docs, queries


def load_climate_fever(datasets):
    """The CLIMATE-FEVER article task: a document per Wikipedia article, its title
    and every distinct evidence sentence of it found in the file (in sentence
    order); a claim's relevant documents are the articles with at least one
    SUPPORTS or REFUTES sentence for it. Claims without one are skipped."""
    articles = collections.OrderedDict()  # title -> {sentence id: text}
    claims = []
    with open(pathlib.Path(datasets, "climate-fever", "claims.jsonl"), encoding="utf-8") as f:
        for line in f:
            j = json.loads(line)
            rel = set()
            for e in j["evidences"]:
                title = e["article"]
                sent = e["evidence_id"]
                if sent.startswith(title + ":"):
                    sent = sent[len(title) + 1:]
                articles.setdefault(title, {}).setdefault(sent, e["evidence"])
                if e["evidence_label"] in ("SUPPORTS", "REFUTES"):
                    rel.add(title)
            if rel:
                claims.append((j["claim"], rel))

    def order(s):
        return (0, int(s), "") if s.isdigit() else (1, 0, s)

    docs = [(t, t, [sents[k] for k in sorted(sents, key=order)]) for t, sents in articles.items()]
    return docs, claims


def load_corpora(datasets):
    """[(name, docs, queries)] for both tasks, in CORPORA order."""
    return [(CORPORA[0], *load_scifact(datasets)), (CORPORA[1], *load_climate_fever(datasets))]


# ----------------------------------------------------------------------------
# DASH's BM25 over its single field
# ----------------------------------------------------------------------------
class Bm25Index:
    """Term frequencies, lengths and postings of DASH's single field.

    doc_terms[i] is document i's analysed terms (title then quotes)."""

    def __init__(self, ids, doc_terms):
        self.ids = list(ids)
        self.n = len(self.ids)
        self.tf = [collections.Counter(terms) for terms in doc_terms]
        self.len = [len(terms) for terms in doc_terms]
        self.avgdl = max(1.0, sum(self.len) / self.n)
        self.post = collections.defaultdict(list)  # term -> ascending document numbers
        for i, c in enumerate(self.tf):
            for t in c:
                self.post[t].append(i)

    def df(self, term):
        return len(self.post.get(term, ()))

    def idf(self, term):
        df = self.df(term)
        return math.log(1.0 + (self.n - df + 0.5) / (df + 0.5))

    def K(self, i, k1, b):
        """BM25's length normalization of document i: k1 (1 - b + b len / avgdl)."""
        return k1 * (1.0 - b + b * self.len[i] / self.avgdl)

    def scores(self, qterms, k1=DASH_K1, b=DASH_B):
        """{document: score} as LexicalStore::Search computes it: each distinct
        query term weighs qtf * idf, and adds weight * tf (k1 + 1) / (tf + K)."""
        scores = collections.defaultdict(float)
        for term, q in collections.Counter(qterms).items():
            plist = self.post.get(term)
            if not plist:
                continue
            w = q * self.idf(term)
            for i in plist:
                tf = self.tf[i][term]
                scores[i] += w * tf * (k1 + 1.0) / (tf + self.K(i, k1, b))
        return scores

    def rank(self, scored):
        """(document, score) pairs in DASH's order: score descending, then id ascending."""
        return sorted(scored, key=lambda x: (-x[1], self.ids[x[0]]))


# ----------------------------------------------------------------------------
# Metrics and significance
# ----------------------------------------------------------------------------
def metrics(ranked_ids, rel):
    """(nDCG@10, Recall@100) of one ranking, binary relevance, as `dashctl eval`
    computes them: the ideal DCG is over min(10, |rel|) relevant documents."""
    dcg = sum(1.0 / math.log2(r + 2) for r, h in enumerate(ranked_ids[:10]) if h in rel)
    idcg = sum(1.0 / math.log2(r + 2) for r in range(min(10, len(rel))))
    return dcg / idcg, sum(1 for h in ranked_ids[:100] if h in rel) / len(rel)


def mean(xs):
    return sum(xs) / len(xs)


def paired_p(x, y, samples=10000, seed=1):
    """Two-sided paired randomization (sign-flip) test on mean(x - y)."""
    d = [a - b for a, b in zip(x, y)]
    obs = abs(sum(d))
    rng = random.Random(seed)
    hits = 0
    for _ in range(samples):
        s = sum(v if rng.random() < 0.5 else -v for v in d)
        if abs(s) >= obs - 1e-12:
            hits += 1
    return (hits + 1) / (samples + 1)


def wins_ties_losses(x, y, eps=1e-12):
    """Per-query counts of x above, equal to (within eps) and below y."""
    return (sum(a > b + eps for a, b in zip(x, y)),
            sum(abs(a - b) <= eps for a, b in zip(x, y)),
            sum(a < b - eps for a, b in zip(x, y)))
