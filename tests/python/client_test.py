#!/usr/bin/python3
"""A client in another language: Debian's Python gRPC against a real dash-node.

Stubs are generated from proto/dash/v1 at build time (CMake target
python_stubs); PYTHONPATH must point at them and DASH_BIN_ROOT at the build
tree, which ctest sets.

The node runs secure, as in production: TLS with certificates made by
deploy/tls/make-certs.sh, and bearer tokens that this test signs itself with
the standard library (HMAC-SHA256 JWTs), so a token from any JWT library works.
"""
import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import grpc

from dash.v1 import data_pb2, data_pb2_grpc, model_pb2, node_pb2, node_pb2_grpc


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def mint(key_file, tenants, roles, ttl=3600):
    """An HS256 JWT signed with the key file's first key."""
    with open(key_file) as f:
        key = json.load(f)["keys"][0]
    header = {"alg": "HS256", "typ": "JWT", "kid": key["kid"]}
    now = int(time.time())
    payload = {"sub": "python", "tenants": tenants, "roles": roles, "iat": now, "exp": now + ttl}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    sig = hmac.new(base64.b64decode(key["secret"]), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


def evidence_op(claim_id, evidence_id, stance, quote):
    op = data_pb2.WriteOp()
    ev = op.evidence
    ev.claim_id = claim_id
    ev.evidence_id = evidence_id
    ev.stance = stance
    ev.citation.source_uri = "https://example.org/" + evidence_id
    ev.citation.quote = quote
    return op


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="dash-python-")
        port_file = os.path.join(cls.dir, "port")
        tls = os.path.join(cls.dir, "tls")
        subprocess.run([os.path.join(REPO, "deploy", "tls", "make-certs.sh"), tls, "node"],
                       check=True)
        cls.keys = os.path.join(tls, "auth-keys.json")
        binary = os.path.join(os.environ.get("DASH_BIN_ROOT", "."), "node", "dash-node")
        cls.log = open(os.path.join(cls.dir, "node.log"), "w")
        cls.node = subprocess.Popen(
            [binary, "--data_dir=" + os.path.join(cls.dir, "data"), "--listen=127.0.0.1:0",
             "--port_file=" + port_file, "--shard_count=2", "--auth_key_file=" + cls.keys,
             "--tls_ca=" + os.path.join(tls, "ca.pem"),
             "--tls_cert=" + os.path.join(tls, "node.pem"),
             "--tls_key=" + os.path.join(tls, "node.key")],
            stdout=cls.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        port = None
        while port is None:
            if os.path.exists(port_file):
                with open(port_file) as f:
                    text = f.read().strip()
                    port = int(text) if text else None
            if port is None:
                if time.monotonic() > deadline or cls.node.poll() is not None:
                    raise RuntimeError("dash-node did not start; see " + cls.log.name)
                time.sleep(0.02)
        with open(os.path.join(tls, "ca.pem"), "rb") as f:
            cls.tls = grpc.ssl_channel_credentials(root_certificates=f.read())
        cls.address = "127.0.0.1:%d" % port
        token = mint(cls.keys, ["py"], ["read", "write"])
        cls.channel = grpc.secure_channel(cls.address, grpc.composite_channel_credentials(
            cls.tls, grpc.access_token_call_credentials(token)))
        grpc.channel_ready_future(cls.channel).result(timeout=30)
        cls.data = data_pb2_grpc.DataStub(cls.channel)
        # Admin calls act on every tenant: their token grants "*".
        admin_token = mint(cls.keys, "*", ["admin"])
        cls.admin_channel = grpc.secure_channel(cls.address, grpc.composite_channel_credentials(
            cls.tls, grpc.access_token_call_credentials(admin_token)))
        cls.admin = node_pb2_grpc.NodeAdminStub(cls.admin_channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.admin_channel.close()
        cls.node.kill()
        cls.node.wait()
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_write_then_read_back_with_citation(self):
        req = data_pb2.WriteRequest(tenant="py", idempotency_key="py-batch-1")
        claim = req.ops.add().claim
        claim.claim_id = "py-1"
        claim.text = "Arctic sea ice extent has declined since 1979."
        claim.metadata["year"].int_value = 2020
        claim.embedding.extend([0.25, 0.5, 0.75])
        quote = "September Arctic sea ice is now declining at 13% per decade."
        req.ops.append(evidence_op("py-1", "nasa", model_pb2.STANCE_SUPPORTS, quote))
        req.ops.append(evidence_op("py-1", "blog", model_pb2.STANCE_CONTRADICTS, "Ice is fine."))
        resp = self.data.Write(req)
        self.assertGreater(resp.token.lsn, 0)
        self.assertFalse(resp.replayed)

        got = self.data.GetClaim(data_pb2.GetClaimRequest(tenant="py", claim_id="py-1"))
        self.assertEqual(got.record.claim.text, claim.text)
        self.assertEqual(got.record.claim.metadata["year"].int_value, 2020)
        self.assertEqual(list(got.record.claim.embedding), [0.25, 0.5, 0.75])
        by_id = {e.evidence_id: e for e in got.record.evidence}
        self.assertEqual(set(by_id), {"nasa", "blog"})
        self.assertEqual(by_id["nasa"].stance, model_pb2.STANCE_SUPPORTS)
        self.assertEqual(by_id["nasa"].citation.quote_sha256,
                         hashlib.sha256(quote.encode()).hexdigest())
        self.assertEqual(got.read_at.shard, resp.token.shard)
        self.assertGreaterEqual(got.read_at.lsn, resp.token.lsn)

        again = self.data.Write(req)
        self.assertTrue(again.replayed)
        self.assertEqual(again.token, resp.token)

    def test_invalid_batch_names_the_field(self):
        req = data_pb2.WriteRequest(tenant="py")
        req.ops.add().claim.claim_id = "py-bad"
        req.ops[0].claim.text = "claim without evidence"
        with self.assertRaises(grpc.RpcError) as ctx:
            self.data.Write(req)
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertTrue(ctx.exception.details().startswith("ops[0].claim:"), ctx.exception.details())
        with self.assertRaises(grpc.RpcError) as ctx:
            self.data.GetClaim(data_pb2.GetClaimRequest(tenant="py", claim_id="py-bad"))
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_tokens_decide_who_reads_what(self):
        def read_with(creds):
            channel = grpc.secure_channel(self.address, creds)
            try:
                data_pb2_grpc.DataStub(channel).GetClaim(
                    data_pb2.GetClaimRequest(tenant="py", claim_id="nothing"))
            except grpc.RpcError as e:
                return e.code()
            finally:
                channel.close()
            return grpc.StatusCode.OK

        def token(t):
            return grpc.composite_channel_credentials(self.tls,
                                                      grpc.access_token_call_credentials(t))

        self.assertEqual(read_with(self.tls), grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(read_with(token(mint(self.keys, ["py"], ["read"], ttl=-120))),
                         grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(read_with(token(mint(self.keys, ["other"], ["read"]))),
                         grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(read_with(token(mint(self.keys, ["py"], ["write"]))),
                         grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(read_with(token(mint(self.keys, "*", ["read"]))),
                         grpc.StatusCode.NOT_FOUND)

    def test_node_info(self):
        info = self.admin.GetNodeInfo(node_pb2.GetNodeInfoRequest())
        self.assertFalse(info.insecure_no_auth)
        with self.assertRaises(grpc.RpcError) as ctx:
            node_pb2_grpc.NodeAdminStub(self.channel).GetNodeInfo(node_pb2.GetNodeInfoRequest())
        self.assertEqual(ctx.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertEqual(info.shard_count, 2)
        self.assertEqual(sorted(r.shard for r in info.replicas), [0, 1])


if __name__ == "__main__":
    unittest.main(verbosity=2)
