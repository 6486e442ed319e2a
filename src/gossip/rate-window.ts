/** At most `maxPerSecond` events per one-second window. */
export class RateWindow {
  private windowStartMs = Number.NEGATIVE_INFINITY;
  private count = 0;

  constructor(private readonly maxPerSecond: number) {}

  tryTake(nowMs: number): boolean {
    if (nowMs - this.windowStartMs >= 1000) {
      this.windowStartMs = nowMs;
      this.count = 0;
    }
    if (this.count >= this.maxPerSecond) return false;
    this.count++;
    return true;
  }
}
