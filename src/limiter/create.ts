import { Limiter, type LimiterOptions } from './limiter.js';
import { RemoteLimiter, type RemoteLimiterInit } from './remote-limiter.js';

/**
 * An in-process limiter (synchronous, exact), or with `store` one whose state lives in a
 * shared store such as Redis (`redisStore` from ringlimit/redis: asynchronous, the same answers).
 */
export function createLimiter(options: RemoteLimiterInit): RemoteLimiter;
export function createLimiter(options?: Partial<LimiterOptions>): Limiter;
export function createLimiter(options: Partial<LimiterOptions> | RemoteLimiterInit = {}): Limiter | RemoteLimiter {
  if ('store' in options && options.store !== undefined) return new RemoteLimiter(options);
  return new Limiter(options);
}
