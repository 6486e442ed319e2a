import type { CalendarUnit } from '../../limiter/calendar.js';
import { RingLimitError, type ErrorCode } from '../../common/errors.js';
import { ALGORITHMS, type RateLimitRequest, type Reservation } from '../../limiter/types.js';
import type { ResolvedRequest } from './owner-decision.js';
import { AdminOp, WIRE_ERROR_CODES, type ForwardItem, type ForwardResult } from '../wire/frames.js';

/**
 * Forwarding's codec, both ends: a request as a Forward item and back (the only mapping
 * between a request's fields and a peer's wire), and a decision or an error as a
 * ForwardResult. The forwarder, the forward server and hot keys all use it.
 */

/** The wire form of a resolved request: the owner re-validates it and gets the same effective limits. */
export function forwardItem(id: number, p: ResolvedRequest, maxWaitMs: number, op: AdminOp = AdminOp.Decide, remaining = -1): ForwardItem {
  const burst = p.capacity === p.limit ? 0 : p.capacity;
  const calendar = p.calendar === null ? '' : p.calendar.unit;
  const timeZone = p.calendar === null ? '' : p.calendar.timeZone;
  return { id, action: p.action, key: p.key, limit: p.limit, windowMs: p.windowMs, weight: 1, cost: p.cost, algorithm: p.algorithm, burst, hops: 0, maxWaitMs, global: p.global, op, remaining, calendar, timeZone };
}

/** The request a forwarded item stands for (validated again by the caller: a peer is not trusted). */
export function requestOf(item: ForwardItem): RateLimitRequest {
  return {
    key: item.key,
    action: item.action,
    limit: item.limit,
    ...(item.calendar === '' ? { windowMs: item.windowMs } : { calendar: item.calendar as CalendarUnit, timeZone: item.timeZone }),
    weight: item.weight,
    cost: item.cost,
    algorithm: ALGORITHMS[item.algorithm]!,
    ...(item.burst > 0 ? { burst: item.burst } : {}),
    ...(item.global ? { global: true } : {}),
  };
}

export function okResult(id: number, r: Reservation, nowMs: number): ForwardResult {
  return {
    id,
    status: 0,
    allowed: r.allowed,
    limit: r.limit,
    remaining: r.remaining,
    resetInMs: r.resetAtMs - nowMs,
    retryAfterMs: r.retryAfterMs,
    waitMs: r.waitMs,
    message: '',
    field: '',
  };
}

export function errorResult(id: number, error: unknown): ForwardResult {
  const code: ErrorCode = error instanceof RingLimitError ? error.code : 'INTERNAL';
  const index = WIRE_ERROR_CODES.indexOf(code);
  return {
    id,
    status: (index < 0 ? 0 : index) + 1,
    allowed: false,
    limit: 0,
    remaining: 0,
    resetInMs: 0,
    retryAfterMs: 0,
    waitMs: 0,
    message: error instanceof Error ? error.message.slice(0, 4096) : 'internal error',
    field: error instanceof RingLimitError ? (error.field ?? '').slice(0, 256) : '',
  };
}

/** What onUnavailable 'allow' / 'deny' answer when no owner can be reached. */
export function policyDecision(allowed: boolean, limit: number, nowMs: number, retryAfterMs: number): Reservation {
  return { allowed, limit, remaining: 0, resetAtMs: nowMs, retryAfterMs: allowed ? 0 : retryAfterMs, waitMs: 0 };
}
