export { createNode, RingLimitNode, type NodeStats } from './node.js';
export { nodeDefaults, resolveNodeOptions, type NodeOptions, type NodeOptionsInput, type UnavailablePolicy, type ReplicationMode } from './options.js';
