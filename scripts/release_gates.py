#!/usr/bin/python3
"""Release gates: what a release must not regress, each measured in this run.

  quality      SciFact nDCG@10 and Recall@100 over claims_train.jsonl (`dashctl eval` against a
               node started here), not below the baseline minus the tolerance. Needs the data set
               ($DASH_DATASETS, else ../shared/datasets beside the repository); without it the
               gate says SKIPPED, naming where it looked (with --require-data it fails).
  durability   the crash, kill, fault-campaign, failover and backup/restore tests (CTest), every
               one passing.
  performance  measured as ratios inside one run, so that a slow or busy machine does not flap
               them: DASH's ingest against raw RocksDB writing the same batches with sync
               (`ingest_bench`), and retrieval p99 per leg against the committed scorecard
               (`retrieval_bench --profile=medium`) with a generous tolerance.

Baselines and tolerances: bench/baseline/gates.json (and bench/baseline/medium.json for
retrieval). A failing gate names the figure, its baseline and the tolerance. Exit 1 when a gate
fails.

  scripts/release_gates.py [--bin=build] [--require-data] [quality] [durability] [performance]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DURABILITY_TESTS = ("CrashRecoveryTest|KillPointTest|IndexKillTest|StorageFaultTest|ClusterTest|"
                    "ClusterOpsTest|ReplicationFaultTest|BackupTest|restore_drill")


class Gates:
    def __init__(self):
        self.rows = []

    def check(self, gate, figure, value, baseline, tolerance, ok, unit=""):
        self.rows.append((gate, figure, value, baseline, tolerance, "pass" if ok else "FAIL", unit))
        if not ok:
            print("GATE FAILED: %s: %s is %s%s, baseline %s%s, tolerance %s" %
                  (gate, figure, fmt(value), unit, fmt(baseline), unit, tolerance),
                  file=sys.stderr)

    def skip(self, gate, figure, why):
        self.rows.append((gate, figure, "-", "-", "-", "SKIPPED: " + why, ""))

    def failed(self):
        return [r for r in self.rows if r[5] == "FAIL"]

    def print(self):
        print("\n| gate | figure | measured | baseline | tolerance | result |")
        print("|---|---|---|---|---|---|")
        for g, f, v, b, t, res, unit in self.rows:
            print("| %s | %s | %s%s | %s%s | %s | %s |" %
                  (g, f, fmt(v), unit if v != "-" else "", fmt(b), unit if b != "-" else "", t,
                   res))


def fmt(v):
    return "%.4g" % v if isinstance(v, float) else str(v)


def run(cmd, **kw):
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, **kw)


def start_node(work):
    """A standalone dash-node with 4 shards, plaintext, on a free port."""
    port_file = os.path.join(work, "port")
    log = open(os.path.join(work, "node.log"), "w")
    proc = subprocess.Popen([os.path.join(ARGS.bin, "node", "dash-node"),
                             "--data_dir=" + os.path.join(work, "data"), "--shard_count=4",
                             "--listen=127.0.0.1:0", "--port_file=" + port_file,
                             "--insecure_no_auth"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not (os.path.exists(port_file) and open(port_file).read().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("dash-node did not start; see " + log.name)
        time.sleep(0.05)
    return proc, "127.0.0.1:" + open(port_file).read().strip()


def quality(gates, base):
    datasets = os.environ.get("DASH_DATASETS") or os.path.join(REPO, "..", "shared", "datasets")
    corpus = os.path.join(datasets, "scifact", "corpus.jsonl")
    claims = os.path.join(datasets, "scifact", "claims_train.jsonl")
    if not (os.path.exists(corpus) and os.path.exists(claims)):
        why = "SciFact not found in %s (set DASH_DATASETS)" % os.path.abspath(datasets)
        if ARGS.require_data:
            gates.check("quality", "SciFact data", "missing", "present", "-", False)
            print(why, file=sys.stderr)
        else:
            gates.skip("quality", "SciFact nDCG@10", why)
        return
    work = tempfile.mkdtemp(prefix="dash-gate-quality-")
    proc = None
    try:
        proc, addr = start_node(work)
        ctl = [os.path.join(ARGS.bin, "dashctl", "dashctl"), "--plaintext", "--addr=" + addr]
        converted = os.path.join(work, "scifact.jsonl")
        with open(converted, "w") as out:
            run(ctl + ["convert", "scifact", corpus], stdout=out)
        run(ctl + ["ingest", converted, "--tenant=scifact"], stdout=subprocess.DEVNULL)
        r = run(ctl + ["eval", claims, "--tenant=scifact"], capture_output=True, text=True)
        got = json.loads(r.stdout.strip().splitlines()[-1])
        q = base["quality"]
        for figure in ("ndcg_at_10", "recall_at_100"):
            gates.check("quality", "SciFact train " + figure, got[figure], q[figure],
                        "-%s" % q["tolerance"], got[figure] >= q[figure] - q["tolerance"])
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def durability(gates, base):
    r = subprocess.run(["ctest", "--test-dir", ARGS.bin, "-R", DURABILITY_TESTS,
                        "-j2", "--timeout", "900", "--output-on-failure"],
                       capture_output=True, text=True)
    summary = [line for line in r.stdout.splitlines() if "tests passed" in line]
    print(r.stdout[-3000:], file=sys.stderr)
    total = 0
    for line in summary:  # "100% tests passed, 0 tests failed out of 64"
        total = int(line.rsplit(" ", 1)[-1])
    minimum = base["durability"]["min_tests"]
    gates.check("durability", "crash/fault/failover/restore tests passing",
                "%s of %d" % ("all" if r.returncode == 0 else "not all", total),
                "all of >= %d" % minimum, "none may fail",
                r.returncode == 0 and total >= minimum)


def performance(gates, base):
    p = base["performance"]
    r = run([os.path.join(ARGS.bin, "bench", "ingest_bench"), "--claims=%d" % p["ingest_claims"]],
            capture_output=True, text=True)
    card = json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])
    print(r.stdout, file=sys.stderr)
    for want in p["ingest_ratio"]:
        got = [x for x in card["results"]
               if x["batch"] == want["batch"] and x["clients"] == want["clients"]]
        if not got:
            gates.check("performance", "ingest ratio batch %d" % want["batch"], "absent",
                        want["ratio"], "-", False)
            continue
        floor = want["ratio"] * (1 - p["ingest_tolerance"])
        gates.check("performance",
                    "ingest DASH/raw RocksDB, batch %d, %d client(s)" % (want["batch"],
                                                                         want["clients"]),
                    got[0]["ratio"], want["ratio"], "-%d%%" % (100 * p["ingest_tolerance"]),
                    got[0]["ratio"] >= floor)
    scorecard = os.path.join(REPO, "bench", "baseline", "medium.json")
    history_dir = tempfile.mkdtemp(prefix="dash-gate-history-")
    history = os.path.join(history_dir, "history.jsonl")
    r = subprocess.run([os.path.join(ARGS.bin, "bench", "retrieval_bench"), "--profile=medium",
                        "--baseline=" + scorecard, "--history=" + history,
                        "--tolerance=%s" % p["retrieval_p99_tolerance"]],
                       capture_output=True, text=True)
    shutil.rmtree(history_dir, ignore_errors=True)
    print(r.stderr[-2000:], file=sys.stderr)
    card = json.loads(r.stdout[r.stdout.index("{"):])
    old = json.load(open(scorecard))
    tol = p["retrieval_p99_tolerance"]
    for leg in ("lexical", "vector", "hybrid", "hybrid_filtered"):
        now, was = card["latency"][leg]["p99_ms"], old["latency"][leg]["p99_ms"]
        gates.check("performance", "retrieval p99 %s (10k claims)" % leg, now, was,
                    "+%d%%" % (100 * tol), now <= was * (1 + tol), " ms")


def parse_args():
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--bin", default=os.path.join(REPO, "build"), help="the CMake build tree")
    a.add_argument("--require-data", action="store_true",
                   help="fail the quality gate when the SciFact data is absent")
    a.add_argument("gates", nargs="*", help="quality, durability, performance (default: all)")
    args = a.parse_args()
    for g in args.gates:
        if g not in ("quality", "durability", "performance"):
            a.error("unknown gate %s" % g)
    return args


ARGS = parse_args()


def main():
    base = json.load(open(os.path.join(REPO, "bench", "baseline", "gates.json")))
    gates = Gates()
    chosen = ARGS.gates or ["quality", "durability", "performance"]
    for name in ("quality", "durability", "performance"):
        if name in chosen:
            globals()[name](gates, base)
    gates.print()
    failed = gates.failed()
    print("\nrelease gates: %s" % ("FAIL (%d)" % len(failed) if failed else "pass"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
