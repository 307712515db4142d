#!/usr/bin/python3
"""The restore drill: lose every replica at once, restore from a backup, and measure.

1. Starts a secure local cluster from the build tree (a control plane, three nodes with 4 shards
   of 3 replicas, a router; certificates by deploy/tls/make-certs.sh, tokens by dashctl).
2. Loads --claims claims (each with two quoted pieces of evidence) from --writers concurrent
   writers through the router, and half way through takes a backup (dashctl backup create) while
   they keep writing.
3. SIGKILLs every process and deletes every data directory.
4. Restores: a new control plane and new nodes started with --restore_from, a new router; the
   clock stops at the first query answered.
5. Checks every acknowledged write against the backup's cut, by its commit token: one at or
   before its shard's cut LSN must be there with its evidence intact (each quote's SHA-256 as
   computed here, and as the server reports it); one after the cut must not be.

With --archive, `dashctl backup archive` runs beside the cluster from the start (as it would on
another machine) and is stopped once the cluster is destroyed; the restore is then to the
archive's end (`dashctl restore` plans it, the servers get its --restore_to), and the cut each
write is checked against is that end.

Prints one JSON object: counts, the backup's size and throughput, write latency while it copied
and otherwise, RTO (destroy -> first query served) and RPO (acknowledged writes lost, and the
seconds of acknowledged writes between the backup's start and the last lost one).
Exits 1 when an acknowledged write before the cut is missing or damaged, or one after it is
present.

  deploy/drill/drill.py [--claims=1000] [--writers=4] [--archive] [--bin=build] [--keep]
Needs the Python stubs (CMake target python_stubs, in build/python) and Debian's python3-grpcio.
"""
import argparse
import concurrent.futures
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--claims", type=int, default=1000, help="claims to write in all")
    p.add_argument("--writers", type=int, default=4, help="concurrent writers")
    p.add_argument("--bin", default=os.path.join(REPO, "build"), help="the CMake build tree")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--archive", action="store_true",
                   help="archive the log from the start and restore to the archive's end")
    return p.parse_args()


ARGS = parse_args()
sys.path.insert(0, os.path.join(ARGS.bin, "python"))
import grpc  # noqa: E402  (Debian's python3-grpcio)
from dash.v1 import data_pb2, data_pb2_grpc, model_pb2  # noqa: E402

TENANT = "drill"


class Cluster:
    """The processes of one cluster in `work`, each with its own directory and log."""

    def __init__(self, work, tls, extra=()):
        self.work, self.tls, self.extra, self.procs = work, tls, list(extra), {}

    def _secure(self, kind):
        t = self.tls
        return ["--auth_key_file=%s/auth-keys.json" % t, "--tls_ca=%s/ca.pem" % t,
                "--tls_cert=%s/%s.pem" % (t, kind), "--tls_key=%s/%s.key" % (t, kind)]

    def start(self, name, binary, kind, args):
        d = os.path.join(self.work, name)
        os.makedirs(d, exist_ok=True)
        port_file = os.path.join(d, "port")
        if os.path.exists(port_file):
            os.remove(port_file)
        log = open(os.path.join(d, "log"), "a")
        proc = subprocess.Popen([os.path.join(ARGS.bin, binary), "--port_file=" + port_file,
                                 "--listen=127.0.0.1:0"] + args + self._secure(kind),
                                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("%s did not start; see %s" % (name, log.name))
            time.sleep(0.02)
        self.procs[name] = proc
        return "127.0.0.1:" + open(port_file).read().strip()

    def start_all(self):
        d = lambda n: "--data_dir=" + os.path.join(self.work, n, "data")  # noqa: E731
        self.cp = self.start("controlplane", "controlplane/dash-controlplane", "controlplane",
                             [d("controlplane"), "--shard_count=4", "--replication_factor=3"]
                             + self.extra)
        for n in ("n1", "n2", "n3"):
            self.start(n, "node/dash-node", "node",
                       [d(n), "--node_id=" + n, "--controlplane=" + self.cp] + self.extra)
        self.router = self.start("router", "router/dash-router", "router",
                                 ["--controlplane=" + self.cp])

    def kill_all(self):
        for proc in self.procs.values():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        self.procs = {}


def dashctl_command(cluster, *args, token):
    return [os.path.join(ARGS.bin, "dashctl", "dashctl"), "--addr=" + cluster.router,
            "--controlplane=" + cluster.cp, "--tls-ca=%s/ca.pem" % cluster.tls,
            "--token-file=" + token] + list(args)


def dashctl(cluster, *args, token, check=True):
    r = subprocess.run(dashctl_command(cluster, *args, token=token), capture_output=True,
                       text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()))
    return r


