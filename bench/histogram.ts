/**
 * A latency histogram in the manner of HdrHistogram: log-linear buckets of whole
 * microseconds, from 1 µs to 60 s. Below 128 µs every microsecond has its own bucket;
 * above, each power of two is cut into 128 equal buckets, so a bucket is at most 1/128
 * of its lower bound wide. A percentile is reported as its bucket's midpoint: at most
 * 0.4 % from the recorded value (1 % is the bound this bench promises). Fixed size
 * (about 3,300 counters), no allocation per value, so millions of values cost nothing.
 */

/** Buckets per power of two (a power of two itself). */
const SUB_BUCKETS = 128;
const SUB_BITS = 7;
/** Largest value kept apart: 60 s in µs; larger values are counted in the top bucket. */
export const MAX_MICROS = 60_000_000;

function bucketOf(micros: number): number {
  if (micros < SUB_BUCKETS) return micros;
  const magnitude = 31 - Math.clz32(micros); // floor(log2), micros < 2^31
  const shift = magnitude - SUB_BITS;
  return SUB_BUCKETS + shift * SUB_BUCKETS + ((micros >>> shift) - SUB_BUCKETS);
}

/** The midpoint of bucket `index`, in µs. */
function valueOf(index: number): number {
  if (index < SUB_BUCKETS) return index;
  const shift = Math.floor((index - SUB_BUCKETS) / SUB_BUCKETS);
  const lower = (SUB_BUCKETS + ((index - SUB_BUCKETS) % SUB_BUCKETS)) * 2 ** shift;
  return lower + (2 ** shift - 1) / 2;
}

const BUCKETS = bucketOf(MAX_MICROS) + 1;

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  private total = 0;
  private maxMicros = 0;

  get count(): number {
    return this.total;
  }

  /** Records one latency given in milliseconds (what performance.now() differences are). */
  recordMs(ms: number): void {
    const micros = Math.min(MAX_MICROS, Math.max(1, Math.round(ms * 1000)));
    this.counts[bucketOf(micros)]!++;
    this.total++;
    if (micros > this.maxMicros) this.maxMicros = micros;
  }

  /** The value at quantile q (0..1) in milliseconds; NaN when nothing was recorded. */
  percentileMs(q: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(valueOf(i), this.maxMicros) / 1000;
    }
    return this.maxMicros / 1000;
  }

  /** Adds every value `other` recorded (to pool several runs). */
  add(other: Histogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.total += other.total;
    if (other.maxMicros > this.maxMicros) this.maxMicros = other.maxMicros;
  }

  maxMs(): number {
    return this.maxMicros / 1000;
  }

  reset(): void {
    this.counts.fill(0);
    this.total = 0;
    this.maxMicros = 0;
  }
}
