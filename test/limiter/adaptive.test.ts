import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { AimdController, aimdDefaults, validateAimd } from '../../src/limiter/adaptive.js';
import { createLimiter } from '../../src/limiter/create.js';

describe('AimdController', () => {
  const options = { ...aimdDefaults, overloadAbove: 100, healthyBelow: 40, decreaseBy: 0.5, increaseBy: 0.25, minFactor: 0.1, decreaseEveryMs: 500, recoverAfterMs: 1_000 };

  it('shrinks multiplicatively under load, at most once per decreaseEveryMs, never below minFactor', () => {
    const c = new AimdController(options);
    expect(c.observe(150, 0)).toBe(0.5);
    expect(c.observe(900, 100)).toBe(0.5); // the same burst: no second decrease yet
    expect(c.observe(150, 500)).toBe(0.25);
    expect(c.observe(150, 1_000)).toBe(0.125);
    expect(c.observe(150, 1_500)).toBe(0.1);
    expect(c.observe(150, 2_000)).toBe(0.1);
  });

  it('recovers additively after recoverAfterMs of health in a row; the band between the thresholds holds', () => {
    const c = new AimdController(options);
    c.observe(150, 0); // 0.5
    expect(c.observe(10, 100)).toBe(0.5); // healthy from now on
    expect(c.observe(10, 900)).toBe(0.5);
    expect(c.observe(10, 1_100)).toBe(0.75);
    expect(c.observe(70, 1_500)).toBe(0.75); // in the band: holds, and the healthy run is broken
    expect(c.observe(10, 1_600)).toBe(0.75);
    expect(c.observe(10, 2_599)).toBe(0.75);
    expect(c.observe(10, 2_600)).toBe(1);
    expect(c.observe(10, 9_000)).toBe(1);
    expect(c.observe(Number.NaN, 9_100)).toBe(1);
  });

  it('validates its options, naming them', () => {
    expect(() => validateAimd({ ...aimdDefaults, healthyBelow: 200 })).toThrow(/^adaptive\.healthyBelow: must be below overloadAbove/);
    expect(() => validateAimd({ ...aimdDefaults, decreaseBy: 1 })).toThrow(/^adaptive\.decreaseBy/);
  });
});

describe('a limiter with a load factor', () => {
  it('scales every limit and bucket down, never below 1, refuses a request that takes more than that, and goes back', () => {
    const limiter = createLimiter({ clock: new ManualClock(0) });
    try {
      limiter.setLoadFactor(0.5);
      const r = { key: 'k', action: 'a', limit: 10, windowMs: 60_000 };
      const allowed = Array.from({ length: 10 }, () => limiter.allow(r).allowed).filter(Boolean).length;
      expect(allowed).toBe(5);
      expect(limiter.allow({ ...r, key: 'k2' }).limit).toBe(5);
      expect(limiter.policy({ action: 'h', limit: 10, windowMs: 60_000 }).allow('u').limit).toBe(5);
      limiter.setLoadFactor(0.01);
      expect(limiter.allow({ ...r, key: 'k3' }).limit).toBe(1);
      // A request that takes more than the scaled key can hold is refused, not let through by raising the limit.
      expect(limiter.allow({ ...r, key: 'k4', algorithm: 'fixed-window', cost: 4 })).toMatchObject({ allowed: false, limit: 1 });
      limiter.setLoadFactor(1);
      expect(limiter.allow({ ...r, key: 'k5' }).limit).toBe(10);
      expect(() => limiter.setLoadFactor(0)).toThrow(/^loadFactor: /);
      expect(() => limiter.setLoadFactor(1.5)).toThrow(/^loadFactor: /);
    } finally {
      limiter.close();
    }
  });
});
