// DASH from Node.js: clients of dash.v1 built at run time from the .proto files
// (@grpc/proto-loader), over TLS with a bearer token — what any Node service
// needs to call a DASH router or node.
//
//   const dash = require('./dash');
//   const {data} = dash.connect('127.0.0.1:7100', {ca: fs.readFileSync(ca), token});
//   data.Query({tenant: 't', text: 'sea ice', k: 5}, (err, answer) => ...);
//
// Messages are plain objects with the .proto field names (keepCase), 64-bit
// integers as strings, enums as their names. A refusal's routing hint (where
// the shard's leader is now) arrives in the trailing metadata
// "dash-routing-hint-bin"; routingHint(err) decodes it.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const PROTO_ROOT = path.join(__dirname, '..', '..', 'proto');
const FILES = ['dash/v1/data.proto', 'dash/v1/node.proto'];

const definition = protoLoader.loadSync(FILES, {
  includeDirs: [PROTO_ROOT],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
});
const v1 = grpc.loadPackageDefinition(definition).dash.v1;

// For messages outside a call: the routing hint in trailing metadata.
const root = new protobuf.Root();
root.resolvePath = (origin, target) => path.join(PROTO_ROOT, target);
root.loadSync(FILES, {keepCase: true});
const RoutingHint = root.lookupType('dash.v1.RoutingHint');

// Clients of the Data and NodeAdmin services at `address`. With `ca` (the
// cluster CA's PEM), TLS; with `token`, every call carries
// "authorization: Bearer <token>" (grpc-js sends call credentials over TLS only).
function connect(address, {ca, token} = {}) {
  let credentials = ca ? grpc.credentials.createSsl(Buffer.from(ca))
                       : grpc.credentials.createInsecure();
  if (token) {
    credentials = grpc.credentials.combineChannelCredentials(
        credentials, grpc.credentials.createFromMetadataGenerator((_, callback) => {
          const metadata = new grpc.Metadata();
          metadata.set('authorization', `Bearer ${token}`);
          callback(null, metadata);
        }));
  }
  return {
    data: new v1.Data(address, credentials),
    admin: new v1.NodeAdmin(address, credentials),
  };
}

// The RoutingHint a refusal carries, decoded; null when it has none.
function routingHint(err) {
  const values = err && err.metadata ? err.metadata.get('dash-routing-hint-bin') : [];
  if (!values || values.length === 0) return null;
  return RoutingHint.toObject(RoutingHint.decode(values[0]), {longs: String, enums: String});
}

// Promise form of a unary call: call(client.data, 'Write', request).
function call(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

module.exports = {connect, routingHint, call, grpc};
