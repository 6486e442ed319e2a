import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { jainIndex, weightedMaxMin } from '../../src/limiter/fair-share.js';
import { createLimiter } from '../../src/limiter/limiter.js';

const claims = fc.array(fc.record({ weight: fc.constantFrom(0.5, 1, 2, 5, 10), demand: fc.double({ min: 0, max: 100, noNaN: true }) }), { minLength: 1, maxLength: 20 });

describe('weightedMaxMin', () => {
  it('gives out exactly the capacity; when contended, no one gets more than it asks and the unsatisfied share one level per unit of weight', () => {
    fc.assert(
      fc.property(claims, fc.double({ min: 0.1, max: 500, noNaN: true }), (cs, capacity) => {
        const shares = weightedMaxMin(cs, capacity);
        const sum = shares.reduce((a, b) => a + b, 0);
        expect(Math.abs(sum - capacity)).toBeLessThan(1e-6 * capacity + 1e-9);
        const demand = cs.reduce((a, c) => a + c.demand, 0);
        if (demand <= capacity) {
          cs.forEach((c, i) => expect(shares[i]!).toBeGreaterThanOrEqual(c.demand - 1e-9));
          return;
        }
        const unsatisfied = cs.map((_, i) => i).filter((i) => shares[i]! < cs[i]!.demand - 1e-9);
        expect(unsatisfied.length).toBeGreaterThan(0);
        const level = shares[unsatisfied[0]!]! / cs[unsatisfied[0]!]!.weight;
        cs.forEach((c, i) => {
          expect(shares[i]!).toBeLessThanOrEqual(c.demand + 1e-9);
          if (unsatisfied.includes(i)) expect(Math.abs(shares[i]! / c.weight - level)).toBeLessThan(1e-6 * level + 1e-12);
          else expect(c.demand / c.weight).toBeLessThanOrEqual(level + 1e-9);
        });
      }),
      { numRuns: 500 },
    );
  });

  it('Jain index: 1 for equal values, 1/n when one takes all', () => {
    expect(jainIndex([3, 3, 3])).toBe(1);
    expect(jainIndex([5, 0, 0, 0])).toBe(0.25);
  });
});

describe('a shared capacity on a limiter (simulated time, 1 ms steps)', () => {
  it('weights 1, 2, 5 and 10 get throughput in proportion (Jain ≥ 0.99 over 10 s windows), light users get all they ask, and the total stays within 2 % of the capacity', () => {
    const clock = new ManualClock(1_000_000);
    const limiter = createLimiter({
      clock,
      policies: {
        defaults: { search: { limit: 100_000, window: '1s', algorithm: 'sliding-window' } },
        groups: { w1: { weight: 1 }, w2: { weight: 2 }, w5: { weight: 5 }, w10: { weight: 10 } },
        shared: { search: { limit: 2_000, window: '1s' } },
      },
    });
    try {
      // Heavy users ask far beyond the capacity; light ones (weight 5) ask 40/s, below any share.
      const users = [
        { key: 'heavy-1', group: 'w1', weight: 1, perMs: 3 },
        { key: 'heavy-2', group: 'w2', weight: 2, perMs: 3 },
        { key: 'heavy-5', group: 'w5', weight: 5, perMs: 3 },
        { key: 'heavy-10', group: 'w10', weight: 10, perMs: 3 },
        { key: 'light-a', group: 'w5', weight: 5, perMs: 0.04 },
        { key: 'light-b', group: 'w5', weight: 5, perMs: 0.04 },
      ];
      const owed = users.map(() => 0);
      const admitted = (): number[] => users.map(() => 0);
      const windows: number[][] = [];
      let current = admitted();
      const steps = 22_000; // 2 s to settle, then two 10 s windows
      for (let ms = 0; ms < steps; ms++) {
        clock.advance(1);
        users.forEach((u, i) => {
          owed[i]! += u.perMs;
          while (owed[i]! >= 1) {
            owed[i]! -= 1;
            if (limiter.allow({ key: u.key, action: 'search', group: u.group }).allowed && ms >= 2_000) current[i]!++;
          }
        });
        if (ms >= 2_000 && (ms - 2_000) % 10_000 === 9_999) {
          windows.push(current);
          current = admitted();
        }
      }
      expect(windows).toHaveLength(2);
      for (const w of windows) {
        const heavy = [0, 1, 2, 3].map((i) => w[i]! / users[i]!.weight);
        expect(jainIndex(heavy)).toBeGreaterThanOrEqual(0.99);
        // Light users: everything they asked (40/s over 10 s = 400), within a request or two.
        expect(w[4]!).toBeGreaterThanOrEqual(398);
        expect(w[5]!).toBeGreaterThanOrEqual(398);
        const total = w.reduce((a, b) => a + b, 0);
        expect(Math.abs(total - 20_000) / 20_000).toBeLessThanOrEqual(0.02);
      }
    } finally {
      limiter.close();
    }
  });
});
