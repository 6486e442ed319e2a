import { describe, expect, it } from 'vitest';
import { EnvoyStats, OVERFLOW_KEY, envoyStatsDefaults } from '../../src/envoy/stats.js';

describe("envoyproxy/ratelimit's per-limit stats (base_limiter.go), counted as it counts them", () => {
  it('splits a request that crosses the limit into over_limit and near_limit hits, and counts whole requests past it as over', () => {
    const stats = new EnvoyStats();
    // Limit 10: near from floor(10 × 0.8) = 8.
    stats.record('k', 10, 0, 7, 7, false); // within, not near
    stats.record('k', 10, 7, 9, 2, false); // within; 1 of them past 8
    stats.record('k', 10, 9, 12, 3, false); // over by 2; 10 − max(8, 9) = 1 near
    stats.record('k', 10, 12, 13, 1, false); // wholly over
    expect(stats.keys.get('k')).toEqual({ totalHits: 13, withinLimit: 9, nearLimit: 2, overLimit: 3, shadowMode: 0 });
  });

  it('counts shadow-mode hits past the limit, and nothing in shadow mode below it', () => {
    const stats = new EnvoyStats();
    stats.record('s', 5, 0, 5, 5, true);
    stats.record('s', 5, 5, 7, 2, true);
    stats.record('s', 5, 3, 6, 3, true);
    expect(stats.keys.get('s')?.shadowMode).toBe(2 + 1);
  });

  it('computes the near-limit threshold in float32, as the peer does (limit 5 → 4, limit 3 → 2)', () => {
    const stats = new EnvoyStats();
    stats.record('five', 5, 3, 5, 2, false);
    stats.record('three', 3, 1, 3, 2, false);
    expect([stats.keys.get('five')?.nearLimit, stats.keys.get('three')?.nearLimit]).toEqual([1, 1]);
  });

  it('keeps at most maxKeys keys, and none longer than maxKeyLength: the rest count under the overflow key', () => {
    const stats = new EnvoyStats(3);
    for (const key of ['a', 'b', 'c', 'd', 'e']) stats.record(key, 10, 0, 1, 1, false);
    stats.record('x'.repeat(envoyStatsDefaults.maxKeyLength + 1), 10, 0, 1, 1, false);
    expect([...stats.keys.keys()]).toEqual(['a', 'b', 'c', OVERFLOW_KEY]);
    expect(stats.keys.get(OVERFLOW_KEY)?.totalHits).toBe(3);
    const roomy = new EnvoyStats();
    roomy.record('y'.repeat(envoyStatsDefaults.maxKeyLength + 1), 10, 0, 1, 1, false);
    expect([...roomy.keys.keys()]).toEqual([OVERFLOW_KEY]);
  });
});
