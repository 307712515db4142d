#!/usr/bin/env python3
"""Offline study: does a term-proximity feature, with constants fixed a priori
from the literature, improve DASH's BM25 (k1=0.9, b=0.4) on SciFact train and
on the CLIMATE-FEVER article task? Also estimates what storing positions would
cost the index. See README.md in this folder.

Every variant and constant is fixed a priori in VARIANTS; nothing is tuned on
these data. Prints a Markdown table to stdout and progress to stderr.
"""
import collections
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ranking_lib as rl  # noqa: E402

RERANK_DEPTH = 1000  # proximity re-ranks BM25's top 1000
SEGMENT_GAP = 100    # position gap between the title and each quote, and between quotes


class PosIndex(rl.Bm25Index):
    """DASH's single field (title + quotes) with per-document term positions
    under two schemes:
      'raw': the word's ordinal among all word and number segments, so stopwords
             and over-long tokens still occupy a position (distances in the text);
      'ord': the term's ordinal in DASH's analysed term stream.
    Both leave SEGMENT_GAP positions between segments. 'flat' holds the 'ord'
    positions without the gaps, which is what DASH would store (cost only)."""

    def __init__(self, docs):
        self.pos = {"raw": [], "ord": []}
        self.flat = []
        doc_terms = []
        for _, title, quotes in docs:
            praw = collections.defaultdict(list)
            pord = collections.defaultdict(list)
            pflat = collections.defaultdict(list)
            next_raw = next_ord = 0
            terms = []
            for seg_i, seg in enumerate([title] + list(quotes)):
                toks, nwords = rl.analyze_positions(seg)
                if seg_i > 0:
                    next_raw += SEGMENT_GAP
                    next_ord += SEGMENT_GAP
                for k, (t, w) in enumerate(toks):
                    praw[t].append(next_raw + w)
                    pord[t].append(next_ord + k)
                    pflat[t].append(len(terms))
                    terms.append(t)
                next_raw += nwords
                next_ord += len(toks)
            doc_terms.append(terms)
            self.pos["raw"].append(dict(praw))
            self.pos["ord"].append(dict(pord))
            self.flat.append(dict(pflat))
        super().__init__([d[0] for d in docs], doc_terms)


# ----------------------------------------------------------------------------
# Proximity features of one document for one query. positions: term -> sorted
# positions in the document; qterms_distinct: the query's distinct terms.
# ----------------------------------------------------------------------------
def tp_rasolofo_savoy(idx, i, positions, qterms_distinct, wq, k1, b, window=5):
    """Rasolofo & Savoy, ECIR 2003, TPRSV:
    tpi(ki,kj) = 1/d^2 for each occurrence pair of two distinct query terms with
    d <= window (5); per term pair t=(ki,kj):
      w_d(t) = (k1+1) * sum tpi / (K + sum tpi),  K = k1((1-b) + b*dl/avdl)
    TPRSV = sum_pairs w_d(t) * min(w_q(ki), w_q(kj)); w_q = DASH's query weight
    (qtf * idf)."""
    K = idx.K(i, k1, b)
    present = [t for t in qterms_distinct if t in positions]
    s = 0.0
    for a in range(len(present)):
        pa = positions[present[a]]
        for c in range(a + 1, len(present)):
            pc = positions[present[c]]
            acc = 0.0
            for x in pa:
                for y in pc:
                    d = abs(x - y)
                    if 0 < d <= window:
                        acc += 1.0 / (d * d)
            if acc > 0:
                s += (k1 + 1.0) * acc / (K + acc) * min(wq[present[a]], wq[present[c]])
    return s


