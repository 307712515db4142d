#!/usr/bin/env python3
"""Offline study: DASH's single-field BM25 against BM25F (per-field statistics
for the title and the evidence quotes) on SciFact train and on the
CLIMATE-FEVER article task. See README.md in this folder.

Every variant and constant is fixed a priori in VARIANTS; nothing is tuned on
these data. Prints a Markdown table to stdout and progress to stderr.
"""
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ranking_lib as rl  # noqa: E402


class FieldIndex(rl.Bm25Index):
    """DASH's single field plus per-field statistics for 'title' and 'body'
    (the quotes); a term's df is over documents holding it in any field."""

    def __init__(self, docs):
        titles = [list(rl.analyze(title)) for _, title, _ in docs]
        bodies = [[t for q in quotes for t in rl.analyze(q)] for _, _, quotes in docs]
        super().__init__([d[0] for d in docs], [t + b for t, b in zip(titles, bodies)])
        self.fields = {"title": [(collections.Counter(t), len(t)) for t in titles],
                       "body": [(collections.Counter(b), len(b)) for b in bodies]}
        self.avg = {f: max(1.0, sum(n for _, n in v) / self.n) for f, v in self.fields.items()}

    def bm25f_scores(self, qterms, k1, fields):
        """Simple BM25F (Robertson, Zaragoza & Taylor 2004; Robertson & Zaragoza
        2009, section 3.5), with DASH's idf and query-term multiplicity:
          tf~ = sum_f w_f tf_f / (1 - b_f + b_f len_f / avglen_f)
          score = sum_t qtf idf(t) tf~ (k1 + 1) / (k1 + tf~)
        fields: [(name, w_f, b_f)]."""
        scores = collections.defaultdict(float)
        for term, q in collections.Counter(qterms).items():
            plist = self.post.get(term)
            if not plist:
                continue
            w = q * self.idf(term)
            for i in plist:
                tft = 0.0
                for f, wf, bf in fields:
                    c, length = self.fields[f][i]
                    tf = c.get(term, 0)
                    if tf:
                        tft += wf * tf / (1.0 - bf + bf * length / self.avg[f])
                if tft > 0:
                    scores[i] += w * tft * (k1 + 1.0) / (k1 + tft)
        return scores


# Constants fixed a priori (sources in README.md). A variant is either one-field
# BM25 {k1, b} or BM25F {k1, fields: [(name, w_f, b_f)]}.
VARIANTS = collections.OrderedDict([
    ("a  BM25 1-field k1=0.9 b=0.4 (DASH today)", dict(k1=0.9, b=0.4)),
    ("b  BM25 1-field k1=1.2 b=0.75 (Lucene default)", dict(k1=1.2, b=0.75)),
    ("c  BM25F w=1,1 b=0.75,0.75 k1=1.2",
     dict(k1=1.2, fields=[("title", 1.0, 0.75), ("body", 1.0, 0.75)])),
    ("d  BM25F w=1,1 b=0.4,0.4 k1=0.9",
     dict(k1=0.9, fields=[("title", 1.0, 0.4), ("body", 1.0, 0.4)])),
    ("e1 BM25F w=1,1 b_title=0 b_body=0.75 k1=1.2 [own prior]",
     dict(k1=1.2, fields=[("title", 1.0, 0.0), ("body", 1.0, 0.75)])),
    ("e2 BM25F w=1,1 b_title=0 b_body=0.4 k1=0.9 [own prior]",
     dict(k1=0.9, fields=[("title", 1.0, 0.0), ("body", 1.0, 0.4)])),
])
BASELINE = "a"

# Per-field statistics against one field at the same k1 and b.
MATCHED = [("c", "b"), ("d", "a"), ("e1", "b"), ("e2", "a")]


def variant_id(name):
    return name.split()[0]


def evaluate(idx, queries, variant):
    """Per-query nDCG@10 and Recall@100 lists."""
    nd, rc = [], []
    for text, rel in queries:
        qterms = rl.analyze(text)
        if "fields" in variant:
            scores = idx.bm25f_scores(qterms, variant["k1"], variant["fields"])
        else:
            scores = idx.scores(qterms, variant["k1"], variant["b"])
        top = idx.rank(scores.items())[:100]
        n, r = rl.metrics([idx.ids[i] for i, _ in top], rel)
        nd.append(n)
        rc.append(r)
    return nd, rc


def main():
    args = rl.argument_parser(__doc__.split("\n\n")[0]).parse_args()
    rl.self_test()
    t0 = time.time()
    results = collections.OrderedDict()
    matched = []
    for cname, docs, queries in rl.load_corpora(args.datasets):
        idx = FieldIndex(docs)
        print("%s: %d docs, %d queries, avg len title=%.1f body=%.1f all=%.1f  (%.0fs)" % (
            cname, idx.n, len(queries), idx.avg["title"], idx.avg["body"], idx.avgdl,
            time.time() - t0), file=sys.stderr)
        per = {}
        rows = results[cname] = collections.OrderedDict()
        for vname, v in VARIANTS.items():
            nd, rc = per[variant_id(vname)] = evaluate(idx, queries, v)
            row = {"ndcg10": rl.mean(nd), "recall100": rl.mean(rc), "queries": len(nd)}
            if variant_id(vname) != BASELINE:
                bnd, brc = per[BASELINE]
                row["p_ndcg_vs_a"] = rl.paired_p(nd, bnd)
                row["p_recall_vs_a"] = rl.paired_p(rc, brc)
                row["wins_ties_losses_ndcg_vs_a"] = rl.wins_ties_losses(nd, bnd)
            rows[vname] = row
            print("  %-58s nDCG@10 %.4f  R@100 %.4f" % (vname, row["ndcg10"], row["recall100"]),
                  file=sys.stderr)
        for x, y in MATCHED:
            (xn, xr), (yn, yr) = per[x], per[y]
            matched.append("| %s | %s vs %s | %+.4f (p=%.3f) | %+.4f (p=%.3f) |" % (
                cname, x, y, rl.mean(xn) - rl.mean(yn), rl.paired_p(xn, yn),
                rl.mean(xr) - rl.mean(yr), rl.paired_p(xr, yr)))

    names = list(results)
    print("| variant | " + " | ".join("%s nDCG@10 | %s R@100" % (c, c) for c in names) + " |")
    print("|---|" + "---|---|" * len(names))
    for vname in VARIANTS:
        cells = []
        for c in names:
            r = results[c][vname]
            for metric, p in (("ndcg10", "p_ndcg_vs_a"), ("recall100", "p_recall_vs_a")):
                cells.append("%.4f" % r[metric] + (" (p=%.3f)" % r[p] if p in r else ""))
        print("| %s | %s |" % (vname, " | ".join(cells)))
    print("\nnDCG@10 per-query wins/ties/losses vs a:")
    for c in names:
        for vname, r in results[c].items():
            if "wins_ties_losses_ndcg_vs_a" in r:
                print("  %-24s %-58s %s" % (c, vname, "/".join(map(str, r["wins_ties_losses_ndcg_vs_a"]))))
    print("\nMatched pairs (BM25F minus 1-field BM25 at the same k1/b), paired randomization p:")
    print("| corpus | pair | d nDCG@10 | d R@100 |\n|---|---|---|---|")
    print("\n".join(matched))
    if args.json:
        rl.write_json(args.json, results)
    print("elapsed %.0fs" % (time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
