/**
 * Requests per key over the current period, for the keys a member forwards: which keys are
 * busy enough for a lease. Bounded by `maxKeys` keys per period (past it, a key is not
 * counted until the next period); reset every `periodMs` by its owner's sweep.
 */
export class DemandMeter {
  readonly periodMs = 1_000;
  private readonly counts = new Map<string, Map<string, number>>();
  private keys = 0;

  constructor(private readonly maxKeys: number) {}

  get size(): number {
    return this.keys;
  }

  /** Counts one request for (action, key); its count this period, or 0 when it could not be counted. */
  count(action: string, key: string): number {
    let keys = this.counts.get(action);
    const seen = keys?.get(key);
    if (seen !== undefined) {
      keys!.set(key, seen + 1);
      return seen + 1;
    }
    if (this.keys >= this.maxKeys) return 0;
    if (keys === undefined) this.counts.set(action, (keys = new Map()));
    keys.set(key, 1);
    this.keys++;
    return 1;
  }

  /** (action, key)'s requests this period, per s (as if the period were over). */
  ratePerSec(action: string, key: string): number {
    return ((this.counts.get(action)?.get(key) ?? 0) * 1000) / this.periodMs;
  }

  reset(): void {
    this.counts.clear();
    this.keys = 0;
  }
}
