import fc from 'fast-check';
import type { Algorithm, RateLimitRequest } from '../../src/limiter/types.js';
import { ALL } from './helpers.js';

/** Random request sequences for the algorithms' property tests (in memory and on Redis). */

export interface Op {
  dtFraction: number;
  costKind: 0 | 1 | 2;
  costFraction: number;
  reserve: boolean;
  maxWaitFraction: number;
}

export interface Scenario {
  algorithm: Algorithm;
  limit: number;
  windowMs: number;
  weight: number;
  burst: number | undefined;
  ops: Op[];
}

const windowArb = fc.oneof(
  fc.constantFrom(1, 1.5, 7, 1000, 60_000, 86_400_000),
  fc.double({ min: 1, max: 86_400_000, noNaN: true }),
);
const weightArb = fc.oneof(fc.constantFrom(1, 1, 2.5, 1000, 1_000_000), fc.double({ min: 0.01, max: 100, noNaN: true }));
const opArb: fc.Arbitrary<Op> = fc.record({
  // Mostly bursts and small steps, sometimes whole windows.
  dtFraction: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 0.05, noNaN: true }), fc.double({ min: 0, max: 3, noNaN: true })),
  costKind: fc.constantFrom<0 | 1 | 2>(0, 1, 1, 1, 2),
  costFraction: fc.double({ min: 0, max: 1, noNaN: true }),
  reserve: fc.boolean(),
  maxWaitFraction: fc.double({ min: 0, max: 3, noNaN: true }),
});
export const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  algorithm: fc.constantFrom(...ALL),
  limit: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 1000 })),
  windowMs: windowArb,
  weight: weightArb,
  burst: fc.option(fc.integer({ min: 1, max: 1000 }), { nil: undefined }),
  ops: fc.array(opArb, { minLength: 1, maxLength: 120 }),
});

export function baseRequest(s: Scenario): RateLimitRequest | undefined {
  const windowed = s.algorithm === 'fixed-window' || s.algorithm === 'sliding-window';
  const effectiveLimit = Math.floor(s.limit * s.weight);
  const burst = windowed ? undefined : s.burst;
  const capacity = burst === undefined ? effectiveLimit : Math.floor(burst * s.weight);
  if (effectiveLimit < 1 || capacity < 1) return undefined;
  return { key: 'k', limit: s.limit, windowMs: s.windowMs, weight: s.weight, algorithm: s.algorithm, ...(burst === undefined ? {} : { burst }) };
}