def tp_buettcher(idx, i, positions, qterms_distinct, k1, b):
    """Buettcher, Clarke & Lushman, SIGIR 2006: walk the document's query-term
    occurrences in position order; for each adjacent pair of occurrences of
    DIFFERENT terms (T_prev, T_cur) at distance d:
      acc(T_cur) += w(T_prev) * d^-2 ;  acc(T_prev) += w(T_cur) * d^-2
    with w(T) = log(N/N_T). Score addition:
      sum_T min(1, w_T) * acc(T) * (k1+1) / (acc(T) + K)."""
    occ = []
    for t in qterms_distinct:
        p = positions.get(t)
        if p:
            occ.extend((x, t) for x in p)
    if len(occ) < 2:
        return 0.0
    occ.sort()
    w = {t: math.log(idx.n / idx.df(t)) for t in qterms_distinct if t in positions}
    acc = collections.defaultdict(float)
    for (p0, t0), (p1, t1) in zip(occ, occ[1:]):
        if t0 != t1:
            inv = 1.0 / ((p1 - p0) ** 2)
            acc[t1] += w[t0] * inv
            acc[t0] += w[t1] * inv
    K = idx.K(i, k1, b)
    return sum(min(1.0, w[t]) * a * (k1 + 1.0) / (a + K) for t, a in acc.items())


def tp_tao_zhai(idx, i, positions, qterms_distinct, alpha=0.3):
    """Tao & Zhai, SIGIR 2007: pi(Q,D) = log(alpha + exp(-MinDist)), MinDist =
    smallest distance between occurrences of two different query terms; a
    document matching only one distinct query term gets MinDist = |D|."""
    present = [t for t in qterms_distinct if t in positions]
    if len(present) < 2:
        md = idx.len[i]
    else:
        occ = sorted((x, t) for t in present for x in positions[t])
        md = min(p1 - p0 for (p0, t0), (p1, t1) in zip(occ, occ[1:]) if t0 != t1)
    return math.log(alpha + math.exp(-md))


# Fixed a priori (sources in README.md). name -> (feature, position scheme, constants).
VARIANTS = collections.OrderedDict()
for scheme in ("raw", "ord"):
    VARIANTS["RS  %s  R&S 2003, K(k1=1.2,b=0.75), win 5" % scheme] = ("rs", scheme, dict(k1=1.2, b=0.75))
    VARIANTS["RSd %s  R&S 2003, K(k1=0.9,b=0.4), win 5" % scheme] = ("rs", scheme, dict(k1=0.9, b=0.4))
    VARIANTS["BCL %s  Buettcher 2006, K(k1=1.2,b=0.75)" % scheme] = ("bcl", scheme, dict(k1=1.2, b=0.75))
    VARIANTS["BCLd %s Buettcher 2006, K(k1=0.9,b=0.4)" % scheme] = ("bcl", scheme, dict(k1=0.9, b=0.4))
    VARIANTS["TZ  %s  Tao&Zhai 2007 MinDist, alpha=0.3" % scheme] = ("tz", scheme, dict(alpha=0.3))


def proximity(idx, i, kind, scheme, kw, qd, wq):
    positions = idx.pos[scheme][i]
    if kind == "rs":
        return tp_rasolofo_savoy(idx, i, positions, qd, wq, **kw)
    if kind == "bcl":
        return tp_buettcher(idx, i, positions, qd, **kw)
    return tp_tao_zhai(idx, i, positions, qd, **kw)


def run_corpus(idx, queries):
    """Per-query (nDCG@10 list, Recall@100 list) for "BM25" and every variant."""
    per = {v: ([], []) for v in ["BM25"] + list(VARIANTS)}

    def record(v, ranked, rel):
        nd, rc = rl.metrics([idx.ids[i] for i, _ in ranked[:100]], rel)
        per[v][0].append(nd)
        per[v][1].append(rc)

    for text, rel in queries:
        qterms = rl.analyze(text)
        qtf = collections.Counter(qterms)
        qd = list(qtf)
        wq = {t: qtf[t] * idx.idf(t) for t in qd}
        top = idx.rank(idx.scores(qterms).items())
        record("BM25", top, rel)
        cand = top[:RERANK_DEPTH]
        for v, (kind, scheme, kw) in VARIANTS.items():
            record(v, idx.rank((i, s + proximity(idx, i, kind, scheme, kw, qd, wq)) for i, s in cand),
                   rel)
    return per


