/**
 * One limiter measurement in a fresh process (forked by bench/limiter.ts), so the JIT
 * state of one contender never slows or speeds another. Prints one JSON line.
 */
import { fileURLToPath } from 'node:url';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { ManualClock, systemClock, type Clock } from '../src/common/clock.js';
import { LimiterStore } from '../src/limiter/store.js';
import type { Algorithm } from '../src/limiter/types.js';
import { median, shuffled } from './util.js';

export const KEYS = 100_000;
export const PASSES = 20;
export const ROUNDS = 3;

export type Contender = 'flexible' | 'ours' | 'ours-decision' | 'ours-system-clock' | 'ours-calendar' | 'ours-calendar-utc';

function keys(): string[] {
  return shuffled(
    Array.from({ length: KEYS }, (_, i) => `user:${i}`),
    42,
  );
}

function measureOurs(algorithm: Algorithm, allowPath: boolean, contender: Contender): number {
  const clock: Clock = contender === 'ours-system-clock' ? systemClock : new ManualClock();
  const store = new LimiterStore(clock, { initialKeys: KEYS });
  const limit = allowPath ? 1_000_000_000 : 1;
  const names = keys();
  // Calendar contenders: daily windows of Europe/Paris (or UTC) instead of 60 s ones.
  const timeZone = contender === 'ours-calendar' ? 'Europe/Paris' : contender === 'ours-calendar-utc' ? 'UTC' : undefined;
  const window = timeZone === undefined ? { windowMs: 60_000 } : { calendar: 'day' as const, timeZone };
  for (const key of names) store.isAllowed({ key, action: 'api', limit, ...window, algorithm });
  const rates: number[] = [];
  const decision = contender === 'ours-decision';
  for (let round = 0; round < ROUNDS; round++) {
    let allowed = 0;
    const started = process.hrtime.bigint();
    for (let pass = 0; pass < PASSES; pass++) {
      for (let i = 0; i < KEYS; i++) {
        // A fresh request object per call, as an application would pass one.
        const request =
          timeZone === undefined
            ? { key: names[i]!, action: 'api', limit, windowMs: 60_000, algorithm }
            : { key: names[i]!, action: 'api', limit, calendar: 'day' as const, timeZone, algorithm };
        if (decision ? store.allow(request).allowed : store.isAllowed(request)) allowed++;
      }
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (allowed !== (allowPath ? KEYS * PASSES : 0)) throw new Error(`bench sanity: ${allowed} allowed`);
    rates.push((KEYS * PASSES) / seconds);
  }
  return median(rates);
}

async function measureFlexible(allowPath: boolean): Promise<number> {
  const limiter = new RateLimiterMemory({ points: allowPath ? 1_000_000_000 : 1, duration: 60 });
  const names = keys();
  for (const key of names) await limiter.consume(key).catch(() => undefined);
  const rates: number[] = [];
  const passes = PASSES / 4;
  for (let round = 0; round < ROUNDS; round++) {
    let allowed = 0;
    const started = process.hrtime.bigint();
    for (let pass = 0; pass < passes; pass++) {
      for (let i = 0; i < KEYS; i++) {
        try {
          await limiter.consume(names[i]!); // its API: a promise per call, rejected when limited
          allowed++;
        } catch {
          // limited
        }
      }
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (allowed !== (allowPath ? KEYS * passes : 0)) throw new Error('bench sanity: rate-limiter-flexible verdicts off');
    rates.push((KEYS * passes) / seconds);
  }
  return median(rates);
}

async function main(): Promise<void> {
  const [contender, algorithm, path] = process.argv.slice(2) as [Contender, Algorithm, 'allow' | 'reject'];
  const allowPath = path === 'allow';
  const perSecond = contender === 'flexible' ? await measureFlexible(allowPath) : measureOurs(algorithm, allowPath, contender);
  console.log(JSON.stringify({ perSecond }));
  process.exit(0); // rate-limiter-flexible leaves a timer per key behind
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
