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
  const window = calendar === null ? `a ${windowMs} ms window` : `a calendar ${calendar.unit} in ${calendar.timeZone}`;
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