def index_cost(idx):
    """Positions cost: per posting, positions = tf (title + quotes). Sizes of the
    position stream if delta-coded within each posting (first absolute, then
    gaps; contiguous ordinals without the segment gaps) with classic VByte and
    with Stream VByte (1-4 data bytes + 2 control bits per integer), against the
    doc-delta + (tf-1) streams DASH stores today (Stream VByte)."""
    def vbyte(x):
        n = 1
        while x >= 128:
            x >>= 7
            n += 1
        return n

    def svb(x):
        return 1 if x < (1 << 8) else 2 if x < (1 << 16) else 3 if x < (1 << 24) else 4

    postings = sum(len(c) for c in idx.tf)
    positions = sum(idx.len)
    vb = sv = 0.0
    for flat in idx.flat:
        for ps in flat.values():
            prev = 0
            for x in ps:
                vb += vbyte(x - prev)
                sv += svb(x - prev) + 0.25
                prev = x
    cur = 0.0
    for t, plist in idx.post.items():
        prev = 0
        for i in plist:
            cur += svb(i - prev) + 0.25 + svb(idx.tf[i][t] - 1) + 0.25
            prev = i
    return dict(docs=idx.n, postings=postings, positions=positions,
                positions_per_posting=positions / postings,
                positions_per_doc=positions / idx.n,
                pos_bytes_vbyte=vb, pos_bytes_streamvbyte=sv,
                postings_bytes_streamvbyte_today=cur)


def main():
    args = rl.argument_parser(__doc__.split("\n\n")[0]).parse_args()
    rl.self_test()
    t0 = time.time()
    results = collections.OrderedDict()
    costs = collections.OrderedDict()
    for cname, docs, queries in rl.load_corpora(args.datasets):
        idx = PosIndex(docs)
        costs[cname] = index_cost(idx)
        print("%s: %d docs, %d queries, avgdl %.1f (%.0fs)" % (cname, idx.n, len(queries), idx.avgdl,
                                                               time.time() - t0), file=sys.stderr)
        per = run_corpus(idx, queries)
        bnd, brc = per["BM25"]
        rows = results[cname] = collections.OrderedDict()
        for v, (nd, rc) in per.items():
            row = {"ndcg10": rl.mean(nd), "recall100": rl.mean(rc), "queries": len(nd)}
            if v != "BM25":
                row["p_ndcg"] = rl.paired_p(nd, bnd)
                row["p_recall"] = rl.paired_p(rc, brc)
                row["wtl_ndcg"] = rl.wins_ties_losses(nd, bnd)
            rows[v] = row
            print("  %-46s nDCG@10 %.4f R@100 %.4f" % (v, row["ndcg10"], row["recall100"]), file=sys.stderr)

    names = list(results)
    print("| variant | " + " | ".join("%s nDCG@10 | %s R@100" % (c, c) for c in names) + " |")
    print("|---|" + "---|---|" * len(names))
    for v in ["BM25"] + list(VARIANTS):
        cells = []
        for c in names:
            r, base = results[c][v], results[c]["BM25"]
            for metric, p in (("ndcg10", "p_ndcg"), ("recall100", "p_recall")):
                if v == "BM25":
                    cells.append("%.4f" % r[metric])
                else:
                    cells.append("%.4f (%+.4f, p=%.3f)" % (r[metric], r[metric] - base[metric], r[p]))
        print("| %s | %s |" % (v if v != "BM25" else "BM25 k1=0.9 b=0.4 (DASH today)", " | ".join(cells)))
    print("\nnDCG@10 per-query wins/ties/losses vs BM25:")
    for c in names:
        for v, r in results[c].items():
            if "wtl_ndcg" in r:
                print("  %-24s %-46s %s" % (c, v, "/".join(map(str, r["wtl_ndcg"]))))
    print("\nIndex cost of positions:")
    for c, d in costs.items():
        print("  %s: %s" % (c, ", ".join("%s=%s" % (k, ("%.2f" % v) if isinstance(v, float) else v)
                                          for k, v in d.items())))
    if args.json:
        rl.write_json(args.json, {"results": results, "index_cost": costs})
    print("elapsed %.0fs" % (time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
