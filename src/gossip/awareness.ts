/**
 * Lifeguard local health multiplier: a saturating score in [0, max - 1]. Missed acks, missing
 * nacks, refutations and late timers raise it; successful probes lower it. Our own probe
 * interval and timeouts scale by (score + 1), so a struggling node slows down before it accuses.
 */
export class Awareness {
  private value = 0;

  constructor(private readonly max: number) {}

  get score(): number {
    return this.value;
  }

  apply(delta: number): void {
    this.value = Math.min(this.max - 1, Math.max(0, this.value + delta));
  }

  scale(ms: number): number {
    return ms * (this.value + 1);
  }
}
