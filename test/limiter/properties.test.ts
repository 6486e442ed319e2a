import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide } from '../../src/limiter/pure.js';
import type { RateLimitRequest } from '../../src/limiter/types.js';
import { newStore } from './helpers.js';
import { baseRequest, scenarioArb, type Scenario } from './scenarios.js';

/** Enough cases to matter; override with PROPERTY_RUNS for a deeper soak. */
const RUNS = Number(process.env.PROPERTY_RUNS ?? 300);
/** Replays a failing run: PROPERTY_SEED (and the same PROPERTY_RUNS) from fast-check's report. */
const REPLAY = process.env.PROPERTY_SEED === undefined ? {} : { seed: Number(process.env.PROPERTY_SEED) };

interface Run {
  effectiveLimit: number;
  capacity: number;
  /** Allowed units, at the time the caller may run them (decision time + wait). */
  executed: { atMs: number; cost: number }[];
}

function play(s: Scenario, request: RateLimitRequest, checkRetry: boolean): Run {
  const { store, clock } = newStore();
  const windowed = s.algorithm === 'fixed-window' || s.algorithm === 'sliding-window';
  const effectiveLimit = Math.floor(s.limit * s.weight);
  const capacity = windowed || s.burst === undefined ? effectiveLimit : Math.floor(s.burst * s.weight);
  const executed: Run['executed'] = [];
  for (const op of s.ops) {
    clock.advance(op.dtFraction * s.windowMs);
    const cost = op.costKind === 0 ? 0 : op.costKind === 1 ? 1 : 1 + Math.floor(op.costFraction * (capacity - 1));
    const req = { ...request, cost };
    const before = store.getState('default', 'k');
    const now = clock.now();
    const d = op.reserve ? store.reserve(req, Math.min(86_400_000, op.maxWaitFraction * s.windowMs)) : { ...store.allow(req), waitMs: 0 };
    if (d.allowed && cost > 0) executed.push({ atMs: now + d.waitMs, cost });
    if (!d.allowed && checkRetry && cost > 0) {
      // retryAfterMs is exact: allowed at now + retryAfterMs, and not noticeably sooner.
      expect(d.retryAfterMs).toBeGreaterThan(0);
      expect(decide(before, req, now + d.retryAfterMs).decision.allowed).toBe(true);
      // (Only where 0.1 % of the delay is well above the ~0.24 µs resolution of epoch-sized doubles.)
      if (d.retryAfterMs > 1) {
        expect(decide(before, req, now + d.retryAfterMs * 0.999).decision.allowed).toBe(false);
      }
    }
  }
  executed.sort((a, b) => a.atMs - b.atMs);
  return { effectiveLimit, capacity, executed };
}

/**
 * Slack for float rounding of real-valued bounds; far below one unit. Execution times are
 * epoch-sized doubles that resolve ~0.24 µs, so two of them can sit up to ~0.5 µs closer
 * than the real delays: at high rates that is a visible fraction of a unit.
 */
/** What epoch-sized millisecond doubles resolve, rounded up (~0.24 µs). */
const EPOCH_RESOLUTION_MS = 1e-3;

function slack(bound: number, unitsPerMs: number): number {
  return 1e-3 + bound * 1e-9 + unitsPerMs * 5e-4;
}

function checkBucketBound(s: Scenario, run: Run): void {
  const { executed, capacity, effectiveLimit } = run;
  for (let i = 0; i < executed.length; i++) {
    let sum = 0;
    for (let j = i; j < executed.length; j++) {
      sum += executed[j]!.cost;
      const bound = capacity + (effectiveLimit * (executed[j]!.atMs - executed[i]!.atMs)) / s.windowMs;
      if (sum > bound + slack(bound, effectiveLimit / s.windowMs)) {
        throw new Error(`${sum} units in [${executed[i]!.atMs}, ${executed[j]!.atMs}] exceed the bound ${bound}`);
      }
    }
  }
}

function perAlignedWindow(s: Scenario, run: Run): Map<number, number> {
  const perWindow = new Map<number, number>();
  for (const e of run.executed) {
    // Reservation times are start + k × window recomputed in floats: attribute by rounding.
    const index = Math.floor(e.atMs / s.windowMs + 1e-7);
    perWindow.set(index, (perWindow.get(index) ?? 0) + e.cost);
  }
  return perWindow;
}

function checkWindowBound(s: Scenario, run: Run): void {
  for (const [index, sum] of perAlignedWindow(s, run)) {
    if (sum > run.effectiveLimit) throw new Error(`window ${index}: ${sum} units exceed the limit ${run.effectiveLimit}`);
  }
  if (s.algorithm !== 'sliding-window') return;
  const { executed, effectiveLimit } = run;
  for (let i = 0; i < executed.length; i++) {
    let sum = 0;
    // Two reservations one window apart are start + k × window in epoch-sized doubles: their
    // difference may come out a few ulps short of windowMs (e.g. 1 for 1.0000000000000002).
    for (let j = i; j < executed.length && executed[j]!.atMs - executed[i]!.atMs < s.windowMs - EPOCH_RESOLUTION_MS; j++) {
      sum += executed[j]!.cost;
    }
    if (sum > 2 * effectiveLimit - 1) throw new Error(`${sum} units within one window length exceed 2L - 1`);
  }
}

describe('algorithm invariants (property-based)', () => {
  it('never allows more than each algorithm documents, in any interval; retryAfterMs is exact', () => {
    fc.assert(
      fc.property(scenarioArb, (s) => {
        const request = baseRequest(s);
        fc.pre(request !== undefined);
        const run = play(s, request!, true);
        if (s.algorithm === 'token-bucket' || s.algorithm === 'gcra') checkBucketBound(s, run);
        else checkWindowBound(s, run);
      }),
      { numRuns: RUNS * 4, ...REPLAY },
    );
  });

  it('a key idle for a long time then bursting gets exactly its burst, never more', () => {
    fc.assert(
      fc.property(scenarioArb, fc.integer({ min: 1, max: 3 }), (s, burstCost) => {
        const request = baseRequest(s);
        fc.pre(request !== undefined);
        const { store, clock } = newStore();
        const run = play(s, request!, false);
        for (const op of s.ops) store.allow({ ...request!, cost: op.costKind === 0 ? 0 : 1 });
        void run;
        // Longer than any window, any queued reservation, and a refill from empty to capacity.
        clock.advance(10 * 86_400_000 * (1 + run.capacity / run.effectiveLimit));
        const ceiling = s.algorithm === 'token-bucket' || s.algorithm === 'gcra' ? run.capacity : run.effectiveLimit;
        const cost = Math.min(burstCost, ceiling);
        const tries = Math.min(Math.floor(ceiling / cost) + 3, 3000);
        let granted = 0;
        for (let i = 0; i < tries; i++) if (store.allow({ ...request!, cost }).allowed) granted += cost;
        const expected = tries * cost <= ceiling ? tries * cost : Math.floor(ceiling / cost) * cost;
        expect(granted).toBe(expected);
      }),
      { numRuns: RUNS, ...REPLAY },
    );
  });
});
