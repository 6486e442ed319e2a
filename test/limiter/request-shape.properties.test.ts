import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RingLimitError } from '../../src/common/errors.js';
import type { CalendarUnit } from '../../src/limiter/calendar.js';
import { Policies } from '../../src/limiter/policies.js';
import type { LimiterStore } from '../../src/limiter/store.js';
import type { Algorithm, RateLimitRequest } from '../../src/limiter/types.js';
import { ALL, newStore } from './helpers.js';

/**
 * Invariants of issue 28's rule (docs/request-shape.md), for one key under requests of random
 * shapes (algorithm, windowMs or calendar and timeZone), limits, bursts and costs (0 included):
 *
 * 1. A cost-0 request never changes the key's state: the stored algorithm and cells are
 *    bit-identical after it, and a key not held stays not held.
 * 2. A request refused for its shape is FAILED_PRECONDITION naming a shape field, and changes
 *    nothing: the run is the run without it.
 * 3. Strictest description: while no state can have become fresh (all calls within one unit's
 *    refill time of every shape), the units admitted, whatever the shapes, never exceed the
 *    limit L every request gives.
 * 4. A change of limit or burst hands nothing back. Windows: a request sees at most what its own
 *    limit leaves after every unit admitted so far, under whatever limit (L − the units admitted
 *    in the current window; for the sliding window L − the estimate previous × (1 − f) + current
 *    of them). Buckets (which hold no count): at most what the last writing request's
 *    description sees at that moment, plus the ceiling's increase (burst, else limit) if larger.
 * 5. A key the policies move to another shape (and limit) keeps no more than it had: right after
 *    the change it has at most min(what the old shape left + the limit's increase if any, the new
 *    shape's allowance) remaining, without a refusal.
 */

const RUNS = Number(process.env.PROPERTY_RUNS ?? 200);
const REPLAY = process.env.PROPERTY_SEED === undefined ? {} : { seed: Number(process.env.PROPERTY_SEED) };

const ZONES = ['UTC', 'Europe/Paris', 'America/New_York', 'Asia/Kolkata', 'Pacific/Chatham'];

interface Shape {
  algorithm: Algorithm;
  windowMs?: number;
  calendar?: CalendarUnit;
  timeZone?: string;
}

const shapeArb: fc.Arbitrary<Shape> = fc.oneof(
  fc.record({ algorithm: fc.constantFrom(...ALL), windowMs: fc.constantFrom(60_000, 3_600_000, 86_400_000) }),
  fc.record({
    algorithm: fc.constantFrom<Algorithm>('fixed-window', 'sliding-window'),
    calendar: fc.constantFrom<CalendarUnit>('hour', 'day', 'week'),
    timeZone: fc.constantFrom(...ZONES),
  }),
);

function ceilingOf(r: RateLimitRequest): number {
  const buckets = r.algorithm === 'token-bucket' || r.algorithm === 'gcra';
  return buckets && r.burst !== undefined ? r.burst : r.limit!;
}

function snapshot(store: LimiterStore): string {
  const cells = new Float64Array(4);
  const algorithm = store.readEntry('default', 'k', cells);
  return JSON.stringify([algorithm, ...Array.from(cells, (v) => Object.is(v, -0) ? '-0' : v)]);
}

/** allow(), or the shape refusal's field (the state checked unchanged). */
function play(store: LimiterStore, request: RateLimitRequest): { allowed: boolean; refusedField: string | undefined } {
  const before = snapshot(store);
  try {
    return { allowed: store.allow(request).allowed, refusedField: undefined };
  } catch (error) {
    expect(error).toBeInstanceOf(RingLimitError);
    const e = error as RingLimitError;
    expect(e.code).toBe('FAILED_PRECONDITION');
    expect(['algorithm', 'windowMs', 'calendar', 'timeZone']).toContain(e.field);
    expect(snapshot(store)).toBe(before);
    return { allowed: false, refusedField: e.field };
  }
}

const callArb = fc.record({
  shape: shapeArb,
  cost: fc.integer({ min: 0, max: 3 }),
  dtMs: fc.integer({ min: 0, max: 200 }),
});

