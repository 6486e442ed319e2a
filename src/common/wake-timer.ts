/**
 * A periodic task that runs only while it has work: wake() arms it (a no-op while armed),
 * and a run that returns false leaves it disarmed until the next wake(). An idle node
 * then has no timer firing every few milliseconds (a dozen idle nodes on two cores cost a
 * tenth of the machine that way). One Timeout object, re-armed with refresh().
 */
export class WakeTimer {
  private timeout: NodeJS.Timeout | undefined;
  private armed = false;
  private closed = false;

  constructor(
    private readonly run: () => boolean,
    private readonly periodMs: number,
  ) {}

  /** Runs the task one period from now, unless it is already due. */
  wake(): void {
    if (this.armed || this.closed) return;
    this.armed = true;
    if (this.timeout === undefined) {
      this.timeout = setTimeout(this.fire, this.periodMs);
      this.timeout.unref();
    } else {
      this.timeout.refresh(); // re-activates a timeout that has fired
    }
  }

  close(): void {
    this.closed = true;
    this.armed = false;
    if (this.timeout !== undefined) clearTimeout(this.timeout);
  }

  private readonly fire = (): void => {
    this.armed = false;
    if (!this.closed && this.run()) this.wake();
  };
}
