/**
 * A share of the event loop for large AllowBatch calls: a bucket of event-loop time that
 * refills at `maxBusyMs` per `windowMs` (at most that much saved up); a large batch runs
 * only while the bucket is not empty, and what it took (its synchronous decisions and its
 * answer's encoding) is taken out afterwards, into debt if need be. Past the share, large
 * batches are refused at once (cheaply, with RESOURCE_EXHAUSTED and no work). Small calls
 * are always served, so a flood of large batches — many connections, answers never read —
 * cannot starve them.
 */
export class BatchBudget {
  private tokensMs: number;
  private lastMs: number;
  /** Large batches under way that run in slices (the HTTP API's): one at a time, so their slices never queue behind each other. */
  running = 0;

  constructor(
    private readonly limits: { windowMs: number; maxBusyMs: number; smallBatchItems: number },
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokensMs = limits.maxBusyMs;
    this.lastMs = now();
  }

  /** Whether a batch of `items` may run now. */
  admit(items: number): boolean {
    if (items <= this.limits.smallBatchItems) return true;
    const nowMs = this.now();
    this.tokensMs = Math.min(this.limits.maxBusyMs, this.tokensMs + ((nowMs - this.lastMs) * this.limits.maxBusyMs) / this.limits.windowMs);
    this.lastMs = nowMs;
    return this.tokensMs > 0;
  }

  /** Event-loop time a large batch just took. */
  spent(ms: number): void {
    this.tokensMs -= ms;
  }
}

export const batchBudgetDefaults = { windowMs: 100, maxBusyMs: 50, smallBatchItems: 100 } as const;
