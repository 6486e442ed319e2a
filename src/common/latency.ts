/**
 * Decision latency, sampled: one decision in LATENCY_SAMPLE_EVERY is timed, so the hot
 * paths pay a counter and a branch, and two clock reads only on the sampled ones.
 */

/** Upper bounds of the buckets, in seconds (Prometheus `le`); a last bucket, +Inf, takes the rest. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.000_001, 0.000_002_5, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

/** One decision in this many is timed (a power of two: the check is a mask). */
export const LATENCY_SAMPLE_EVERY = 64;
const SAMPLE_MASK = LATENCY_SAMPLE_EVERY - 1;

/** Counts of sampled durations per bucket (not cumulative), their sum and their number. */
export class LatencyHistogram {
  /** One count per bound, then +Inf. */
  readonly counts = new Float64Array(LATENCY_BUCKETS_SECONDS.length + 1);
  sumSeconds = 0;
  count = 0;
  private tick = 0;

  /** True once every LATENCY_SAMPLE_EVERY calls: time this decision. */
  sample(): boolean {
    return (++this.tick & SAMPLE_MASK) === 0;
  }

  record(durationMs: number): void {
    const seconds = durationMs > 0 ? durationMs / 1000 : 0;
    let i = 0;
    while (i < LATENCY_BUCKETS_SECONDS.length && seconds > LATENCY_BUCKETS_SECONDS[i]!) i++;
    this.counts[i]!++;
    this.sumSeconds += seconds;
    this.count++;
  }
}

/**
 * The q-quantile (0 < q ≤ 1) of a histogram given as cumulative counts per upper bound (the
 * last bound may be Infinity), interpolated within its bucket as Prometheus's
 * histogram_quantile does; undefined when it holds nothing. A quantile in the +Inf bucket
 * answers the largest finite bound.
 */
export function histogramQuantile(q: number, bounds: readonly number[], cumulative: readonly number[]): number | undefined {
  const total = cumulative[cumulative.length - 1] ?? 0;
  if (!(total > 0) || !(q > 0 && q <= 1)) return undefined;
  const rank = q * total;
  let i = 0;
  while (i < cumulative.length - 1 && cumulative[i]! < rank) i++;
  const upper = bounds[i]!;
  if (upper === Infinity) return bounds[i - 1] ?? 0;
  const lower = i === 0 ? 0 : bounds[i - 1]!;
  const below = i === 0 ? 0 : cumulative[i - 1]!;
  const inBucket = cumulative[i]! - below;
  return inBucket <= 0 ? upper : lower + ((upper - lower) * (rank - below)) / inBucket;
}
