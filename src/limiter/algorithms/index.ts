import { AlgorithmId, type ResolvedParams } from '../types.js';
import { STATE_STRIDE } from './step.js';
import { fixedWindow } from './fixed-window.js';
import { gcra } from './gcra.js';
import { slidingWindow } from './sliding-window.js';
import type { AlgorithmImpl, StepOut } from './step.js';
import { tokenBucket } from './token-bucket.js';

/** Indexed by AlgorithmId. */
export const algorithms: readonly AlgorithmImpl[] = [tokenBucket, gcra, slidingWindow, fixedWindow];

export function algorithmImpl(id: AlgorithmId): AlgorithmImpl {
  return algorithms[id]!;
}

/*
 * The hot path's two calls, dispatched by a switch: each call site below sees one function
 * only, so the JIT can inline it, where `algorithms[id].step(...)` turns polymorphic (and
 * slower for every algorithm) once a process has used two of them.
 */

/** AlgorithmImpl.init of algorithm `p.algorithm`. */
export function initState(cells: Float64Array, base: number, p: ResolvedParams, nowMs: number): void {
  switch (p.algorithm) {
    case AlgorithmId.TokenBucket:
      return tokenBucket.init(cells, base, p, nowMs);
    case AlgorithmId.Gcra:
      return gcra.init(cells, base, p, nowMs);
    case AlgorithmId.SlidingWindow:
      return slidingWindow.init(cells, base, p, nowMs);
    default:
      return fixedWindow.init(cells, base, p, nowMs);
  }
}

/** AlgorithmImpl.step of algorithm `p.algorithm`. */
export function stepState(cells: Float64Array, base: number, p: ResolvedParams, nowMs: number, maxWaitMs: number, out: StepOut): void {
  switch (p.algorithm) {
    case AlgorithmId.TokenBucket:
      return tokenBucket.step(cells, base, p, nowMs, maxWaitMs, out);
    case AlgorithmId.Gcra:
      return gcra.step(cells, base, p, nowMs, maxWaitMs, out);
    case AlgorithmId.SlidingWindow:
      return slidingWindow.step(cells, base, p, nowMs, maxWaitMs, out);
    default:
      return fixedWindow.step(cells, base, p, nowMs, maxWaitMs, out);
  }
}

/**
 * How far from its sender's now a state sent between nodes may lie. A fixed window and a wait
 * are at most a day each; a calendar window's state reaches at most three of its periods
 * ahead (a sliding window fresh one period after its last queued unit's), and its start lies up
 * to a period back, plus how long a key may idle before it is evicted: three years for yearly
 * windows. Units stay exact doubles.
 */
export const wireStateBounds = { maxAheadMs: 3 * 367 * 86_400_000, maxBehindMs: 3 * 367 * 86_400_000 + 30 * 86_400_000, maxUnits: Number.MAX_SAFE_INTEGER } as const;

/**
 * Whether four cells with times relative to their sender's now could be a state of
 * algorithm `id`: times within wireStateBounds, unit counts within ±maxUnits. A state
 * outside them (a token count of −10²¹ locks a key out for ages) is refused, not clamped.
 */
export function plausibleRelativeState(id: AlgorithmId, cells: readonly number[]): boolean {
  const impl = algorithms[id];
  if (impl === undefined || cells.length !== STATE_STRIDE) return false;
  for (let i = 0; i < STATE_STRIDE; i++) {
    const v = cells[i]!;
    if (!Number.isFinite(v)) return false;
    if (impl.timeCells.includes(i) ? v > wireStateBounds.maxAheadMs || v < -wireStateBounds.maxBehindMs : Math.abs(v) > wireStateBounds.maxUnits) return false;
  }
  return true;
}

export { FRESH_AT, NO_WAIT, STATE_STRIDE, newStepOut, reservationOf, type AlgorithmImpl, type StepOut } from './step.js';
