import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LATENCY_BUCKETS_SECONDS, LATENCY_SAMPLE_EVERY, LatencyHistogram, histogramQuantile } from '../../src/common/latency.js';

const BOUNDS = [...LATENCY_BUCKETS_SECONDS, Infinity];
const cumulativeOf = (h: LatencyHistogram): number[] => {
  let sum = 0;
  return [...h.counts].map((n) => (sum += n));
};

describe('sampled decision latency', () => {
  it('samples exactly one call in LATENCY_SAMPLE_EVERY', () => {
    const h = new LatencyHistogram();
    let sampled = 0;
    for (let i = 0; i < LATENCY_SAMPLE_EVERY * 100; i++) if (h.sample()) sampled++;
    expect(sampled).toBe(100);
  });

  it('puts a duration in the first bucket whose bound is not below it (le), the rest in +Inf', () => {
    const h = new LatencyHistogram();
    h.record(0.001); // 1 µs: exactly the first bound
    h.record(0.0011);
    h.record(1); // 1 ms: exactly the 0.001 bound
    h.record(60_000);
    h.record(-3); // a clock step back counts as 0
    expect(h.counts[0]).toBe(2);
    expect(h.counts[1]).toBe(1);
    expect(h.counts[LATENCY_BUCKETS_SECONDS.indexOf(0.001)]).toBe(1);
    expect(h.counts[LATENCY_BUCKETS_SECONDS.length]).toBe(1);
    expect(h.count).toBe(5);
    expect(h.sumSeconds).toBeCloseTo((0.001 + 0.0011 + 1 + 60_000) / 1000, 9);
  });

  it('interpolates quantiles within a bucket as histogram_quantile does', () => {
    // 100 samples: 50 in (0, 1], 50 in (1, 2]
    expect(histogramQuantile(0.5, [1, 2, Infinity], [50, 100, 100])).toBe(1);
    expect(histogramQuantile(0.75, [1, 2, Infinity], [50, 100, 100])).toBe(1.5);
    expect(histogramQuantile(0.99, [1, 2, Infinity], [50, 100, 100])).toBeCloseTo(1.98, 9);
    expect(histogramQuantile(0.99, [1, 2, Infinity], [0, 0, 0])).toBeUndefined();
    // In +Inf: the largest finite bound.
    expect(histogramQuantile(0.99, [1, 2, Infinity], [0, 0, 10])).toBe(2);
  });

  it('property: the quantile of recorded durations is monotonic in q and lies in the bucket holding the true quantile', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0.001, max: 4_000, noNaN: true }), { minLength: 1, maxLength: 300 }), fc.double({ min: 0.01, max: 1, noNaN: true }), (durationsMs, q) => {
        const h = new LatencyHistogram();
        for (const ms of durationsMs) h.record(ms);
        const cumulative = cumulativeOf(h);
        const estimate = histogramQuantile(q, BOUNDS, cumulative)!;
        const sorted = [...durationsMs].sort((a, b) => a - b);
        const truth = sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]! / 1000;
        const bucket = BOUNDS.findIndex((b) => truth <= b);
        const lower = bucket === 0 ? 0 : BOUNDS[bucket - 1]!;
        expect(estimate).toBeGreaterThanOrEqual(lower - 1e-12);
        expect(estimate).toBeLessThanOrEqual(BOUNDS[bucket]! + 1e-12);
        expect(histogramQuantile(Math.min(1, q + 0.01), BOUNDS, cumulative)!).toBeGreaterThanOrEqual(estimate - 1e-12);
      }),
      { numRuns: 300 },
    );
  });
});
