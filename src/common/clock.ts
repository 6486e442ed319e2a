import { performance } from 'node:perf_hooks';

/**
 * Time seam. `now()` is monotonic milliseconds with sub-millisecond resolution.
 * The system clock is anchored at the process's wall-clock start, so values read
 * like epoch milliseconds (handy for reset times) but never go backwards.
 */
export interface Clock {
  now(): number;
}

const origin = performance.timeOrigin;

export const systemClock: Clock = {
  now: () => origin + performance.now(),
};

/** A clock that moves only when told to. For tests and deterministic replays. */
export class ManualClock implements Clock {
  private current: number;

  constructor(startMs = 1_700_000_000_000) {
    this.current = startMs;
  }

  now(): number {
    return this.current;
  }

  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`ManualClock.advance: ms must be >= 0, got ${ms}`);
    this.current += ms;
  }

  set(ms: number): void {
    if (ms < this.current) throw new RangeError('ManualClock.set: time cannot go backwards');
    this.current = ms;
  }
}

/** A clock shifted by a fixed offset: how tests and the chaos harness inject skew. */
export class OffsetClock implements Clock {
  constructor(
    private readonly base: Clock,
    public offsetMs: number,
  ) {}

  now(): number {
    return this.base.now() + this.offsetMs;
  }
}
