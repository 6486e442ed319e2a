import type { Cancel, Scheduler } from './scheduler.js';
import { suspicionTimeoutMs } from './scaling.js';

/**
 * One member's suspicion: times out after the Lifeguard timeout, which falls as independent
 * members confirm it (src/gossip/scaling.ts). Unlike swim@0.6, it never restarts.
 */
export class Suspicion {
  private readonly confirmedBy = new Set<string>();
  private readonly startedMs: number;
  private cancelTimer: Cancel;
  private fired = false;

  constructor(
    private readonly scheduler: Scheduler,
    accuser: string,
    private readonly k: number,
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly onTimeout: () => void,
  ) {
    // The first accuser is not a confirmation: our own suspicion may echo back to us.
    this.confirmedBy.add(accuser);
    this.startedMs = scheduler.clock.now();
    this.cancelTimer = scheduler.after(maxMs, () => this.fire());
  }

  get confirmations(): number {
    return this.confirmedBy.size - 1;
  }

  /** Counts a new independent accuser; true when it was news (worth re-gossiping). */
  confirm(accuser: string): boolean {
    if (this.fired || this.confirmations >= this.k || this.confirmedBy.has(accuser)) return false;
    this.confirmedBy.add(accuser);
    const elapsed = this.scheduler.clock.now() - this.startedMs;
    const remaining = suspicionTimeoutMs(this.confirmations, this.k, this.minMs, this.maxMs) - elapsed;
    this.cancelTimer();
    this.cancelTimer = this.scheduler.after(Math.max(0, remaining), () => this.fire());
    return true;
  }

  cancel(): void {
    this.fired = true;
    this.cancelTimer();
  }

  private fire(): void {
    if (this.fired) return;
    this.fired = true;
    this.onTimeout();
  }
}
