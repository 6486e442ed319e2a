import { describe, expect, it } from 'vitest';
import type { Algorithm, RateLimitRequest } from '../../src/limiter/types.js';
import { ALL, newStore } from './helpers.js';

const base = { key: 'u', limit: 10, windowMs: 1000 };

describe.each(ALL)('%s', (algorithm: Algorithm) => {
  const req: RateLimitRequest = { ...base, algorithm };

  it('allows exactly the limit in a burst, then rejects with a retryAfterMs that is exact', () => {
    const { store, clock } = newStore();
    if (algorithm === 'fixed-window' || algorithm === 'sliding-window') {
      clock.set(Math.ceil(clock.now() / 1000) * 1000); // start of an aligned window
    }
    for (let i = 0; i < 10; i++) {
      const d = store.allow(req);
      expect(d.allowed).toBe(true);
      expect(d.remaining).toBe(9 - i);
      expect(d.retryAfterMs).toBe(0);
      expect(d.limit).toBe(10);
    }
    const rejected = store.allow(req);
    expect(rejected.allowed).toBe(false);
    expect(rejected.remaining).toBe(0);
    expect(rejected.retryAfterMs).toBeGreaterThan(0);
    const wait = rejected.retryAfterMs;
    clock.advance(wait * 0.99);
    expect(store.allow(req).allowed).toBe(false);
    clock.advance(wait * 0.01);
    expect(store.allow(req).allowed).toBe(true);
  });

  it('weight w gets w times the limit', () => {
    const { store } = newStore();
    let allowed = 0;
    for (let i = 0; i < 100; i++) if (store.allow({ ...req, weight: 3 }).allowed) allowed++;
    expect(allowed).toBe(30);
  });

  it('cost takes that many units and cost 0 peeks without consuming', () => {
    const { store } = newStore();
    expect(store.allow({ ...req, cost: 7 }).remaining).toBe(3);
    const peek = store.allow({ ...req, cost: 0 });
    expect(peek.allowed).toBe(true);
    expect(peek.remaining).toBe(3);
    expect(store.allow({ ...req, cost: 0 }).remaining).toBe(3);
    expect(store.allow({ ...req, cost: 4 }).allowed).toBe(false);
    expect(store.allow({ ...req, cost: 3 }).allowed).toBe(true);
  });

  it('a peek at an unknown key stores nothing', () => {
    const { store } = newStore();
    expect(store.allow({ ...req, cost: 0 }).remaining).toBe(10);
    expect(store.keyCount).toBe(0);
  });

  it('actions are separate limits for the same key', () => {
    const { store } = newStore();
    for (let i = 0; i < 10; i++) store.allow({ ...req, action: 'a' });
    expect(store.allow({ ...req, action: 'a' }).allowed).toBe(false);
    expect(store.allow({ ...req, action: 'b' }).allowed).toBe(true);
  });

  it('a key idle for a long time then bursting gets exactly its burst', () => {
    const { store, clock } = newStore();
    for (let i = 0; i < 10; i++) store.allow(req);
    clock.advance(86_400_000 * 3);
    let allowed = 0;
    for (let i = 0; i < 50; i++) if (store.allow(req).allowed) allowed++;
    expect(allowed).toBe(10);
  });

  it('resetAtMs is when the full allowance is back', () => {
    const { store, clock } = newStore();
    const d = store.allow({ ...req, cost: 10 });
    clock.set(d.resetAtMs);
    const after = store.allow({ ...req, cost: 0 });
    expect(after.remaining).toBe(10);
  });
});

