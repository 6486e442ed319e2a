import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { createLimiter } from '../../src/limiter/create.js';

describe('policy handles', () => {
  it('decide with the options given once; per call only the key, and optionally cost and weight', () => {
    const limiter = createLimiter({ clock: new ManualClock(1_000_000) });
    try {
      const search = limiter.policy({ action: 'search', limit: 3, windowMs: 60_000 });
      expect([1, 2, 3, 4].map(() => search.allow('u1').allowed)).toEqual([true, true, true, false]);
      expect(search.allow('u2', { cost: 3 })).toMatchObject({ allowed: true, remaining: 0, limit: 3 });
      expect(search.isAllowed('u2')).toBe(false);
      // A call with its own weight gets its own effective limit; the next call is back on the template.
      expect(search.allow('u3', { weight: 2 })).toMatchObject({ allowed: true, limit: 6, remaining: 5 });
      expect(search.allow('u4')).toMatchObject({ limit: 3, remaining: 2 });
      // The same key through allow(): the handle and a plain request share the state.
      expect(limiter.allow({ key: 'u1', action: 'search', limit: 3, windowMs: 60_000 }).allowed).toBe(false);
    } finally {
      limiter.close();
    }
  });

  it('validate their options once, naming the field, and each call’s key and cost', () => {
    const limiter = createLimiter({ clock: new ManualClock(0) });
    try {
      expect(() => limiter.policy({ action: 'a', limit: 0, windowMs: 1_000 })).toThrow(/^limit: /);
      expect(() => limiter.policy({ action: 'a', limit: 5, windowMs: 1_000, algorithm: 'fixed-window', burst: 9 })).toThrow(/^burst: /);
      const h = limiter.policy({ action: 'a', limit: 5, windowMs: 1_000 });
      expect(() => h.allow('')).toThrow(/^key: /);
      expect(() => h.allow(42 as unknown as string)).toThrow(/^key: /);
      expect(() => h.allow('k', { cost: 6 })).toThrow(/^cost: must be an integer from 0 to 5/);
      expect(() => h.allow('k', { cost: -1 })).toThrow(/^cost: /);
      expect(() => h.allow('k', { weight: 0 })).toThrow(/^weight: /);
      expect(limiter.stats().keys).toBe(0); // refused calls change no state
    } finally {
      limiter.close();
    }
  });

  it('carry their own options: the limiter’s policy document does not change them', () => {
    const limiter = createLimiter({ clock: new ManualClock(0), policies: { defaults: { '*': { limit: 1, window: '1m' } } } });
    try {
      expect(limiter.policy({ action: 'x', limit: 10, windowMs: 60_000 }).allow('k').limit).toBe(10);
      expect(limiter.allow({ key: 'k2', action: 'x' }).limit).toBe(1);
    } finally {
      limiter.close();
    }
  });
});
