import { invalidArgument } from '../common/errors.js';

/**
 * Adaptive limits: a factor in [minFactor, 1] that scales every limit when the protected
 * service struggles. A pure controller — the caller feeds it a load signal and the time —
 * following AIMD, as TCP and Netflix's concurrency-limits do:
 *
 * - overloaded (the signal above `overloadAbove`): multiply the factor by `decreaseBy`,
 *   at most once per `decreaseEveryMs` (a burst of bad samples is one decrease);
 * - healthy (the signal below `healthyBelow`) for `recoverAfterMs` in a row: add
 *   `increaseBy`, then again after each further `recoverAfterMs` of health;
 * - in between (the hysteresis band): hold.
 *
 * The signal is unitless: event-loop delay in ms, a queue length, a latency — whatever the
 * two thresholds are written in.
 */
export interface AimdOptions {
  overloadAbove: number;
  healthyBelow: number;
  decreaseBy: number;
  increaseBy: number;
  minFactor: number;
  decreaseEveryMs: number;
  recoverAfterMs: number;
}

export const aimdDefaults: AimdOptions = {
  overloadAbove: 100,
  healthyBelow: 40,
  decreaseBy: 0.75,
  increaseBy: 0.05,
  minFactor: 0.1,
  decreaseEveryMs: 500,
  recoverAfterMs: 1_000,
};

export function validateAimd(o: AimdOptions): AimdOptions {
  const check = (name: keyof AimdOptions, ok: boolean, what: string): void => {
    if (!ok) throw invalidArgument(`adaptive.${name}`, `${what}, got ${String(o[name])}`);
  };
  for (const name of Object.keys(aimdDefaults) as (keyof AimdOptions)[]) check(name, typeof o[name] === 'number' && Number.isFinite(o[name]), 'must be a finite number');
  check('healthyBelow', o.healthyBelow < o.overloadAbove, 'must be below overloadAbove (the band between them holds the factor)');
  check('decreaseBy', o.decreaseBy > 0 && o.decreaseBy < 1, 'must be between 0 and 1');
  check('increaseBy', o.increaseBy > 0 && o.increaseBy <= 1, 'must be above 0 and at most 1');
  check('minFactor', o.minFactor > 0 && o.minFactor <= 1, 'must be above 0 and at most 1');
  check('decreaseEveryMs', o.decreaseEveryMs >= 0, 'must be >= 0');
  check('recoverAfterMs', o.recoverAfterMs >= 0, 'must be >= 0');
  return o;
}

export class AimdController {
  private current = 1;
  private lastDecreaseMs = -Infinity;
  /** Since when the signal has been healthy without a break (undefined: it is not). */
  private healthySinceMs: number | undefined;

  constructor(private readonly options: AimdOptions) {}

  get factor(): number {
    return this.current;
  }

  /** Feeds one sample of the load signal at `nowMs`; returns the factor. */
  observe(signal: number, nowMs: number): number {
    const o = this.options;
    if (!Number.isFinite(signal)) return this.current;
    if (signal > o.overloadAbove) {
      this.healthySinceMs = undefined;
      if (nowMs - this.lastDecreaseMs >= o.decreaseEveryMs) {
        this.current = Math.max(o.minFactor, this.current * o.decreaseBy);
        this.lastDecreaseMs = nowMs;
      }
    } else if (signal < o.healthyBelow) {
      if (this.healthySinceMs === undefined) this.healthySinceMs = nowMs;
      else if (nowMs - this.healthySinceMs >= o.recoverAfterMs && this.current < 1) {
        this.current = Math.min(1, this.current + o.increaseBy);
        this.healthySinceMs = nowMs;
      }
    } else {
      this.healthySinceMs = undefined;
    }
    return this.current;
  }
}
