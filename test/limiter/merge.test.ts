import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide, merge, rebase } from '../../src/limiter/pure.js';
import type { Algorithm, LimiterState, RateLimitRequest } from '../../src/limiter/types.js';
import { ALL, T0 } from './helpers.js';

const RUNS = Number(process.env.PROPERTY_RUNS ?? 300);

/** Plays allow() calls of `costs` from a fresh state at `times` (ms after T0). */
function history(request: RateLimitRequest, steps: { dt: number; cost: number }[]): { state: LimiterState | undefined; now: number } {
  let state: LimiterState | undefined;
  let now = T0;
  for (const s of steps) {
    now += s.dt;
    state = decide(state, { ...request, cost: s.cost }, now).state;
  }
  return { state, now };
}

/** How many single units a state grants, in a burst at `now`. */
function grants(state: LimiterState | undefined, request: RateLimitRequest, now: number, cap: number): number {
  let s = state;
  let n = 0;
  for (; n < cap; n++) {
    const step = decide(s, { ...request, cost: 1 }, now);
    if (!step.decision.allowed) break;
    s = step.state;
  }
  return n;
}

const stepsArb = fc.array(fc.record({ dt: fc.double({ min: 0, max: 1500, noNaN: true }), cost: fc.integer({ min: 0, max: 4 }) }), { maxLength: 30 });

describe('conservative merge', () => {
  it.each(ALL)('%s: the merge never grants more than either side would', (algorithm: Algorithm) => {
    const request: RateLimitRequest = { key: 'k', limit: 10, windowMs: 1000, algorithm };
    fc.assert(
      fc.property(stepsArb, stepsArb, fc.double({ min: 0, max: 3000, noNaN: true }), (left, right, later) => {
        const a = history(request, left);
        const b = history(request, right);
        fc.pre(a.state !== undefined && b.state !== undefined);
        const now = Math.max(a.now, b.now) + later;
        const merged = merge(a.state!, b.state!, request, now);
        const m = grants(merged, request, now, 100);
        expect(m).toBeLessThanOrEqual(grants(a.state, request, now, 100));
        expect(m).toBeLessThanOrEqual(grants(b.state, request, now, 100));
        // Merging is idempotent in what it grants.
        expect(grants(merge(merged, merged, request, now), request, now, 100)).toBe(m);
      }),
      { numRuns: RUNS },
    );
  });

  it('keeps the other side when one side belongs to a different algorithm', () => {
    const tb = decide(undefined, { key: 'k', limit: 10, windowMs: 1000 }, T0).state;
    const gc = decide(undefined, { key: 'k', limit: 10, windowMs: 1000, algorithm: 'gcra' }, T0).state;
    expect(merge(tb, gc, { key: 'k', limit: 10, windowMs: 1000, algorithm: 'gcra' }, T0)).toEqual(gc);
  });
});

describe('rebase', () => {
  it.each(ALL)('%s: a state moved onto a clock skewed by Δ grants the same there', (algorithm: Algorithm) => {
    const request: RateLimitRequest = { key: 'k', limit: 10, windowMs: 1000, algorithm };
    fc.assert(
      fc.property(stepsArb, fc.integer({ min: -5000, max: 5000 }), (steps, delta) => {
        const h = history(request, steps);
        fc.pre(h.state !== undefined);
        // Window algorithms align to the receiver's grid: shift by whole windows to compare exactly.
        const shift = algorithm.endsWith('window') ? Math.round(delta / 1000) * 1000 : delta;
        const moved = rebase(h.state!, shift);
        expect(grants(moved, request, h.now + shift, 50)).toBe(grants(h.state, request, h.now, 50));
      }),
      { numRuns: RUNS },
    );
  });
});
