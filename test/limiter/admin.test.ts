import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { createLimiter } from '../../src/limiter/create.js';
import type { Algorithm } from '../../src/limiter/types.js';
import { ALL, T0, newStore } from './helpers.js';

const RUNS = Number(process.env.PROPERTY_RUNS ?? 300);

describe('operators: inspect, reset and set a key', () => {
  it('after set(r) a key has exactly r units now, whatever came before (all four algorithms)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<Algorithm>(...ALL),
        fc.integer({ min: 1, max: 500 }),
        fc.oneof(fc.constantFrom(1, 1000, 60_000, 86_400_000), fc.double({ min: 1, max: 86_400_000, noNaN: true })),
        fc.option(fc.integer({ min: 1, max: 500 }), { nil: undefined }),
        fc.array(fc.tuple(fc.double({ min: 0, max: 2, noNaN: true }), fc.integer({ min: 0, max: 3 })), { maxLength: 30 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (algorithm, limit, windowMs, burst, history, fraction) => {
          const { store, clock } = newStore();
          const windowed = algorithm === 'fixed-window' || algorithm === 'sliding-window';
          const request = { key: 'k', limit, windowMs, algorithm, ...(burst === undefined || windowed ? {} : { burst }) };
          const ceiling = windowed || burst === undefined ? limit : burst;
          for (const [dt, cost] of history) {
            clock.advance(dt * windowMs);
            store.allow({ ...request, cost: Math.min(cost, ceiling) });
          }
          const r = Math.floor(fraction * ceiling);
          const set = store.setRemaining(request, r);
          expect(set.remaining).toBe(r);
          expect(store.inspect(request).remaining).toBe(r);
          // Exactly r single units pass now, the next does not.
          for (let i = 0; i < r; i++) expect(store.allow(request).allowed).toBe(true);
          expect(store.allow(request).allowed).toBe(false);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('inspect consumes nothing, stores nothing for an unknown key, and counts no decision', () => {
    const { store } = newStore();
    const request = { key: 'k', limit: 3, windowMs: 1_000 };
    expect(store.inspect(request)).toMatchObject({ allowed: true, remaining: 3, limit: 3 });
    expect(store.has('default', 'k')).toBe(false);
    store.allow(request);
    for (let i = 0; i < 5; i++) expect(store.inspect(request).remaining).toBe(2);
    expect(store.stats().decisions).toBe(1);
  });

  it('reset gives the full allowance back; bad values are refused and change nothing', () => {
    const clock = new ManualClock(T0);
    const limiter = createLimiter({ clock });
    const request = { key: 'user-1', action: 'login', limit: 5, windowMs: 60_000, algorithm: 'sliding-window' as const };
    for (let i = 0; i < 5; i++) limiter.allow(request);
    expect(limiter.allow(request).allowed).toBe(false);
    expect(limiter.reset(request).remaining).toBe(5);
    expect(limiter.allow(request)).toMatchObject({ allowed: true, remaining: 4 });
    expect(() => limiter.setRemaining(request, 6)).toThrow(/remaining: must be an integer from 0 to 5/);
    expect(() => limiter.setRemaining(request, -1)).toThrow(/remaining/);
    expect(() => limiter.setRemaining(request, 1.5)).toThrow(/remaining/);
    expect(() => limiter.setRemaining({ ...request, key: '' }, 1)).toThrow(/key/);
    expect(limiter.inspect(request).remaining).toBe(4);
    expect(limiter.setRemaining(request, 0).remaining).toBe(0);
    expect(limiter.allow(request).allowed).toBe(false);
    limiter.close();
  });

  it('a set is recorded as a change, so replication carries it', () => {
    const { store } = newStore({ trackChanges: true });
    store.setRemaining({ key: 'k', limit: 10, windowMs: 1_000 }, 4);
    const seen: string[] = [];
    store.drainChanges((action, key) => seen.push(`${action}/${key}`));
    expect(seen).toEqual(['default/k']);
  });
});
