export * from './limiter/index.js';
export { RateLimitError, RingLimitError, type ErrorCode } from './common/errors.js';
export { ManualClock, OffsetClock, systemClock, type Clock } from './common/clock.js';
