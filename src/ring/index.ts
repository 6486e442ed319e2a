export { Ring, hashKey } from './ring.js';
export { ringDefaults, ringLimits } from './limits.js';
export type { RingMember, RingOptions } from './validate.js';
export type { RingNode } from './points.js';
