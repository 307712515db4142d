#!/usr/bin/env bash
# The compose cluster's failover test (run by CI): brings up its own copy of the cluster (a
# project of its own, free host ports, no restart policy) from binaries built on this host,
# writes claims continuously over HTTPS through the router's published port, SIGKILLs the
# container of a shard's leader (docker-compose kill) mid-stream, and checks that
#   - the control plane promoted another replica (new epoch, new leader) and writes to that
#     shard were acknowledged again under the new epoch;
#   - every acknowledged write is read back, claim and quoted evidence, through the router, and
#     a query through it ranks the claims written;
#   - the killed node, started again, catches up: all replicas of every shard in sync and
#     equal (dashctl verify);
#   - the archiver service followed the failover: the log archive (with a backup taken before
#     the writes, in the backups volume) holds every acknowledged write;
# then tears everything down (volumes included).
#   deploy/compose/test.sh [--source]   --source: compile the binaries inside the image instead
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
mode=prebuilt
[[ ${1:-} == --source ]] && mode=source
source ./engine.sh
export COMPOSE_PROJECT_NAME=dashtest$$ DASH_RESTART=no
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export DASH_ROUTER_PORT=$(free_port) DASH_ROUTER_HTTP_PORT=$(free_port)
export DASH_CONTROLPLANE_PORT=$(free_port) DASH_PROMETHEUS_PORT=$(free_port)
work=$(mktemp -d /tmp/dash-compose-test.XXXX)
cleanup() {
  local rc=$?
  [[ $rc -eq 0 ]] || { echo "== FAILED; last logs:"; dash_compose logs --tail=30 2>&1 | tail -150; }
  [[ -n ${writer:-} ]] && kill "$writer" 2>/dev/null
  dash_compose --profile tools down --volumes --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

dash_build_images "$mode"
echo "== up (project $COMPOSE_PROJECT_NAME, router https port $DASH_ROUTER_HTTP_PORT)"
dash_compose up -d --no-build
dash_wait_serving 120 || fail "the router never turned SERVING"
dash_fetch_admin "$work" || fail "no admin token from the init service"
dash_compose run --rm --no-deps -T ctl backup create --dest=/backups >/dev/null ||
  fail "backup create in the ctl container failed"
ctl=("$root/build/dashctl/dashctl" "--tls-ca=$work/ca.pem" "--token-file=$work/token"
  "--addr=127.0.0.1:$DASH_ROUTER_PORT" "--controlplane=127.0.0.1:$DASH_CONTROLPLANE_PORT")
placement() { "${ctl[@]}" --json placement show; }
https=https://127.0.0.1:$DASH_ROUTER_HTTP_PORT
api() { curl -sS --max-time 10 --cacert "$work/ca.pem" -H "Authorization: Bearer $(cat "$work/token")" "$@"; }

# The writer: one claim with one piece of quoted evidence per batch, a fresh idempotency key
# each. A write is acknowledged when the router answers 200 with a commit token; each is logged
# as "id shard epoch lsn". Anything else (503 while the shard has no leader, a cut connection) is
# not acknowledged and is counted apart.
write_loop() {
  local i=0 body code
  while [[ ! -e $work/stop ]]; do
    body=$(printf '{"ops":[{"claim":{"claimId":"w%d","text":"compose claim %d about glaciers"}},{"evidence":{"evidenceId":"w%d-e","claimId":"w%d","stance":"STANCE_SUPPORTS","citation":{"sourceUri":"https://example.org/w%d","quote":"quote of w%d"}}}],"idempotencyKey":"w%d-%s"}' \
      "$i" "$i" "$i" "$i" "$i" "$i" "$i" "$COMPOSE_PROJECT_NAME")
    code=$(api -o "$work/w.out" -w '%{http_code}' -H 'Content-Type: application/json' -d "$body" \
      "$https/v1/tenants/compose/write" 2>/dev/null) || code=000
    if [[ $code == 200 ]]; then
      python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["token"]; print(sys.argv[2], t.get("shard",0), t["epoch"], t["lsn"])' \
        "$work/w.out" "w$i" >>"$work/acked"
    else
      echo "w$i $code" >>"$work/refused"
    fi
    i=$((i + 1))
  done
}
touch "$work/acked" "$work/refused"
write_loop &
writer=$!
for _ in $(seq 200); do (($(wc -l <"$work/acked") >= 40)) && break; sleep 0.1; done
(($(wc -l <"$work/acked") >= 40)) || fail "fewer than 40 writes acknowledged before the kill"

before=$(placement)
read -r shard victim epoch < <(python3 -c 'import json,sys; s=json.loads(sys.argv[1])["shards"][0]; print(s.get("shard", 0), s["leader_node_id"], s["epoch"])' "$before")
echo "== docker-compose kill $victim (leader of shard $shard at epoch $epoch) with writes in flight"
dash_compose kill -s SIGKILL "$victim" >/dev/null
acked_at_kill=$(wc -l <"$work/acked")

deadline=$((SECONDS + 60))
while :; do
  after=$(placement 2>/dev/null) && read -r leader new_epoch < <(python3 -c 'import json,sys; s=[s for s in json.loads(sys.argv[1])["shards"] if s.get("shard", 0) == int(sys.argv[2])][0]; print(s["leader_node_id"], s["epoch"])' "$after" "$shard") &&
    [[ $leader != "$victim" && $new_epoch -gt $epoch ]] && break
  ((SECONDS < deadline)) || fail "shard $shard still led by $victim 60 s after the kill"
  sleep 0.2
done
echo "   shard $shard: leader $leader at epoch $new_epoch"
# Writes to that shard are acknowledged again, under the new epoch.
deadline=$((SECONDS + 60))
until awk -v s="$shard" -v e="$new_epoch" '$2 == s && $3 >= e {n++} END {exit !(n >= 3)}' "$work/acked"; do
  ((SECONDS < deadline)) || fail "no write to shard $shard acknowledged under epoch $new_epoch"
  sleep 0.2
done
touch "$work/stop"
wait "$writer" || true
writer=
echo "   writes: $(wc -l <"$work/acked") acknowledged ($acked_at_kill before the kill)," \
  "$(wc -l <"$work/refused") refused or cut while the shard had no leader"

echo "== every acknowledged write, read back through the router"
lost=0
while read -r id _ _; do
  got=$(api "$https/v1/tenants/compose/claims/$id" 2>/dev/null) || got=
  python3 -c 'import json,sys; r=json.loads(sys.argv[1])["record"]; i=sys.argv[2]
assert r["claim"]["text"] == "compose claim %s about glaciers" % i[1:]
assert [e["citation"]["quote"] for e in r["evidence"]] == ["quote of " + i]' "$got" "$id" 2>/dev/null ||
    { echo "   LOST: $id: ${got:0:200}"; lost=$((lost + 1)); }
done <"$work/acked"
((lost == 0)) || fail "$lost acknowledged writes lost"
echo "   all $(wc -l <"$work/acked") present with their evidence"
echo "== a query through the router's published port ranks the claims written"
api -H 'Content-Type: application/json' -d '{"text": "compose claim glaciers", "k": 10}' \
  "$https/v1/tenants/compose/query" >"$work/query.json" || fail "the query failed"
python3 -c 'import json,sys
hits = json.load(open(sys.argv[1])).get("hits", [])
# Claims this writer sent: acknowledged, or with an unknown outcome (a cut connection).
sent = {line.split()[0] for name in sys.argv[2:] for line in open(name)}
ids = [h["record"]["claim"]["claimId"] for h in hits]
assert len(ids) == 10, ids
assert set(ids) <= sent, set(ids) - sent
print("   top 10:", " ".join(ids))' "$work/query.json" "$work/acked" "$work/refused" ||
  fail "unexpected query answer"

echo "== $victim started again: it catches up and every shard's replicas are equal"
dash_compose start "$victim" >/dev/null
deadline=$((SECONDS + 120))
until placement 2>/dev/null | python3 -c 'import json,sys
p = json.load(sys.stdin)
sys.exit(0 if all(r.get("in_sync") or r["node_id"] == s["leader_node_id"]
                  for s in p["shards"] for r in s["replicas"]) else 1)'; do
  ((SECONDS < deadline)) || { placement; fail "$victim did not catch up within 120 s"; }
  sleep 0.5
done
dash_compose run --rm --no-deps -T ctl verify || fail "replicas differ after the restart"

echo "== the log archive holds every acknowledged write (the archiver followed the failover)"
deadline=$((SECONDS + 60))
until dash_compose run --rm --no-deps -T ctl --json restore --from=/backups --force 2>/dev/null |
  python3 -c 'import json, sys
plan = json.load(sys.stdin)
archived = {s["shard"]: s["archived_lsn"] for s in plan["shards"]}
acked = {}
for line in open(sys.argv[1]):
    _, shard, _, lsn = line.split()
    acked[int(shard)] = max(acked.get(int(shard), 0), int(lsn))
short = {s: (lsn, archived.get(s, 0)) for s, lsn in acked.items() if archived.get(s, 0) < lsn}
print("   archived to", archived, "; short:", short)
sys.exit(1 if short else 0)' "$work/acked"; do
  ((SECONDS < deadline)) || fail "acknowledged writes missing from the log archive"
  sleep 1
done
echo "PASS: failover of shard $shard from $victim; $(wc -l <"$work/acked") acknowledged writes, none lost"
