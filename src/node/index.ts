export { createNode, RingLimitNode, type NodeStats } from './node.js';
export { nodeDefaults, resolveNodeOptions, type NodeOptions, type NodeOptionsInput, type UnavailablePolicy, type ReplicationMode } from './options.js';
export { RingLimitClient, clientDefaults, type ClientOptions } from './api/client.js';
export { PROTO_PATH } from './api/proto.js';
