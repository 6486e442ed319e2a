import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { RateLimitError } from '../../src/common/errors.js';
import { createLimiter } from '../../src/limiter/create.js';
import type { RateLimitRequest } from '../../src/limiter/types.js';
import { ALL, T0 } from './helpers.js';

describe('reserve', () => {
  it.each(ALL)('%s: reservations queue in arrival order and each gets its exact delay', (algorithm) => {
    const clock = new ManualClock(Math.ceil(T0 / 1000) * 1000);
    const limiter = createLimiter({ clock });
    try {
      const req: RateLimitRequest = { key: 'u', limit: 4, windowMs: 1000, algorithm };
      const waits: number[] = [];
      for (let i = 0; i < 12; i++) {
        const r = limiter.reserve(req, { maxWaitMs: 5000 });
        expect(r.allowed).toBe(true);
        waits.push(r.waitMs);
      }
      // First come, first served: delays never decrease.
      for (let i = 1; i < waits.length; i++) expect(waits[i]!).toBeGreaterThanOrEqual(waits[i - 1]!);
      expect(waits.slice(0, 4)).toEqual([0, 0, 0, 0]);
      expect(waits[11]!).toBeGreaterThan(0);
      // A plain allow arriving now is rejected: the queue is ahead of it.
      expect(limiter.allow(req).allowed).toBe(false);
      // A reservation that would wait longer than allowed is rejected with retryAfterMs.
      const tooLong = limiter.reserve(req, { maxWaitMs: 10 });
      expect(tooLong.allowed).toBe(false);
      expect(tooLong.retryAfterMs).toBeGreaterThan(10);
    } finally {
      limiter.close();
    }
  });

  it('token bucket: the k-th queued unit waits exactly k intervals', () => {
    const clock = new ManualClock(T0);
    const limiter = createLimiter({ clock });
    try {
      const req: RateLimitRequest = { key: 'u', limit: 10, windowMs: 1000, burst: 1 };
      expect(limiter.reserve(req, { maxWaitMs: 1000 }).waitMs).toBe(0);
      for (let k = 1; k <= 5; k++) expect(limiter.reserve(req, { maxWaitMs: 1000 }).waitMs).toBeCloseTo(100 * k, 6);
    } finally {
      limiter.close();
    }
  });
});

describe('acquire', () => {
  it('waits for the slot with the real clock, through one shared timer', async () => {
    const limiter = createLimiter();
    try {
      const req: RateLimitRequest = { key: 'u', limit: 10, windowMs: 200, burst: 1 };
      const started = performance.now();
      const results = await Promise.all([0, 1, 2, 3].map(() => limiter.acquire(req, { maxWaitMs: 1000 })));
      const elapsed = performance.now() - started;
      expect(results.every((r) => r.allowed)).toBe(true);
      // The k-th waits k × 20 ms, less the moments between the calls (a busy machine may add a few ms).
      results.forEach((r, k) => {
        expect(r.waitMs).toBeLessThanOrEqual(20 * k + 1e-6);
        expect(r.waitMs).toBeGreaterThanOrEqual(20 * k - 5);
      });
      expect(elapsed).toBeGreaterThanOrEqual(55);
      expect(elapsed).toBeLessThan(1000);
      expect(limiter.stats().waiting).toBe(0);
    } finally {
      limiter.close();
    }
  });

  it('releases waiters in due order when a manual clock moves', async () => {
    const clock = new ManualClock(T0);
    const limiter = createLimiter({ clock });
    try {
      const req: RateLimitRequest = { key: 'u', limit: 1, windowMs: 60_000 };
      const order: number[] = [];
      const first = await limiter.acquire(req);
      expect(first.waitMs).toBe(0);
      const p1 = limiter.acquire(req, { maxWaitMs: 200_000 }).then(() => order.push(1));
      const p2 = limiter.acquire(req, { maxWaitMs: 200_000 }).then(() => order.push(2));
      expect(limiter.stats().waiting).toBe(2);
      clock.advance(60_000);
      limiter.tick();
      await p1;
      expect(order).toEqual([1]);
      clock.advance(60_000);
      limiter.tick();
      await p2;
      expect(order).toEqual([1, 2]);
    } finally {
      limiter.close();
    }
  });

  it('resolves at once with allowed: false when the wait would exceed maxWaitMs', async () => {
    const limiter = createLimiter();
    try {
      const req: RateLimitRequest = { key: 'u', limit: 1, windowMs: 60_000 };
      await limiter.acquire(req);
      const r = await limiter.acquire(req, { maxWaitMs: 100 });
      expect(r.allowed).toBe(false);
      expect(r.retryAfterMs).toBeGreaterThan(59_000);
    } finally {
      limiter.close();
    }
  });

  it('an abort signal rejects the waiting caller with ABORTED', async () => {
    const limiter = createLimiter();
    try {
      const req: RateLimitRequest = { key: 'u', limit: 1, windowMs: 60_000 };
      await limiter.acquire(req);
      const controller = new AbortController();
      const pending = limiter.acquire(req, { maxWaitMs: 120_000, signal: controller.signal });
      controller.abort();
      await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });
    } finally {
      limiter.close();
    }
  });

  it('bounds the number of waiting callers, and close() rejects those still waiting', async () => {
    const limiter = createLimiter({ maxWaiting: 2 });
    const req: RateLimitRequest = { key: 'u', limit: 1, windowMs: 60_000 };
    await limiter.acquire(req);
    const a = limiter.acquire(req, { maxWaitMs: 600_000 });
    const b = limiter.acquire(req, { maxWaitMs: 600_000 });
    await expect(limiter.acquire(req, { maxWaitMs: 600_000 })).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    limiter.close();
    await expect(a).rejects.toBeInstanceOf(RateLimitError);
    await expect(b).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(limiter.acquire(req)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('a bad request rejects the promise with INVALID_ARGUMENT', async () => {
    const limiter = createLimiter();
    try {
      await expect(limiter.acquire({ key: '', limit: 1, windowMs: 1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    } finally {
      limiter.close();
    }
  });
});

describe('call-shape wrappers', () => {
  it('rateLimit, allowRequest and allowRate map onto the request shape', () => {
    const limiter = createLimiter();
    try {
      let n = 0;
      for (let i = 0; i < 10; i++) if (limiter.rateLimit('alice', 'upload', 3, 60)) n++;
      expect(n).toBe(3);
      n = 0;
      for (let i = 0; i < 10; i++) if (limiter.allowRequest('bob', '/api/search', 5, 1)) n++;
      expect(n).toBe(5);
      n = 0;
      // 2 per second over a 10 s window at weight 1.5 → 30 per window
      for (let i = 0; i < 100; i++) if (limiter.allowRate('carol', 'read', 2, 10, 1.5)) n++;
      expect(n).toBe(30);
    } finally {
      limiter.close();
    }
  });
});
