import { ManualClock } from '../../src/common/clock.js';
import { LimiterStore } from '../../src/limiter/store.js';
import type { Algorithm } from '../../src/limiter/types.js';

/** A realistic epoch-sized start time with a fraction, so float precision is exercised. */
export const T0 = 1_763_800_000_123.25;

export function newStore(options: ConstructorParameters<typeof LimiterStore>[1] = {}) {
  const clock = new ManualClock(T0);
  const store = new LimiterStore(clock, options);
  return { clock, store };
}

export const ALL: readonly Algorithm[] = ['token-bucket', 'gcra', 'sliding-window', 'fixed-window'];
