import type { Reservation, ResolvedParams } from '../types.js';
import { nextUp } from './float.js';

/**
 * Every algorithm keeps its state in STATE_STRIDE consecutive doubles of a Float64Array:
 * three algorithm-specific cells, then the time at which the state is equivalent to a
 * fresh one (the store evicts idle keys past it). A flat layout lets the store keep one
 * million keys in a few typed arrays and lets replication copy state as plain numbers.
 */
export const STATE_STRIDE = 4;
export const FRESH_AT = 3;

/** Written by `step`; reused across calls so the hot path allocates nothing. */
export interface StepOut {
  allowed: boolean;
  remaining: number;
  resetAtMs: number;
  retryAfterMs: number;
  /** For reservations: how long the caller waits before proceeding. */
  waitMs: number;
}

/** Passed as maxWaitMs for a plain allow: never queue. */
export const NO_WAIT = -1;

export interface AlgorithmImpl {
  /** Writes the state of a key that has never been seen. */
  init(cells: Float64Array, base: number, p: ResolvedParams, nowMs: number): void;
  /**
   * Decides `p.cost` units at `nowMs` and updates the state in place. With
   * `maxWaitMs >= 0`, a request that does not fit now may queue (capacity taken now)
   * if it would be allowed within maxWaitMs. Writes FRESH_AT.
   */
  step(cells: Float64Array, base: number, p: ResolvedParams, nowMs: number, maxWaitMs: number, out: StepOut): void;
  /** Conservative merge: the state at `a` becomes one that grants no more than a or b would. */
  merge(a: Float64Array, aBase: number, b: Float64Array, bBase: number, p: ResolvedParams, nowMs: number): void;
  /**
   * Writes a state in which `remaining` units (0 ≤ remaining ≤ the capacity, or the limit for
   * windows; an integer) could be taken at nowMs: what an operator's Set and Reset do. Writes FRESH_AT.
   */
  setRemaining(cells: Float64Array, base: number, p: ResolvedParams, nowMs: number, remaining: number): void;
  /** Shifts every time-valued cell by deltaMs (re-basing state onto another clock). */
  rebase(cells: Float64Array, base: number, deltaMs: number): void;
  /** Indexes of the time-valued cells (the others count units or fractions of one). */
  timeCells: readonly number[];
}

/** Slack for floating-point error in unit counts; far below one unit, and it cannot accumulate. */
export const UNIT_EPSILON = 1e-9;

export function newStepOut(): StepOut {
  return { allowed: false, remaining: 0, resetAtMs: 0, retryAfterMs: 0, waitMs: 0 };
}

/**
 * A delay that, added to nowMs, lands at or after nowMs + delayMs as a real number.
 * At epoch-sized times a double resolves ~0.24 µs, so `now + delay` may round down to
 * a moment just before the request fits; a caller that retries exactly when told must
 * succeed.
 */
export function delayFrom(nowMs: number, delayMs: number): number {
  let at = nowMs + delayMs;
  if (at - nowMs < delayMs && at > 0) at = nextUp(at);
  return at - nowMs;
}

/** The caller-facing reservation for a step's output: a fresh object. */
export function reservationOf(out: StepOut, limit: number): Reservation {
  return { allowed: out.allowed, limit, remaining: out.remaining, resetAtMs: out.resetAtMs, retryAfterMs: out.retryAfterMs, waitMs: out.waitMs };
}
