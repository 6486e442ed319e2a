import { RateLimitError } from '../common/errors.js';
import type { Calendar } from './calendar.js';
import { ALGORITHMS, type AlgorithmId, type ResolvedParams } from './types.js';

/**
 * A key's shape: the algorithm and the window its state was written under. A state means
 * something only under its shape (a count per hour is not a count per minute, a fixed
 * window's count is not a bucket's tokens), so a held key keeps its shape until its state is
 * fresh again; a request that describes it with another shape is refused with
 * FAILED_PRECONDITION and changes nothing (issue 28: re-initialising the state gave an
 * alternating caller 40 of 40 at 5 an hour). The limit and burst are not part of the shape:
 * weights, fair shares, adaptive limits and tiers change them request by request, and the
 * algorithms keep the units consumed across such changes.
 */

/** The request field that describes the key differently from its stored shape. */
export type ShapeField = 'algorithm' | 'calendar' | 'timeZone' | 'windowMs';

export function shapeFieldDiffering(algorithm: AlgorithmId, calendar: Calendar | null, p: Readonly<ResolvedParams>): ShapeField {
  if (algorithm !== p.algorithm) return 'algorithm';
  if (calendar !== null && p.calendar !== null && calendar.unit === p.calendar.unit) return 'timeZone';
  if (calendar !== null || p.calendar !== null) return 'calendar';
  return 'windowMs';
}

function describe(algorithm: AlgorithmId, windowMs: number, calendar: Calendar | null): string {
  const window = calendar !== null ? `a calendar ${calendar.unit} in ${calendar.timeZone}` : windowMs === 0 ? 'a window not recorded' : `a ${windowMs} ms window`;
  return `${ALGORITHMS[algorithm]!} over ${window}`;
}

function instant(ms: number): string {
  return Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : `${ms} ms`;
}

/** The refusal of a request that describes a held key differently: FAILED_PRECONDITION naming the differing field. */
export function shapeMismatchError(
  algorithm: AlgorithmId,
  windowMs: number,
  calendar: Calendar | null,
  freshAtMs: number,
  p: Readonly<ResolvedParams>,
): RateLimitError {
  const field = shapeFieldDiffering(algorithm, calendar, p);
  return new RateLimitError(
    'FAILED_PRECONDITION',
    `${field}: the key holds a state as ${describe(algorithm, windowMs, calendar)} until ${instant(freshAtMs)}; ` +
      `this request describes it as ${describe(p.algorithm, p.windowMs, p.calendar)}. A key keeps one shape while its state is in use: ` +
      'give another limit its own action, or reset the key (an operator’s Reset or Set re-describes it)',
    field,
  );
}

/**
 * What a store keeps beside a key's cells: the shape its state was written under, and when the
 * state is fresh (its FRESH_AT cell). windowMs 0: the window is not recorded (a state imported
 * from a peer, or written before shapes were recorded), and the next request of the same
 * algorithm supplies it.
 */
export interface HeldShape {
  algorithm: AlgorithmId;
  windowMs: number;
  calendar: Calendar | null;
  freshAtMs: number;
}

/**
 * How a request meets a held key (checkShape): 'same' — decide on the state; 'adopt' — the same
 * algorithm, window not recorded: decide on the state and record the request's window; 'fresh' —
 * another shape, but the state is fresh: start afresh under the request's shape.
 */
export type ShapeVerdict = 'same' | 'adopt' | 'fresh';

/**
 * The rule of docs/request-shape.md for a request `p` at nowMs on a key held as `held`, for a
 * store without policies (with policies, store.ts may convert a key instead of refusing it).
 * Throws FAILED_PRECONDITION (shapeMismatchError) when `p` describes the key with another shape
 * while its state is in use. The pure functions (pure.ts) and the Redis store's answers
 * (src/redis) follow it; store.ts's refuseOrFresh is the same rule with the policies' conversion.
 */
export function checkShape(held: Readonly<HeldShape>, p: Readonly<ResolvedParams>, nowMs: number): ShapeVerdict {
  if (held.algorithm === p.algorithm) {
    if (held.windowMs === 0) return 'adopt';
    if (held.windowMs === p.windowMs && held.calendar === p.calendar) return 'same';
  }
  if (held.freshAtMs <= nowMs) return 'fresh';
  throw shapeMismatchError(held.algorithm, held.windowMs, held.calendar, held.freshAtMs, p);
}
