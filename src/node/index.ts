export { createNode, RingLimitNode, type AdminOptions, type AdminRecord } from './node.js';
export type { NodeStats } from './ops/node-stats.js';
export { nodeDefaults, resolveNodeOptions, type NodeOptions, type NodeOptionsInput, type UnavailablePolicy, type ReplicationMode } from './options.js';
export { RingLimitClient, clientDefaults, type AdminCallOptions, type ClientOptions, type ClientStats } from './client/client.js';
export { PROTO_PATH } from './api/proto.js';
export { callerLimitsDefaults, type CallerLimits, type CallerStats } from './api/caller-ledger.js';
export { NodePolicyHandle } from './node-policy-handle.js';
export { readPolicyFile, watchPolicyFile } from './ops/policy-file.js';
export { createStoreLimiterMetrics, type StoreLimiterMetricsSource } from './ops/metrics.js';
