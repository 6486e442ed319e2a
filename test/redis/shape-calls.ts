import fc from 'fast-check';
import type { CalendarUnit } from '../../src/limiter/calendar.js';
import type { Algorithm, RateLimitRequest } from '../../src/limiter/types.js';

/**
 * Random sequences of requests on one key ('k') whose shapes (algorithm, windowMs or calendar
 * and timeZone) change along the way, with random limits, bursts, weights and costs (0: peeks),
 * allows and reservations, and pauses long enough for a state to become fresh: for the parity
 * of the in-memory store (the reference), the pure functions (test/limiter/pure-shape.test.ts)
 * and the Redis store (shape.test.ts) under docs/request-shape.md's rule. Here rather than in
 * test/limiter so that both can import it.
 */

const ALGORITHMS: readonly Algorithm[] = ['token-bucket', 'gcra', 'sliding-window', 'fixed-window'];

interface Shape {
  algorithm: Algorithm;
  windowMs?: number;
  calendar?: CalendarUnit;
  timeZone?: string;
}

const shapeArb: fc.Arbitrary<Shape> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ algorithm: fc.constantFrom(...ALGORITHMS), windowMs: fc.constantFrom(1_000, 60_000) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      algorithm: fc.constantFrom<Algorithm>('fixed-window', 'sliding-window'),
      calendar: fc.constantFrom<CalendarUnit>('minute', 'hour'),
      timeZone: fc.constantFrom('UTC', 'Asia/Kolkata', 'Europe/Paris'),
    }),
  },
);

export type ShapeOp = 'allow' | 'reserve' | 'inspect' | 'set';

export interface ShapeCall {
  op: ShapeOp;
  /** Time since the previous call. */
  dtMs: number;
  /** With its cost: at most what the key can hold. */
  request: RateLimitRequest;
  /** reserve: the longest wait; -1 otherwise. */
  maxWaitMs: number;
  /** set: the remaining to set, as a fraction of the most the key can hold (1: a reset). */
  setFraction: number;
}

const rawCallArb = fc.record({
  shapeIndex: fc.oneof(fc.constant(0), fc.nat(2)),
  op: fc.constantFrom<ShapeOp>('allow', 'allow', 'allow', 'reserve', 'inspect', 'set'),
  // Mostly bursts, sometimes seconds, sometimes minutes: a state used up, then fresh again.
  dtMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 5_000 }), fc.integer({ min: 0, max: 150_000 })),
  limit: fc.integer({ min: 1, max: 6 }),
  burst: fc.option(fc.integer({ min: 1, max: 8 }), { nil: undefined }),
  weight: fc.constantFrom(1, 1, 1, 2.5),
  cost: fc.constantFrom(0, 1, 1, 1, 2, 3),
  maxWaitMs: fc.integer({ min: 0, max: 90_000 }),
  setFraction: fc.double({ min: 0, max: 1, noNaN: true }),
});

/** Sequences of 4 to 40 calls (fewer without admin calls) over a palette of two or three shapes (the first the most used). `admin`: with inspect and set calls. */
export function shapeCallsArb(admin: boolean): fc.Arbitrary<ShapeCall[]> {
  return fc.tuple(fc.array(shapeArb, { minLength: 2, maxLength: 3 }), fc.array(rawCallArb, { minLength: 4, maxLength: 40 })).map(([palette, raws]) =>
    raws
      .filter((r) => admin || r.op === 'allow' || r.op === 'reserve')
      .map((r): ShapeCall => {
        const shape = palette[Math.min(r.shapeIndex, palette.length - 1)]!;
        const bucket = shape.algorithm === 'token-bucket' || shape.algorithm === 'gcra';
        const burst = bucket ? r.burst : undefined;
        const ceiling = Math.floor((burst ?? r.limit) * r.weight);
        const request: RateLimitRequest = { key: 'k', ...shape, limit: r.limit, weight: r.weight, cost: Math.min(r.cost, ceiling), ...(burst === undefined ? {} : { burst }) };
        return { op: r.op, dtMs: r.dtMs, request, maxWaitMs: r.op === 'reserve' ? r.maxWaitMs : -1, setFraction: r.setFraction };
      }),
  );
}

export const shapeCallsWithoutAdmin = shapeCallsArb(false);
