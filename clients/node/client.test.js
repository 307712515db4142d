// The Node.js client against a real dash-node, secure as in production: TLS
// with certificates made by deploy/tls/make-certs.sh and HS256 tokens signed
// here with node:crypto (so a token from any JWT library works).
//   DASH_BIN_ROOT=build node --test clients/node     (npm test, from clients/node)
'use strict';

const assert = require('node:assert');
const {after, before, test} = require('node:test');
const {execFileSync, spawn} = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const dash = require('./dash');

const REPO = path.join(__dirname, '..', '..');
const BIN_ROOT = process.env.DASH_BIN_ROOT || path.join(REPO, 'build');

function b64url(buffer) {
  return Buffer.from(buffer).toString('base64url');
}

// An HS256 JWT signed with the key file's first key.
function mint(keyFile, tenants, roles) {
  const key = JSON.parse(fs.readFileSync(keyFile, 'utf8')).keys[0];
  const now = Math.floor(Date.now() / 1000);
  const input = b64url(JSON.stringify({alg: 'HS256', typ: 'JWT', kid: key.kid})) + '.' +
      b64url(JSON.stringify({sub: 'node', tenants, roles, iat: now, exp: now + 3600}));
  const signature =
      crypto.createHmac('sha256', Buffer.from(key.secret, 'base64')).update(input).digest();
  return input + '.' + b64url(signature);
}

let dir, node, address, ca, keys;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dash-node-client-'));
  const tls = path.join(dir, 'tls');
  execFileSync(path.join(REPO, 'deploy', 'tls', 'make-certs.sh'), [tls, 'node'], {stdio: 'ignore'});
  keys = path.join(tls, 'auth-keys.json');
  ca = fs.readFileSync(path.join(tls, 'ca.pem'));
  const portFile = path.join(dir, 'port');
  const log = fs.openSync(path.join(dir, 'node.log'), 'w');
  node = spawn(path.join(BIN_ROOT, 'node', 'dash-node'), [
    `--data_dir=${path.join(dir, 'data')}`, '--listen=127.0.0.1:0', `--port_file=${portFile}`,
    '--shard_count=1', `--auth_key_file=${keys}`, `--tls_ca=${path.join(tls, 'ca.pem')}`,
    `--tls_cert=${path.join(tls, 'node.pem')}`, `--tls_key=${path.join(tls, 'node.key')}`,
  ], {stdio: ['ignore', log, log]});
  for (let i = 0; i < 300 && !fs.existsSync(portFile); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  address = `127.0.0.1:${fs.readFileSync(portFile, 'utf8').trim()}`;
});

after(() => {
  if (node) node.kill('SIGKILL');
  fs.rmSync(dir, {recursive: true, force: true});
});

function evidence(claimId, id, stance, quote) {
  return {evidence: {claim_id: claimId, evidence_id: id, stance,
                     citation: {source_uri: `https://example.org/${id}`, quote}}};
}

test('writes, reads, lists and queries with a filter, over TLS with a token', async () => {
  const {data} = dash.connect(address, {ca, token: mint(keys, ['t'], ['read', 'write'])});
  const written = await dash.call(data, 'Write', {tenant: 't', ops: [
    {claim: {claim_id: 'c1', text: 'arctic sea ice is declining',
             metadata: {topic: {string_value: 'ice'}}}},
    evidence('c1', 'e1', 'STANCE_SUPPORTS', 'September sea ice extent fell by 13% per decade'),
    {claim: {claim_id: 'c2', text: 'sea levels are stable', metadata: {topic: {string_value: 'sea'}}}},
    evidence('c2', 'e2', 'STANCE_CONTRADICTS', 'sea level rose 20 cm since 1900'),
  ]});
  assert.strictEqual(written.token.epoch, '1');
  assert.ok(Number(written.token.lsn) >= 1);

  const got = await dash.call(data, 'GetClaim', {tenant: 't', claim_id: 'c1'});
  assert.strictEqual(got.record.claim.text, 'arctic sea ice is declining');
  const citation = got.record.evidence[0].citation;
  assert.strictEqual(citation.quote, 'September sea ice extent fell by 13% per decade');
  assert.strictEqual(citation.quote_sha256,
                     crypto.createHash('sha256').update(citation.quote).digest('hex'));

  const listed = await dash.call(data, 'ListClaims', {tenant: 't'});
  assert.deepStrictEqual(listed.records.map((r) => r.claim.claim_id), ['c1', 'c2']);

  const answer = await dash.call(data, 'Query', {
    tenant: 't', text: 'sea ice', k: 5, include_evidence: true,
    filter: {metadata: [{key: 'topic', eq: {string_value: 'ice'}}]},
  });
  assert.deepStrictEqual(answer.hits.map((h) => h.record.claim.claim_id), ['c1']);
  assert.strictEqual(answer.hits[0].record.evidence[0].stance, 'STANCE_SUPPORTS');
});

test('an epoch the replica is not at is refused with a routing hint in the trailing metadata', async () => {
  const {data} = dash.connect(address, {ca, token: mint(keys, ['t'], ['read'])});
  await assert.rejects(dash.call(data, 'GetClaim', {tenant: 't', claim_id: 'c1', expected_epoch: '7'}),
                       (err) => {
                         assert.strictEqual(err.code, dash.grpc.status.FAILED_PRECONDITION);
                         const hint = dash.routingHint(err);
                         assert.ok(hint, 'no dash-routing-hint-bin in the trailers');
                         assert.strictEqual(hint.current_epoch, '1');
                         return true;
                       });
});

test('tokens are checked: none, another tenant, a missing role', async () => {
  const anonymous = dash.connect(address, {ca}).data;
  await assert.rejects(dash.call(anonymous, 'GetClaim', {tenant: 't', claim_id: 'c1'}),
                       (err) => err.code === dash.grpc.status.UNAUTHENTICATED);
  const other = dash.connect(address, {ca, token: mint(keys, ['u'], ['read'])}).data;
  await assert.rejects(dash.call(other, 'GetClaim', {tenant: 't', claim_id: 'c1'}),
                       (err) => err.code === dash.grpc.status.PERMISSION_DENIED &&
                           !err.details.includes('arctic'));
  const reader = dash.connect(address, {ca, token: mint(keys, ['t'], ['read'])}).data;
  await assert.rejects(
      dash.call(reader, 'Write', {tenant: 't', ops: [{claim: {claim_id: 'c3', text: 'x'}}]}),
      (err) => err.code === dash.grpc.status.PERMISSION_DENIED);
});
