/**
 * A closed loop that runs until stopped and meters itself: decisions per second (one
 * sample per wall-clock second), errors, and, per key, how many calls were allowed — so a
 * run through a membership change shows its dip second by second and any admission past
 * a key's limit.
 */
import type { Decision } from '../src/limiter/types.js';

export type DecisionCall = (key: string) => Promise<Decision>;

export interface MeteredRun {
  /** Completed calls in each whole second since start (answered or failed). */
  perSecond: number[];
  errors: number;
  /** Allowed calls past each key's limit, summed over keys. */
  overAdmitted: number;
  /** Allowed calls in all. */
  allowed: number;
  /** Keys that got at least `limit` allowed calls (their limit was reached). */
  keysAtLimit: number;
  firstError: string | undefined;
}

export class MeteredLoop {
  private readonly allowedByKey: Uint32Array;
  private completed = 0;
  private sampledAt = 0;
  private readonly perSecond: number[] = [];
  private errors = 0;
  private firstError: string | undefined;
  private stopped = false;
  private readonly workers: Promise<void>[];
  private readonly sampler: NodeJS.Timeout;
  private readonly startedAt = performance.now();

  constructor(
    private readonly call: DecisionCall,
    private readonly keys: readonly string[],
    private readonly limit: number,
    concurrency: number,
  ) {
    this.allowedByKey = new Uint32Array(keys.length);
    let next = 0;
    this.workers = Array.from({ length: concurrency }, async () => {
      while (!this.stopped) {
        const index = next++ % this.keys.length;
        try {
          const decision = await this.call(this.keys[index]!);
          if (decision.allowed) this.allowedByKey[index]!++;
        } catch (error) {
          this.errors++;
          this.firstError ??= error instanceof Error ? error.message : String(error);
        }
        this.completed++;
      }
    });
    // A timer per second, not per call: it samples the counter the workers bump.
    this.sampler = setInterval(() => this.sample(), 1_000);
  }

  /** Seconds sampled so far. */
  get seconds(): number {
    return this.perSecond.length;
  }

  /** The rate of the last `n` whole seconds, per second each. */
  last(n: number): number[] {
    return this.perSecond.slice(-n);
  }

  /** Resolves once `n` more whole seconds have been sampled. */
  async waitSeconds(n: number): Promise<void> {
    const target = this.perSecond.length + n;
    while (this.perSecond.length < target) await new Promise((r) => setTimeout(r, 50));
  }

  async stop(): Promise<MeteredRun> {
    this.stopped = true;
    clearInterval(this.sampler);
    await Promise.all(this.workers);
    let over = 0;
    let allowed = 0;
    let atLimit = 0;
    for (const n of this.allowedByKey) {
      allowed += n;
      if (n > this.limit) over += n - this.limit;
      if (n >= this.limit) atLimit++;
    }
    return { perSecond: [...this.perSecond], errors: this.errors, overAdmitted: over, allowed, keysAtLimit: atLimit, firstError: this.firstError };
  }

  /** A second sampled late (a busy event loop) is scaled to a whole second. */
  private sample(): void {
    const now = performance.now();
    const elapsedMs = now - this.startedAt - this.sampledAt;
    this.sampledAt = now - this.startedAt;
    this.perSecond.push(Math.round((this.completed * 1000) / Math.max(elapsedMs, 1)));
    this.completed = 0;
  }
}

/** How a run's seconds compare with a steady rate: the worst second, and seconds under 50 % and 80 %. */
export function dip(seconds: readonly number[], steady: number): { worst: number; worstShare: number; below50: number; below80: number } {
  const worst = Math.min(...seconds);
  return {
    worst,
    worstShare: worst / steady,
    below50: seconds.filter((s) => s < 0.5 * steady).length,
    below80: seconds.filter((s) => s < 0.8 * steady).length,
  };
}
