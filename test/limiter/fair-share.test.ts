import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SharedCapacity, fairShareDefaults, jainIndex, weightedMaxMin } from '../../src/limiter/fair-share.js';
import { FAIR_SHARE_CAPACITY_PER_SECOND, FAIR_SHARE_USERS, FAIR_SHARE_WINDOW_MS, simulateFairShare } from '../../bench/fair-share-sim.js';

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
    const windows = simulateFairShare(2);
    expect(windows).toHaveLength(2);
    const capacity = (FAIR_SHARE_CAPACITY_PER_SECOND * FAIR_SHARE_WINDOW_MS) / 1000;
    for (const w of windows) {
      const heavy = [0, 1, 2, 3].map((i) => w[i]! / FAIR_SHARE_USERS[i]!.weight);
      expect(jainIndex(heavy)).toBeGreaterThanOrEqual(0.99);
      // Light users: everything they asked (40/s over 10 s = 400), within a request or two.
      expect(w[4]!).toBeGreaterThanOrEqual(398);
      expect(w[5]!).toBeGreaterThanOrEqual(398);
      const total = w.reduce((a, b) => a + b, 0);
      expect(Math.abs(total - capacity) / capacity).toBeLessThanOrEqual(0.02);
    }
  });
});

describe('SharedCapacity: a new user\'s first measurement (a fake clock: every call names its time)', () => {
  /** Measured demand of `user` in units per second (undefined before its first measurement). */
  const ratePerSecond = (shared: SharedCapacity, user: string): number | undefined => {
    const report = shared.demands(100).find((r) => r.user === user);
    return report === undefined ? undefined : report.rate * 1000;
  };

  it('covers the time since it arrived, not the whole interval: a 10/s user arriving mid-interval measures 10/s, not 3.6/s', () => {
    // 1,000/s shared; "old" asks 1 unit every 10 ms from t = 0, "new" (own limit 100/s) asks 0.1 unit every 10 ms from t = 160: 10/s.
    const shared = new SharedCapacity(1, fairShareDefaults, 0);
    for (let t = 0; t <= fairShareDefaults.intervalMs; t += 10) {
      // At t = 250 "old" comes first and its request computes the shares: "new" was there 90 ms, asking 0.9 units.
      shared.ask('old', 1, 1, 1, t);
      if (t >= 160 && t < fairShareDefaults.intervalMs) shared.ask('new', 1, 0.1, 0.1, t);
    }
    expect(ratePerSecond(shared, 'new')).toBeCloseTo(10, 6);
    // A user there for the whole interval still measures over all of it: 26 units in 250 ms.
    expect(ratePerSecond(shared, 'old')).toBeCloseTo(104, 6);
  });

  it('a first measurement over a very short presence claims at most the user\'s own limit, and later ones are smoothed as before', () => {
    const shared = new SharedCapacity(1, fairShareDefaults, 0);
    shared.ask('old', 1, 1, 1, 0);
    // Arrives 1 ms before the computation with 2 units: 2/ms measured (not 8/s over the interval), held to its own limit of 20/s.
    shared.ask('burst', 1, 0.02, 2, 249);
    shared.ask('old', 1, 1, 1, 250);
    expect(ratePerSecond(shared, 'burst')).toBeCloseTo(20, 6);
    // Next interval: 1 unit in 250 ms (4/s) smoothed with 20/s at 0.5: 12/s.
    shared.ask('burst', 1, 0.02, 1, 300);
    shared.ask('old', 1, 1, 1, 500);
    expect(ratePerSecond(shared, 'burst')).toBeCloseTo(12, 6);
  });
});
