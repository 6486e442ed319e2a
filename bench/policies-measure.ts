/**
 * One measurement of the policy paths in a fresh process (forked by bench/policies.ts), so
 * one contender's JIT state never helps or hurts another. System clock, a request made per
 * call, as an application calls it. Prints one JSON line.
 */
import { fileURLToPath } from 'node:url';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { ManualClock } from '../src/common/clock.js';
import { createLimiter } from '../src/limiter/create.js';
import type { Limiter } from '../src/limiter/limiter.js';
import type { RateLimitRequest } from '../src/limiter/types.js';
import { median, shuffled } from './util.js';

export const KEYS = 100_000;
const PASSES = 10;
const ROUNDS = 5;
/** Calls over every key before measuring, for each contender alike: the JIT's later tiers need a few hundred thousand. */
const WARM_PASSES = 5;
const LIMIT = 1_000_000_000;
const WINDOW_MS = 60_000;

export type PolicyContender = 'flexible' | 'allow-one-shape' | 'allow-six-shapes' | 'handle-six-shapes' | 'explicit' | 'resolved' | 'handle-manual-clock' | 'allow-manual-clock';

const names = (): string[] => shuffled(Array.from({ length: KEYS }, (_, i) => `user:${i}`), 42);

/** Six request shapes, from six call sites of an application: what makes the validation's property loads megamorphic. */
function seeSixShapes(limiter: Limiter, keys: readonly string[]): void {
  const shapes: ((key: string) => RateLimitRequest)[] = [
    (key) => ({ key, action: 'warm', limit: LIMIT, windowMs: WINDOW_MS }),
    (key) => ({ key, limit: LIMIT, windowMs: WINDOW_MS }),
    (key) => ({ action: 'warm', key, windowMs: WINDOW_MS, limit: LIMIT }),
    (key) => ({ key, action: 'warm', limit: LIMIT, windowMs: WINDOW_MS, cost: 1 }),
    (key) => ({ key, action: 'warm', limit: LIMIT, windowMs: WINDOW_MS, weight: 1, algorithm: 'gcra' }),
    (key) => ({ key, action: 'warm', limit: LIMIT, windowMs: WINDOW_MS, global: false, burst: LIMIT }),
  ];
  for (let i = 0; i < 200_000; i++) limiter.allow(shapes[i % shapes.length]!(keys[i % keys.length]!));
}

function measureOurs(contender: PolicyContender): number {
  const keys = names();
  const manual = contender === 'handle-manual-clock' || contender === 'allow-manual-clock';
  const limiter = createLimiter({
    initialKeys: 2 * KEYS,
    ...(manual ? { clock: new ManualClock() } : {}),
    ...(contender === 'resolved' ? { policies: { defaults: { api: { limit: LIMIT, window: WINDOW_MS } } } } : {}),
  });
  if (contender === 'allow-six-shapes' || contender === 'handle-six-shapes' || contender === 'handle-manual-clock') seeSixShapes(limiter, keys);
  const handle = limiter.policy({ action: 'api', limit: LIMIT, windowMs: WINDOW_MS });
  // One call site per contender, chosen once: no dispatch inside the measured loop.
  const once: (key: string) => boolean =
    contender === 'handle-six-shapes' || contender === 'handle-manual-clock'
      ? (key) => handle.allow(key).allowed
      : contender === 'resolved'
        ? (key) => limiter.allow({ key, action: 'api' }).allowed
        : (key) => limiter.allow({ key, action: 'api', limit: LIMIT, windowMs: WINDOW_MS }).allowed;
  for (let pass = 0; pass < WARM_PASSES; pass++) for (const key of keys) once(key);
  const rates: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    let allowed = 0;
    const started = process.hrtime.bigint();
    for (let pass = 0; pass < PASSES; pass++) for (let i = 0; i < KEYS; i++) if (once(keys[i]!)) allowed++;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (allowed !== KEYS * PASSES) throw new Error(`bench sanity: ${allowed} allowed`);
    rates.push((KEYS * PASSES) / seconds);
  }
  limiter.close();
  return median(rates);
}

async function measureFlexible(): Promise<number> {
  const limiter = new RateLimiterMemory({ points: LIMIT, duration: WINDOW_MS / 1000 });
  const keys = names();
  for (let pass = 0; pass < WARM_PASSES; pass++) for (const key of keys) await limiter.consume(key);
  const rates: number[] = [];
  const passes = PASSES / 5;
  for (let round = 0; round < ROUNDS; round++) {
    const started = process.hrtime.bigint();
    for (let pass = 0; pass < passes; pass++) for (let i = 0; i < KEYS; i++) await limiter.consume(keys[i]!);
    rates.push((KEYS * passes) / (Number(process.hrtime.bigint() - started) / 1e9));
  }
  return median(rates);
}

async function main(): Promise<void> {
  const contender = process.argv[2] as PolicyContender;
  const perSecond = contender === 'flexible' ? await measureFlexible() : measureOurs(contender);
  console.log(JSON.stringify({ perSecond }));
  process.exit(0); // rate-limiter-flexible leaves a timer per key behind
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
