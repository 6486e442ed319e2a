/**
 * The key sets of the cluster bench, deterministic (seededRng): the order in which a load
 * generator takes keys. Uniform and Zipf draw from the same 100k keys (`user:0` …
 * `user:99999`), so both touch state the warm-up created; the hot key is one key.
 */
import { seededRng } from '../src/common/rng.js';

export const KEYS = 100_000;
/** Draws per key set: the generators cycle through them. */
const DRAWS = 4 * KEYS;
export const ZIPF_S = 1.0;

export interface KeySet {
  /** Short name for tables and logs. */
  name: string;
  keys: readonly string[];
}

/** Every key equally likely. */
export function uniformKeys(): KeySet {
  const rng = seededRng(42);
  return { name: '100k uniform keys', keys: Array.from({ length: DRAWS }, () => `user:${rng.int(KEYS)}`) };
}

/**
 * Rank r (1-based) drawn with probability proportional to 1 / r^s, by inverse CDF (binary
 * search over the cumulative weights). With s = 1 over 100k keys the top key takes 8.3 %
 * of the draws and the top 100 about 43 %. Ranks map to the same key names as uniform.
 */
export function zipfKeys(s = ZIPF_S): KeySet {
  const cumulative = new Float64Array(KEYS);
  let sum = 0;
  for (let r = 1; r <= KEYS; r++) {
    sum += 1 / r ** s;
    cumulative[r - 1] = sum;
  }
  const rng = seededRng(43);
  const keys = Array.from({ length: DRAWS }, () => {
    const u = rng.next() * sum;
    let lo = 0;
    let hi = KEYS - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return `user:${lo}`;
  });
  return { name: `Zipf (s = ${s.toFixed(1)}) over 100k keys`, keys };
}

/** The first of `hot:0`, `hot:1`, … that `accept` takes (e.g. one not owned by the node asked). */
export function hotKey(accept: (key: string) => boolean): KeySet {
  for (let i = 0; i < 10_000; i++) {
    const key = `hot:${i}`;
    if (accept(key)) return { name: 'one hot key', keys: [key] };
  }
  throw new Error('no hot key candidate was accepted among 10,000');
}

/** Share of draws that went to the most frequent key: a check on the Zipf set, for the report. */
export function topKeyShare(set: KeySet): number {
  const counts = new Map<string, number>();
  let best = 0;
  for (const key of set.keys) {
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    if (n > best) best = n;
  }
  return best / set.keys.length;
}
