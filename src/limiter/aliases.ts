import { invalidArgument } from '../common/errors.js';
import type { RateLimitRequest } from './types.js';

/**
 * The call shapes other rate limiters use, as one request each: the in-process Limiter and
 * the cluster node answer them the same way.
 */

/** `limit` calls per `windowSeconds` for (action, userId). */
export function windowRequest(userId: string, action: string, limit: number, windowSeconds: number): RateLimitRequest {
  return { key: userId, action, limit, windowMs: windowSeconds * 1000 };
}

/** Allowed per window = ratePerSecond × windowSeconds × weight. */
export function rateRequest(userId: string, action: string, ratePerSecond: number, windowSeconds: number, weight = 1): RateLimitRequest {
  return { key: userId, action, limit: limitFromRate(ratePerSecond, windowSeconds), windowMs: windowSeconds * 1000, weight };
}

export function limitFromRate(ratePerSecond: number, windowSeconds: number): number {
  if (typeof ratePerSecond !== 'number' || !(ratePerSecond > 0) || !Number.isFinite(ratePerSecond)) {
    throw invalidArgument('ratePerSecond', `must be a finite number > 0, got ${String(ratePerSecond)}`);
  }
  if (typeof windowSeconds !== 'number' || !(windowSeconds > 0) || !Number.isFinite(windowSeconds)) {
    throw invalidArgument('windowSeconds', `must be a finite number > 0, got ${String(windowSeconds)}`);
  }
  const limit = Math.floor(ratePerSecond * windowSeconds);
  if (!(limit >= 1)) {
    throw invalidArgument('ratePerSecond', `rate ${ratePerSecond}/s over ${String(windowSeconds)} s allows less than one request per window`);
  }
  return limit;
}