describe('algorithm specifics', () => {
  it('token bucket refills continuously at limit per window', () => {
    const { store, clock } = newStore();
    const req: RateLimitRequest = { key: 'k', limit: 10, windowMs: 1000, algorithm: 'token-bucket' };
    store.allow({ ...req, cost: 10 });
    clock.advance(250); // 2.5 tokens
    expect(store.allow({ ...req, cost: 2 }).allowed).toBe(true);
    const r = store.allow(req);
    expect(r.allowed).toBe(false);
    expect(r.retryAfterMs).toBeCloseTo(50, 9); // 0.5 token short at 100 ms per token
  });

  it('burst sets the bucket capacity, scaled by weight', () => {
    const { store } = newStore();
    const req: RateLimitRequest = { key: 'k', limit: 10, windowMs: 1000, burst: 3, weight: 2 };
    let allowed = 0;
    for (let i = 0; i < 20; i++) if (store.allow(req).allowed) allowed++;
    expect(allowed).toBe(6);
  });

  it('gcra spaces requests by windowMs / limit once the burst is spent', () => {
    const { store, clock } = newStore();
    const req: RateLimitRequest = { key: 'k', limit: 4, windowMs: 1000, algorithm: 'gcra', burst: 1 };
    expect(store.allow(req).allowed).toBe(true);
    const r = store.allow(req);
    expect(r.allowed).toBe(false);
    expect(r.retryAfterMs).toBeCloseTo(250, 9);
    clock.advance(250);
    expect(store.allow(req).allowed).toBe(true);
  });

  it('gcra stays exact at rates far above a double’s resolution of epoch time', () => {
    const { store, clock } = newStore();
    const req: RateLimitRequest = { key: 'k', limit: 1_000_000_000, windowMs: 1, algorithm: 'gcra', burst: 1000 };
    let allowed = 0;
    for (let i = 0; i < 5000; i++) if (store.allow(req).allowed) allowed++;
    expect(allowed).toBe(1000);
    clock.advance(0.001); // 1 µs at 1e9/ms refills 1e6: the burst is back, no more
    allowed = 0;
    for (let i = 0; i < 5000; i++) if (store.allow(req).allowed) allowed++;
    expect(allowed).toBe(1000);
  });

  it('fixed window resets at the aligned boundary', () => {
    const { store, clock } = newStore();
    clock.set(Math.ceil(clock.now() / 1000) * 1000 + 900);
    const req: RateLimitRequest = { key: 'k', limit: 5, windowMs: 1000, algorithm: 'fixed-window' };
    for (let i = 0; i < 5; i++) expect(store.allow(req).allowed).toBe(true);
    const r = store.allow(req);
    expect(r.allowed).toBe(false);
    expect(r.retryAfterMs).toBeCloseTo(100, 6);
    clock.advance(100);
    expect(store.allow(req).allowed).toBe(true);
  });

  it('sliding window weighs the previous window by the part of it still inside the slide', () => {
    const { store, clock } = newStore();
    clock.set(Math.ceil(clock.now() / 1000) * 1000);
    const req: RateLimitRequest = { key: 'k', limit: 10, windowMs: 1000, algorithm: 'sliding-window' };
    for (let i = 0; i < 10; i++) store.allow(req);
    clock.advance(1250); // previous = 10 at weight 0.75 → 7.5 used
    const d = store.allow({ ...req, cost: 0 });
    expect(d.remaining).toBe(2);
    expect(store.allow({ ...req, cost: 2 }).allowed).toBe(true);
    const r = store.allow(req);
    expect(r.allowed).toBe(false);
    // 10 × (1 − f) + 2 + 1 ≤ 10  ⇔  f ≥ 0.3: 50 ms from now
    expect(r.retryAfterMs).toBeCloseTo(50, 6);
  });

  it('a key in use keeps its algorithm: another one is refused (FAILED_PRECONDITION, nothing changed) until its state is fresh', () => {
    const { store, clock } = newStore();
    for (let i = 0; i < 10; i++) store.allow({ key: 'k', limit: 10, windowMs: 1000 });
    expect(store.allow({ key: 'k', limit: 10, windowMs: 1000 }).allowed).toBe(false);
    expect(() => store.allow({ key: 'k', limit: 10, windowMs: 1000, algorithm: 'gcra' })).toThrow(
      expect.objectContaining({ code: 'FAILED_PRECONDITION', field: 'algorithm' }),
    );
    expect(store.getState('default', 'k')?.algorithm).toBe('token-bucket');
    clock.advance(1000); // full again: a fresh state holds nothing to keep
    expect(store.allow({ key: 'k', limit: 10, windowMs: 1000, algorithm: 'gcra' }).allowed).toBe(true);
    expect(store.getState('default', 'k')?.algorithm).toBe('gcra');
  });

  it('a clock that steps backwards never refills', () => {
    const { store } = newStore();
    const cells = { key: 'k', limit: 2, windowMs: 1000 };
    store.allow(cells);
    store.allow(cells);
    expect(store.allow(cells).allowed).toBe(false);
  });
});
