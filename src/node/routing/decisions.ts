import type { Reservation } from '../../limiter/types.js';
import { RingLimitError, type ErrorCode } from '../../common/errors.js';
import { WIRE_ERROR_CODES, type ForwardResult } from '../wire/frames.js';

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
