#!/usr/bin/python3
"""Writes the fuzzers' seed inputs to tests/fuzz/seeds/ (committed; rerun after a format change).

Needs the Python stubs of the build (PYTHONPATH=build/python). Each seed is a valid input with
the fuzzer's selector byte in front (see each *_fuzz.cc)."""
import base64
import hashlib
import hmac
import json
import os
import struct
import zlib

from dash.v1 import data_pb2, model_pb2, node_pb2

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def batch():
    req = data_pb2.WriteRequest(tenant="acme", idempotency_key="k1")
    c = req.ops.add().claim
    c.claim_id = "c1"
    c.text = "Arctic sea ice is declining"
    c.metadata["year"].int_value = 2020
    c.embedding.extend([0.1, 0.2, 0.3])
    ev = req.ops.add().evidence
    ev.claim_id = "c1"
    ev.evidence_id = "e1"
    ev.stance = model_pb2.STANCE_SUPPORTS
    ev.citation.source_uri = "https://example.org/e1"
    ev.citation.quote = "ice extent fell"
    e = req.ops.add().edge
    e.from_claim = "c1"
    e.to_claim = "c2"
    e.relation = model_pb2.RELATION_SUPPORTS
    return req


def query():
    q = data_pb2.QueryRequest(tenant="acme", text="sea ice", k=10, include_evidence=True)
    q.embedding.extend([0.1, 0.2, 0.3])
    f = q.filter.metadata.add()
    f.key = "year"
    f.range.min.int_value = 2015
    q.graph.include = True
    q.stance_mode = data_pb2.STANCE_MODE_BALANCED
    return q


# log_record: a v2 record as stored (selector 0) and a body to seal (selector 1).
payload = batch().SerializeToString()
body = bytes([2]) + struct.pack(">QQqI", 3, 17, 1764547200000000, len(payload)) + payload
write("log_record", "v2", b"\x00" + body + struct.pack(">I", zlib.crc32(body)))
write("log_record", "v2_body", b"\x01" + body)
with open(os.path.join(HERE, "..", "..", "node", "storage", "testdata", "log_record_v1.bin"),
          "rb") as f:
    write("log_record", "v1", b"\x00" + f.read())

# snapshot: a manifest (selector 0) and a chunk (selector 1).
m = node_pb2.SnapshotManifest(snapshot_id="s1", shard=2, total_bytes=300, last_lsn=9)
for name, size in (("000012.sst", 200), ("MANIFEST-000005", 100)):
    m.files.add(name=name, size=size)
write("snapshot", "manifest", b"\x00" + m.SerializeToString())
data = b"x" * 64
chunk = node_pb2.SnapshotChunk(offset=0, data=data, crc32=zlib.crc32(data))
write("snapshot", "chunk", b"\x01" + chunk.SerializeToString())

# request: a batch (selector 0) and a query (selector 1).
write("request", "batch", b"\x00" + batch().SerializeToString())
write("request", "query", b"\x01" + query().SerializeToString())

# request_json: what --request and ingest lines look like.
from google.protobuf import json_format  # noqa: E402
write("request_json", "query.json", json_format.MessageToJson(query()).encode())
write("request_json", "batch.json", json_format.MessageToJson(batch()).encode())


# jwt: a signed token (selector 0) and header/payload to sign (selector 1), with the fuzzer's key.
def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


header = json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode()
claims = json.dumps({"sub": "s", "tenants": ["a", "b"], "roles": ["read", "write"],
                     "iss": "dash", "aud": ["dash-api"], "iat": 1799990000, "nbf": 1799990000,
                     "exp": 1800003600}).encode()
signing = b64url(header) + b"." + b64url(claims)
sig = hmac.new(b"0123456789abcdef0123456789abcdef", signing, hashlib.sha256).digest()
write("jwt", "token", b"\x00" + signing + b"." + b64url(sig))
write("jwt", "bearer", b"\x00Bearer " + signing + b"." + b64url(sig))
write("jwt", "claims", b"\x01" + header + b"\n" + claims)
