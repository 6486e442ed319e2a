/**
 * A periodic task that runs only while it has work: wake() arms it (a no-op while armed),
 * and a run that returns false leaves it disarmed until the next wake(). An idle node
 * then has no timer firing every few milliseconds (a dozen idle nodes on two cores cost a
 * tenth of the machine that way). A task that knows it has nothing to do for a while
 * sleeps with wakeAfter() instead of polling each period (a quiet node's wake-ups cost more
 * CPU than its decisions). Two Timeout objects at most, re-armed with refresh().
 */
export class WakeTimer {
  private timeout: NodeJS.Timeout | undefined;
  /** Armed by wakeAfter() for a delay of its own; undefined while not. */
  private later: NodeJS.Timeout | undefined;
  /** When `later` fires (performance.now()). */
  private laterDueMs = 0;
  private armed = false;
  private closed = false;

  constructor(
    private readonly run: () => boolean,
    private readonly periodMs: number,
  ) {}

  /** Runs the task one period from now, unless it is already due within one (a longer wakeAfter() is brought forward). */
  wake(): void {
    if (this.closed || (this.armed && this.later === undefined)) return;
    if (this.later !== undefined && this.laterDueMs - performance.now() <= this.periodMs) return; // due sooner anyway
    this.cancelLater();
    this.armed = true;
    if (this.timeout === undefined) {
      this.timeout = setTimeout(this.fire, this.periodMs);
      this.timeout.unref();
    } else {
      this.timeout.refresh(); // re-activates a timeout that has fired
    }
  }

  /** Runs the task `delayMs` from now, unless it is already armed (then nothing changes). */
  wakeAfter(delayMs: number): void {
    if (this.armed || this.closed) return;
    this.armed = true;
    this.laterDueMs = performance.now() + Math.max(1, delayMs);
    this.later = setTimeout(this.fireLater, Math.max(1, delayMs));
    this.later.unref();
  }

  close(): void {
    this.closed = true;
    this.armed = false;
    this.cancelLater();
    if (this.timeout !== undefined) clearTimeout(this.timeout);
  }

  private cancelLater(): void {
    if (this.later === undefined) return;
    clearTimeout(this.later);
    this.later = undefined;
  }

  private readonly fireLater = (): void => {
    this.later = undefined;
    this.fire();
  };

  private readonly fire = (): void => {
    this.armed = false;
    if (!this.closed && this.run()) this.wake();
  };
}
