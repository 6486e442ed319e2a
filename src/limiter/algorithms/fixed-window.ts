import type { ResolvedParams } from '../types.js';
import { FRESH_AT, delayFrom, type AlgorithmImpl, type StepOut } from './step.js';
import { targetWindow, windowBoundaryOf, windowStartOf, windowsAfterOf, windowsBetweenOf } from './windows.js';

/**
 * Fixed window: at most L units per aligned window [k × windowMs, (k+1) × windowMs), or per
 * calendar period (p.calendar).
 * Like every fixed window it can pass up to 2L in an unaligned interval spanning a
 * boundary; use sliding-window, token-bucket or gcra where that matters.
 *
 * Cells: [windowStartMs, count, unused]. count > L only through reservations (see windows.ts).
 */
const START = 0;
const COUNT = 1;

function advanceTo(cells: Float64Array, base: number, p: ResolvedParams, start: number): void {
  const stored = cells[base + START]!;
  // A stored window later than ours (state from a node whose clock runs ahead) is kept: conservative.
  if (stored >= start) return;
  const drained = cells[base + COUNT]! - windowsBetweenOf(p, stored, start) * p.limit;
  cells[base + START] = start;
  cells[base + COUNT] = drained > 0 ? drained : 0;
}

export const fixedWindow: AlgorithmImpl = {
  timeCells: [START, FRESH_AT],
  init(cells, base, p, nowMs) {
    cells[base + START] = windowStartOf(p, nowMs);
    cells[base + COUNT] = 0;
    cells[base + 2] = 0;
    cells[base + FRESH_AT] = nowMs;
  },

  step(cells, base, p, nowMs, maxWaitMs, out: StepOut) {
    advanceTo(cells, base, p, windowStartOf(p, nowMs));
    const start = cells[base + START]!;
    let count = cells[base + COUNT]!;
    const target = targetWindow(count, p.cost, p.limit);
    const waitMs = target === 0 ? 0 : delayFrom(nowMs, windowBoundaryOf(p, start, target) - nowMs);
    out.waitMs = 0;
    out.retryAfterMs = 0;
    if (target === 0) {
      out.allowed = true;
      count += p.cost;
    } else if (waitMs <= maxWaitMs) {
      out.allowed = true;
      out.waitMs = waitMs;
      count = Math.max(count, target * p.limit) + p.cost;
    } else {
      out.allowed = false;
      out.retryAfterMs = waitMs;
    }
    cells[base + COUNT] = count;
    out.remaining = count < p.limit ? p.limit - count : 0;
    const drainedAt = windowsAfterOf(p, start, Math.max(1, Math.ceil(count / p.limit)));
    out.resetAtMs = drainedAt;
    cells[base + FRESH_AT] = count > 0 ? drainedAt : nowMs;
  },

  setRemaining(cells, base, p, nowMs, remaining) {
    const start = windowStartOf(p, nowMs);
    const count = p.limit - remaining;
    cells[base + START] = start;
    cells[base + COUNT] = count;
    cells[base + 2] = 0;
    cells[base + FRESH_AT] = count > 0 ? windowsAfterOf(p, start, 1) : nowMs;
  },

  merge(a, aBase, b, bBase, p, nowMs) {
    const t = Math.max(a[aBase + START]!, b[bBase + START]!, windowStartOf(p, nowMs));
    advanceTo(a, aBase, p, t);
    advanceTo(b, bBase, p, t);
    a[aBase + COUNT] = Math.max(a[aBase + COUNT]!, b[bBase + COUNT]!);
    a[aBase + FRESH_AT] = Math.max(a[aBase + FRESH_AT]!, b[bBase + FRESH_AT]!);
  },

  rebase(cells, base, deltaMs) {
    cells[base + START] = cells[base + START]! + deltaMs;
    cells[base + FRESH_AT] = cells[base + FRESH_AT]! + deltaMs;
  },
};

/**
 * Units taken earlier and provably not used (a lease's return) put back: at most `units` off
 * the count of the window starting at `windowStartMs`, the window they were taken from, and
 * nothing once the state is in another window (they belonged to that one). Returns the units put back.
 */
export function giveBackToWindow(cells: Float64Array, base: number, windowStartMs: number, units: number): number {
  if (cells[base + START] !== windowStartMs || !(units > 0)) return 0;
  const count = cells[base + COUNT]!;
  const back = Math.min(units, count);
  cells[base + COUNT] = count - back;
  return back;
}

/** The start of the window a fixed window's state is in (a lease's epoch). */
export function windowStartOfState(cells: Float64Array, base: number): number {
  return cells[base + START]!;
}