def quote(i, e):
    return "quote %d of drill claim %d: sea ice extent in September" % (e, i)


def write_request(i):
    req = data_pb2.WriteRequest(tenant=TENANT, idempotency_key="drill-%d" % i)
    c = req.ops.add().claim
    c.claim_id = "d%d" % i
    c.text = "drill claim %d about arctic sea ice" % i
    for e in range(2):
        ev = req.ops.add().evidence
        ev.claim_id, ev.evidence_id = c.claim_id, "d%d-e%d" % (i, e)
        ev.stance = model_pb2.STANCE_SUPPORTS if e == 0 else model_pb2.STANCE_CONTRADICTS
        ev.citation.source_uri = "https://example.org/drill/%d" % i
        ev.citation.quote = quote(i, e)
    return req


def channel(cluster, token_file):
    with open(os.path.join(cluster.tls, "ca.pem"), "rb") as f:
        tls = grpc.ssl_channel_credentials(root_certificates=f.read())
    token = open(token_file).read().strip()
    return grpc.secure_channel(cluster.router, grpc.composite_channel_credentials(
        tls, grpc.access_token_call_credentials(token)))


def main():
    work = tempfile.mkdtemp(prefix="dash-drill-")
    tls = os.path.join(work, "tls")
    subprocess.run([os.path.join(REPO, "deploy", "tls", "make-certs.sh"), tls], check=True,
                   stdout=subprocess.DEVNULL)
    token = os.path.join(work, "admin.token")
    with open(token, "w") as f:
        subprocess.run([os.path.join(ARGS.bin, "dashctl", "dashctl"), "token", "mint",
                        "--key-file=%s/auth-keys.json" % tls, "--tenant=*", "--role=read",
                        "--role=write", "--role=admin", "--ttl=2h", "--subject=drill"],
                       check=True, stdout=f)
    cluster = Cluster(os.path.join(work, "before"), tls)
    result = {"claims": ARGS.claims, "writers": ARGS.writers, "archive": ARGS.archive}
    backups = os.path.join(work, "backups")
    archiver = None
    try:
        cluster.start_all()
        data = data_pb2_grpc.DataStub(channel(cluster, token))
        wait_until(lambda: try_query(data), 60, "the first cluster to serve")
        if ARGS.archive:
            archiver = subprocess.Popen(
                dashctl_command(cluster, "backup", "archive", "--dest=" + backups, token=token),
                stdout=open(os.path.join(work, "archiver.log"), "w"), stderr=subprocess.STDOUT)

        # Writers: each takes the next claim number; an acknowledged write is logged with its
        # token and the time of its answer.
        acked, lock, next_i = [], threading.Lock(), [0]
        backup, backup_started = {}, threading.Event()

        def writer():
            while True:
                with lock:
                    i = next_i[0]
                    next_i[0] += 1
                if i >= ARGS.claims:
                    return
                for _ in range(50):
                    try:
                        sent = time.time()
                        resp = data.Write(write_request(i), timeout=10)
                        break
                    except grpc.RpcError as e:
                        if e.code() not in (grpc.StatusCode.UNAVAILABLE,
                                            grpc.StatusCode.DEADLINE_EXCEEDED):
                            raise
                        time.sleep(0.1)
                else:
                    raise RuntimeError("write %d never acknowledged" % i)
                with lock:
                    acked.append((i, resp.token.shard, resp.token.lsn, time.time(), sent))

        def take_backup():
            while True:
                with lock:
                    if len(acked) >= ARGS.claims // 2:
                        break
                time.sleep(0.01)
            backup["started"] = time.time()
            backup_started.set()
            r = dashctl(cluster, "backup", "create", "--dest=" + backups, "--json", token=token)
            backup["finished"] = time.time()
            backup.update(json.loads(r.stdout))

        load_start = time.time()
        with concurrent.futures.ThreadPoolExecutor(ARGS.writers + 1) as pool:
            futures = [pool.submit(writer) for _ in range(ARGS.writers)]
            futures.append(pool.submit(take_backup))
            for f in futures:
                f.result()
        result["load_seconds"] = round(time.time() - load_start, 2)
        result["backup"] = {"id": backup["id"], "seconds": round(backup["seconds"], 2),
                            "total_bytes": backup["total_bytes"],
                            "mb_per_s": round(backup["mb_per_s"], 1)}
        cut = {c["shard"]: c["last_lsn"] for c in backup["cut"]}
        # Write latency while the backup copied, against the rest of the load.
        during = [a[3] - a[4] for a in acked if backup["started"] <= a[4] <= backup["finished"]]
        outside = [a[3] - a[4] for a in acked if a[4] > backup["finished"] or a[3] < backup["started"]]
        result["write_ms"] = {"p50_during_backup": percentile(during, 50),
                              "p99_during_backup": percentile(during, 99),
                              "writes_during_backup": len(during),
                              "p50_otherwise": percentile(outside, 50),
                              "p99_otherwise": percentile(outside, 99)}

        # Lose everything.
        destroyed = time.time()
        cluster.kill_all()
        shutil.rmtree(cluster.work)

        restore = ["--restore_from=" + backups, "--restore_backup=" + backup["id"]]
        if archiver is not None:
            # What the archiver synced before the cluster died is what it has; the restore goes
            # to its end.
            archiver.send_signal(signal.SIGTERM)
            archiver.wait(timeout=60)
            plan = json.loads(dashctl(cluster, "restore", "--from=" + backups,
                                      "--backup=" + backup["id"], "--json", token=token).stdout)
            restore = plan["flags"]
            cut = {s["shard"]: s["to_lsn"] for s in plan["shards"]}
            result["archive_replayed_records"] = sum(s["replayed_records"]
                                                     for s in plan["shards"])
        cluster = Cluster(os.path.join(work, "after"), tls, restore)
        cluster.start_all()
        data = data_pb2_grpc.DataStub(channel(cluster, token))
        wait_until(lambda: try_query(data), 300, "the restored cluster to serve")
        result["rto_seconds"] = round(time.time() - destroyed, 2)

        # Every acknowledged write against the cut.
        before = [a for a in acked if a[2] <= cut[a[1]]]
        after = [a for a in acked if a[2] > cut[a[1]]]
        missing, damaged, resurrected = [], [], []
        for i, *_ in before:
            try:
                got = data.GetClaim(data_pb2.GetClaimRequest(tenant=TENANT, claim_id="d%d" % i),
                                    timeout=10)
            except grpc.RpcError as e:
                missing.append("d%d: %s" % (i, e.code().name))
                continue
            quotes = sorted((ev.evidence_id, ev.citation.quote, ev.citation.quote_sha256)
                            for ev in got.record.evidence)
            want = [("d%d-e%d" % (i, e), quote(i, e),
                     hashlib.sha256(quote(i, e).encode()).hexdigest()) for e in range(2)]
            if quotes != want:
                damaged.append("d%d" % i)
        for i, *_ in after:
            try:
                data.GetClaim(data_pb2.GetClaimRequest(tenant=TENANT, claim_id="d%d" % i),
                              timeout=10)
                resurrected.append("d%d" % i)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.NOT_FOUND:
                    missing.append("d%d (after the cut): %s" % (i, e.code().name))
        lost_times = [a[3] for a in after]
        result.update({
            "acknowledged": len(acked),
            "before_cut": len(before),
            "present_before_cut": len(before) - len(missing) - len(damaged),
            "missing_before_cut": missing[:10],
            "damaged_before_cut": damaged[:10],
            "after_cut": len(after),
            "present_after_cut": resurrected[:10],
            "rpo_acknowledged_writes_lost": len(after),
            "rpo_seconds": round(max(lost_times) - (min(lost_times) if ARGS.archive
                                                    else backup["started"]), 2)
            if lost_times else 0,
            "cut": {str(k): v for k, v in sorted(cut.items())},
        })
        result["ok"] = not missing and not damaged and not resurrected
        print(json.dumps(result, indent=1))
        return 0 if result["ok"] else 1
    finally:
        cluster.kill_all()
        if archiver is not None and archiver.poll() is None:
            archiver.kill()
            archiver.wait()
        if ARGS.keep:
            print("work directory kept: " + work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


def percentile(values, p):
    """The p-th percentile in milliseconds (nearest rank); None for no values."""
    if not values:
        return None
    ranked = sorted(values)
    return round(1000 * ranked[min(len(ranked) - 1, max(0, -(-p * len(ranked) // 100) - 1))], 2)


def try_query(data):
    try:
        data.Query(data_pb2.QueryRequest(tenant=TENANT, text="sea ice", k=1), timeout=2)
        return True
    except grpc.RpcError:
        return False


def wait_until(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
