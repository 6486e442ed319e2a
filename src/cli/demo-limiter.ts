import { systemClock } from '../common/clock.js';
import { createLimiter } from '../limiter/create.js';
import type { Algorithm } from '../limiter/types.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A short live demo of the local limiter: three users of different weights hammer one
 * action far above their limit for a few seconds; each second we print what each was
 * allowed against what its weighted limit says it should get.
 */
export async function runLimiterDemo(args: string[]): Promise<number> {
  const seconds = Number(args[0] ?? 3);
  if (!(seconds >= 1 && seconds <= 60)) throw new Error('demo: duration must be 1..60 seconds');
  const limiter = createLimiter();
  const users = [
    { key: 'free-user', weight: 1 },
    { key: 'pro-user', weight: 3 },
    { key: 'partner', weight: 10 },
  ];
  const limit = 20;
  const windowMs = 1000;
  const algorithm: Algorithm = 'fixed-window';
  const callsPerTick = 25; // per user, every 5 ms: ~5,000 calls/s each
  console.log(`ringlimit demo — limit ${limit}/s per user × weight, ${algorithm}, ~${callsPerTick * 200} calls/s per user\n`);
  console.log('second  ' + users.map((u) => `${u.key} (w=${u.weight})`.padEnd(24)).join(''));
  try {
    // Measure whole windows: start on the clock's next window boundary.
    await sleep(windowMs - (systemClock.now() % windowMs));
    for (let second = 1; second <= seconds; second++) {
      const allowed = users.map(() => 0);
      const attempted = users.map(() => 0);
      const end = (Math.floor(systemClock.now() / windowMs) + 1) * windowMs;
      while (systemClock.now() < end) {
        users.forEach((u, i) => {
          for (let c = 0; c < callsPerTick && systemClock.now() < end; c++) {
            attempted[i]!++;
            if (limiter.isAllowed({ key: u.key, action: 'api', limit, windowMs, weight: u.weight, algorithm })) allowed[i]!++;
          }
        });
        await sleep(Math.min(5, Math.max(0, end - systemClock.now())));
      }
      const cells = users.map((u, i) => `${allowed[i]} of ${attempted[i]} (limit ${limit * u.weight})`.padEnd(24));
      console.log(`${String(second).padStart(6)}  ${cells.join('')}`);
    }
    console.log('\nthrottling instead of rejecting: 5 calls through acquire() at 10/s, burst 1');
    const started = performance.now();
    for (let i = 0; i < 5; i++) {
      const r = await limiter.acquire({ key: 'batch-job', limit: 10, windowMs: 1000, burst: 1 }, { maxWaitMs: 2000 });
      console.log(`  call ${i + 1}: ${r.allowed ? 'ran' : 'rejected'} at +${Math.round(performance.now() - started)} ms (waited ${Math.round(r.waitMs)} ms)`);
    }
    const s = limiter.stats();
    console.log(`\nstats: ${s.decisions} decisions, ${s.allowed} allowed, ${s.rejected} rejected, ${s.keys} keys held`);
  } finally {
    limiter.close();
  }
  return 0;
}
