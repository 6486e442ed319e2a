import type { RateLimitRequest, Reservation } from '../../limiter/types.js';
import type { PublicApiBackend } from './backend.js';

/**
 * The HTTP API's JSON: requests read into the core's shapes (unknown fields refused, the
 * limiter checks the rest) and decisions written back.
 */

/** An error with its HTTP status, code and field, as the API answers it. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** The request fields the API takes: those of RateLimitRequest, and maxWaitMs for a reservation. */
const REQUEST_FIELDS = new Set(['key', 'action', 'limit', 'windowMs', 'calendar', 'timeZone', 'weight', 'cost', 'algorithm', 'burst', 'global', 'group', 'maxWaitMs']);

/** JSON text as a value: 400 when it is not JSON. */
export function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new HttpError(400, 'INVALID_ARGUMENT', 'body', 'the body must be JSON');
  }
}

/** A JSON request as the core's request and the reservation bound: unknown fields are refused, the limiter checks the rest. */
export function toRequest(value: unknown, path: string): { request: RateLimitRequest; maxWaitMs: number | undefined } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'INVALID_ARGUMENT', path, `${path} must be a JSON object`);
  for (const name of Object.keys(value)) {
    if (!REQUEST_FIELDS.has(name)) throw new HttpError(400, 'INVALID_ARGUMENT', name, `unknown field ${JSON.stringify(name)}; expected ${[...REQUEST_FIELDS].join(', ')}`);
  }
  const { maxWaitMs, ...request } = value as RateLimitRequest & { maxWaitMs?: unknown };
  if (maxWaitMs !== undefined && typeof maxWaitMs !== 'number') throw new HttpError(400, 'INVALID_ARGUMENT', 'maxWaitMs', 'maxWaitMs must be a number');
  return { request, maxWaitMs };
}

export const decision = (r: Reservation): object => ({ allowed: r.allowed, limit: r.limit, remaining: r.remaining, resetAtMs: r.resetAtMs, retryAfterMs: r.retryAfterMs, waitMs: r.waitMs });

export async function decideOne(backend: PublicApiBackend, value: unknown, path: string): Promise<Reservation> {
  const { request, maxWaitMs } = toRequest(value, path);
  return backend.decide(request, maxWaitMs);
}
