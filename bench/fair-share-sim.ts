/**
 * Weighted fair share in simulated time (ManualClock, 1 ms steps, one limiter): capacity
 * 2,000/s; heavy users of weights 1, 2, 5 and 10 asking 3,000/s each; two light users
 * (weight 5) asking 40/s, below any share. Admissions counted per 10 s window after 2 s of
 * settling. The run the test checks (test/limiter/fair-share.test.ts) and the bench reports.
 */
import { ManualClock } from '../src/common/clock.js';
import { createLimiter } from '../src/limiter/create.js';

export const FAIR_SHARE_CAPACITY_PER_SECOND = 2_000;
export const FAIR_SHARE_WINDOW_MS = 10_000;
export const FAIR_SHARE_USERS = [
  { key: 'heavy-1', group: 'w1', weight: 1, perMs: 3 },
  { key: 'heavy-2', group: 'w2', weight: 2, perMs: 3 },
  { key: 'heavy-5', group: 'w5', weight: 5, perMs: 3 },
  { key: 'heavy-10', group: 'w10', weight: 10, perMs: 3 },
  { key: 'light-a', group: 'w5', weight: 5, perMs: 0.04 },
  { key: 'light-b', group: 'w5', weight: 5, perMs: 0.04 },
] as const;

/** Admitted per user (in FAIR_SHARE_USERS order), for each of `windows` windows. */
export function simulateFairShare(windows: number): number[][] {
  const clock = new ManualClock(1_000_000);
  const limiter = createLimiter({
    clock,
    policies: {
      defaults: { search: { limit: 100_000, window: '1s', algorithm: 'sliding-window' } },
      groups: { w1: { weight: 1 }, w2: { weight: 2 }, w5: { weight: 5 }, w10: { weight: 10 } },
      shared: { search: { limit: FAIR_SHARE_CAPACITY_PER_SECOND, window: '1s' } },
    },
  });
  try {
    const users = FAIR_SHARE_USERS;
    const owed = users.map(() => 0);
    const out: number[][] = [];
    let admitted = users.map(() => 0);
    const settleMs = 2_000;
    for (let ms = 0; ms < settleMs + windows * FAIR_SHARE_WINDOW_MS; ms++) {
      clock.advance(1);
      users.forEach((u, i) => {
        owed[i]! += u.perMs;
        while (owed[i]! >= 1) {
          owed[i]! -= 1;
          if (limiter.allow({ key: u.key, action: 'search', group: u.group }).allowed && ms >= settleMs) admitted[i]!++;
        }
      });
      if (ms >= settleMs && (ms - settleMs) % FAIR_SHARE_WINDOW_MS === FAIR_SHARE_WINDOW_MS - 1) {
        out.push(admitted);
        admitted = users.map(() => 0);
      }
    }
    return out;
  } finally {
    limiter.close();
  }
}
