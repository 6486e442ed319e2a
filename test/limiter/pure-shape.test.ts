import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RingLimitError } from '../../src/common/errors.js';
import { decide, reserve, type ShapedState } from '../../src/limiter/pure.js';
import type { RateLimitRequest } from '../../src/limiter/types.js';
import { ALL, T0, newStore } from './helpers.js';
import { shapeCallsWithoutAdmin, type ShapeCall } from '../redis/shape-calls.js';

const RUNS = Number(process.env.PROPERTY_RUNS ?? 300);
const REPLAY = process.env.PROPERTY_SEED === undefined ? {} : { seed: Number(process.env.PROPERTY_SEED) };
const HOUR = 3_600_000;

/** A refusal as both sides report it: the code, the field and the message (which gives the held shape and when it is fresh). */
function refusal(error: unknown): { code: string; field: string | undefined; message: string } {
  expect(error).toBeInstanceOf(RingLimitError);
  const e = error as RingLimitError;
  return { code: e.code, field: e.field, message: e.message };
}

function shapeOf(s: ShapedState): string {
  return `${s.algorithm} ${s.windowMs} ${s.calendar} ${s.timeZone}`;
}

describe('the pure functions follow the request-shape rule (issue 28, docs/request-shape.md)', () => {
  it('answer random sequences of requests of random shapes exactly as the store does: decisions, refusals (code, field, message), peeks', () => {
    let refused = 0;
    let reshaped = 0;
    fc.assert(
      fc.property(shapeCallsWithoutAdmin, (calls: ShapeCall[]) => {
        const { store, clock } = newStore();
        let state: ShapedState | undefined;
        for (const call of calls) {
          clock.advance(call.dtMs);
          const now = clock.now();
          let local: unknown;
          let pure: unknown;
          let next: ShapedState | undefined = state;
          const before = store.getState('default', 'k');
          try {
            local = call.maxWaitMs >= 0 ? store.reserve(call.request, call.maxWaitMs) : { ...store.allow(call.request), waitMs: 0 };
          } catch (error) {
            local = refusal(error);
          }
          try {
            const step = call.maxWaitMs >= 0 ? reserve(state, call.request, now, call.maxWaitMs) : decide(state, call.request, now);
            pure = call.maxWaitMs >= 0 ? step.decision : { ...step.decision, waitMs: 0 };
            next = step.state;
            if (call.request.cost === 0) expect(next === state || (state === undefined && next.empty === true)).toBe(true);
          } catch (error) {
            pure = refusal(error);
          }
          expect(pure).toEqual(local);
          if ('code' in (local as object)) refused++;
          else if (state !== undefined && state.empty !== true && call.request.cost !== 0 && shapeOf(state) !== shapeOf(next!)) reshaped++;
          if (call.request.cost === 0) expect(store.getState('default', 'k')).toEqual(before);
          state = next;
        }
      }),
      { numRuns: RUNS, ...REPLAY },
    );
    // The sequences reach both sides of the rule: refusals, and new shapes once a state is fresh.
    expect(refused).toBeGreaterThan(RUNS);
    expect(reshaped).toBeGreaterThan(RUNS / 10);
  });

  it('alternating the algorithm every 5 calls at 5 an hour admits 5 of 40, not 40; a peek as another algorithm resets nothing', () => {
    let state: ShapedState | undefined;
    let allowed = 0;
    let refused = 0;
    for (let i = 0; i < 40; i++) {
      try {
        const step = decide(state, { key: 'k', limit: 5, windowMs: HOUR, algorithm: ALL[Math.floor(i / 5) % ALL.length]! }, T0 + 10 * i);
        if (step.decision.allowed) allowed++;
        state = step.state;
      } catch (error) {
        expect(error).toMatchObject({ code: 'FAILED_PRECONDITION', field: 'algorithm' });
        refused++;
      }
    }
    expect(allowed).toBe(5);
    expect(refused).toBe(30);
    const used = state!;
    expect(() => decide(used, { key: 'k', limit: 5, windowMs: HOUR, algorithm: 'gcra', cost: 0 }, T0 + 1000)).toThrow(
      expect.objectContaining({ code: 'FAILED_PRECONDITION', field: 'algorithm' }),
    );
    expect(() => decide(used, { key: 'k', limit: 5, windowMs: 60_000, cost: 0 }, T0 + 1000)).toThrow(expect.objectContaining({ field: 'windowMs' }));
    const peek = decide(used, { key: 'k', limit: 5, windowMs: HOUR, cost: 0 }, T0 + 1000);
    expect(peek.state).toBe(used);
    expect(decide(used, { key: 'k', limit: 5, windowMs: HOUR }, T0 + 1000).decision.allowed).toBe(false);
    // Once fresh (a full bucket an hour later), another shape may take the key.
    expect(decide(used, { key: 'k', limit: 5, windowMs: HOUR, algorithm: 'gcra' }, used.freshAtMs!).decision).toMatchObject({ allowed: true, remaining: 4 });
  });

  it('rotating timeZone on a calendar day is refused (timeZone), and the state records its calendar', () => {
    const first = decide(undefined, { key: 'k', limit: 5, calendar: 'day', timeZone: 'Europe/Paris', algorithm: 'fixed-window' }, T0);
    expect(first.state).toMatchObject({ algorithm: 'fixed-window', calendar: 'day', timeZone: 'Europe/Paris', freshAtMs: first.freshAtMs });
    expect(() => decide(first.state, { key: 'k', limit: 5, calendar: 'day', timeZone: 'UTC', algorithm: 'fixed-window' }, T0 + 1)).toThrow(
      expect.objectContaining({ code: 'FAILED_PRECONDITION', field: 'timeZone' }),
    );
    expect(() => decide(first.state, { key: 'k', limit: 5, calendar: 'hour', timeZone: 'Europe/Paris', algorithm: 'fixed-window' }, T0 + 1)).toThrow(
      expect.objectContaining({ field: 'calendar' }),
    );
  });

  it('a state without a recorded shape (store.getState, an older version) takes the window of a request of its algorithm, and is refused by another until fresh', () => {
    const { store, clock } = newStore();
    const request: RateLimitRequest = { key: 'k', limit: 2, windowMs: HOUR, algorithm: 'fixed-window' };
    store.allow(request);
    store.allow(request);
    const plain = store.getState('default', 'k')!;
    expect(decide(plain, { ...request, windowMs: 60_000 }, clock.now()).decision.allowed).toBe(true); // adopts the request's window (as an imported state does)
    expect(decide(plain, request, clock.now()).decision.allowed).toBe(false);
    expect(() => decide(plain, { ...request, algorithm: 'gcra' }, clock.now())).toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION', field: 'algorithm' }));
    // Read under the request's window (an hour), it is fresh at the next hour.
    const nextHour = Math.floor(clock.now() / HOUR) * HOUR + HOUR;
    expect(decide(plain, { ...request, algorithm: 'gcra' }, nextHour).decision.allowed).toBe(true);
  });
});