describe('request shapes (issue 28): properties', () => {
  it('a cost-0 call never changes state; a refused shape changes nothing (invariants 1, 2)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            shape: shapeArb,
            cost: fc.integer({ min: 0, max: 3 }),
            limit: fc.integer({ min: 3, max: 50 }),
            dtMs: fc.integer({ min: 0, max: 4_000_000 }),
          }),
          { minLength: 1, maxLength: 40 },
        ),
        (calls) => {
          const { store, clock } = newStore();
          for (const c of calls) {
            clock.advance(c.dtMs);
            const request: RateLimitRequest = { key: 'k', ...c.shape, limit: c.limit, cost: c.cost };
            const before = snapshot(store);
            const held = store.has('default', 'k');
            play(store, request);
            if (c.cost === 0) {
              expect(snapshot(store)).toBe(before);
              expect(store.has('default', 'k')).toBe(held);
            }
          }
        },
      ),
      { numRuns: RUNS, ...REPLAY },
    );
  });

  it('whatever the shapes, no more than the limit is admitted before any state can be fresh (invariant 3)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(callArb, { minLength: 1, maxLength: 60 }), (limit, calls) => {
        const { store, clock } = newStore();
        let admitted = 0;
        // 60 calls × ≤ 200 ms: 12 s, inside one minute (T0 is 20 s before a minute boundary... of no window used here)
        // and far below one unit's refill at ≤ 8 per minute or slower.
        for (const c of calls) {
          clock.advance(c.dtMs);
          const request: RateLimitRequest = { key: 'k', ...c.shape, limit, cost: Math.min(c.cost, limit) };
          if (play(store, request).allowed) admitted += request.cost!;
        }
        expect(admitted).toBeLessThanOrEqual(limit);
      }),
      { numRuns: RUNS, ...REPLAY },
    );
  });

  it.each(['token-bucket', 'gcra'] as const)('%s: a change of limit or burst never hands back more than the ceiling’s increase (invariant 4)', (algorithm) => {
    const descriptionArb = fc.record({
      limit: fc.integer({ min: 1, max: 40 }),
      burst: fc.option(fc.integer({ min: 1, max: 60 }), { nil: undefined }),
      cost: fc.integer({ min: 0, max: 3 }),
      dtMs: fc.integer({ min: 0, max: 120_000 }),
    });
    fc.assert(
      fc.property(fc.constantFrom(60_000, 3_600_000), fc.array(descriptionArb, { minLength: 2, maxLength: 60 }), (windowMs, calls) => {
        const { store, clock } = newStore();
        let writer: RateLimitRequest | undefined;
        for (const c of calls) {
          clock.advance(c.dtMs);
          const request: RateLimitRequest = { key: 'k', algorithm, windowMs, limit: c.limit, burst: c.burst };
          const cost = Math.min(c.cost, ceilingOf(request));
          if (writer !== undefined) {
            const seen = store.allow({ ...request, cost: 0 }).remaining;
            const writerSees = store.allow({ ...writer, cost: 0 }).remaining;
            expect(seen).toBeLessThanOrEqual(writerSees + Math.max(0, ceilingOf(request) - ceilingOf(writer)));
          }
          store.allow({ ...request, cost });
          if (cost > 0) writer = request;
        }
      }),
      { numRuns: RUNS, ...REPLAY },
    );
  });

  it.each(['fixed-window', 'sliding-window'] as const)('%s: a change of limit never leaves more than the limit minus the units admitted (invariant 4)', (algorithm) => {
    const callsArb = fc.array(
      fc.record({ limit: fc.integer({ min: 1, max: 40 }), cost: fc.integer({ min: 0, max: 3 }), dtMs: fc.integer({ min: 0, max: 30_000 }) }),
      { minLength: 2, maxLength: 80 },
    );
    fc.assert(
      fc.property(callsArb, (calls) => {
        const windowMs = 60_000;
        const { store, clock } = newStore();
        const admittedIn = new Map<number, number>();
        for (const c of calls) {
          clock.advance(c.dtMs);
          const now = clock.now();
          const start = Math.floor(now / windowMs) * windowMs;
          const current = admittedIn.get(start) ?? 0;
          const previous = admittedIn.get(start - windowMs) ?? 0;
          const used = algorithm === 'fixed-window' ? current : previous * (1 - (now - start) / windowMs) + current;
          const request: RateLimitRequest = { key: 'k', algorithm, windowMs, limit: c.limit };
          expect(store.allow({ ...request, cost: 0 }).remaining).toBeLessThanOrEqual(Math.max(0, Math.floor(c.limit - used + 1e-9)));
          const cost = Math.min(c.cost, c.limit);
          if (store.allow({ ...request, cost }).allowed) admittedIn.set(start, current + cost);
        }
      }),
      { numRuns: RUNS, ...REPLAY },
    );
  });

  it('a policy change of shape converts a key in use to no more than it had left (invariant 5)', () => {
    const windowOf = (shape: Shape): number | { calendar: CalendarUnit; timeZone: string } =>
      shape.calendar === undefined ? shape.windowMs! : { calendar: shape.calendar, timeZone: shape.timeZone! };
    const policiesOf = (shape: Shape, limit: number): Policies => new Policies({ defaults: { api: { limit, window: windowOf(shape), algorithm: shape.algorithm } } });
    let conversions = 0;
    fc.assert(
      fc.property(
        shapeArb,
        shapeArb,
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.record({ cost: fc.integer({ min: 0, max: 3 }), dtMs: fc.integer({ min: 0, max: 600_000 }) }), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 0, max: 600_000 }),
        (before, after, limitBefore, limitAfter, calls, laterMs) => {
          const { store, clock } = newStore();
          store.policies = policiesOf(before, limitBefore);
          const request: RateLimitRequest = { key: 'k', action: 'api' };
          for (const c of calls) {
            clock.advance(c.dtMs);
            store.allow({ ...request, cost: Math.min(c.cost, limitBefore) });
          }
          clock.advance(laterMs);
          const left = store.allow({ ...request, cost: 0 }).remaining;
          store.policies = policiesOf(after, limitAfter);
          const bound = Math.min(left + Math.max(0, limitAfter - limitBefore), limitAfter);
          expect(store.allow({ ...request, cost: 0 }).remaining).toBeLessThanOrEqual(bound);
          // Admitting one by one, now: no more than that.
          let admitted = 0;
          while (admitted <= limitAfter && store.allow({ ...request, cost: 1 }).allowed) admitted++;
          expect(admitted).toBeLessThanOrEqual(bound);
          expect(store.stats().shapeMismatches).toBe(0);
          conversions += store.stats().shapeConversions;
        },
      ),
      { numRuns: RUNS, ...REPLAY },
    );
    expect(conversions).toBeGreaterThan(RUNS / 10);
  });
});
