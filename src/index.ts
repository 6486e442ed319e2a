export * from './limiter/index.js';
export * from './node/index.js';
export { Ring, hashKey, type RingMember } from './ring/index.js';
export { RateLimitError, RingLimitError, type ErrorCode } from './common/errors.js';
export { ManualClock, OffsetClock, systemClock, type Clock } from './common/clock.js';
