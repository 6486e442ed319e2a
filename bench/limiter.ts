/**
 * The local decision vs rate-limiter-flexible's RateLimiterMemory, same process, same
 * keys: 100k distinct keys in random order, one thread; allow and reject paths; and
 * memory per active key at 1M keys.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { ManualClock } from '../src/common/clock.js';
import { LimiterStore } from '../src/limiter/store.js';
import type { Algorithm } from '../src/limiter/types.js';
import { KEYS, PASSES, ROUNDS, type Contender } from './limiter-measure.js';
import { fmtRate, gc, median, memoryInUse, table, type Log } from './util.js';

const ALGORITHMS: Algorithm[] = ['token-bucket', 'gcra', 'sliding-window', 'fixed-window'];

interface Row {
  name: string;
  path: 'allow' | 'reject';
  perSecond: number;
}

/** Processes per measurement: the JIT and the machine vary between processes more than within one. */
const PROCESSES = 3;

function measure(contender: Contender, algorithm: Algorithm, path: 'allow' | 'reject'): number {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'limiter-measure.js');
  const rates: number[] = [];
  for (let i = 0; i < PROCESSES; i++) {
    const result = spawnSync(process.execPath, [script, contender, algorithm, path], { encoding: 'utf8', timeout: 300_000 });
    if (result.status !== 0) throw new Error(`measurement ${contender} ${algorithm} ${path} failed: ${result.stderr}`);
    rates.push((JSON.parse(result.stdout.trim().split('\n').pop()!) as { perSecond: number }).perSecond);
  }
  return median(rates);
}

async function bytesPerKey(count: number, log: Log): Promise<{ ours: number; flexible: number }> {
  const keys = Array.from({ length: count }, (_, i) => `user:${i}`);
  gc();
  let before = memoryInUse();
  let store: LimiterStore | undefined = new LimiterStore(new ManualClock(), { maxKeys: count, initialKeys: 1024 });
  for (let i = 0; i < count; i++) store.isAllowed({ key: keys[i]!, action: 'api', limit: 10, windowMs: 60_000 });
  gc();
  const ours = (memoryInUse() - before) / store.keyCount;
  if (store.keyCount !== count) throw new Error('bench sanity: keys missing');
  store = undefined;
  log(`  ringlimit: ${ours.toFixed(1)} bytes/key at ${count} keys`);

  gc();
  before = memoryInUse();
  let flexible: RateLimiterMemory | undefined = new RateLimiterMemory({ points: 10, duration: 60 });
  for (let i = 0; i < count; i++) {
    await flexible.consume(keys[i]!);
    if (i % 200_000 === 0) log(`  rate-limiter-flexible: ${i} keys inserted`);
  }
  gc();
  const theirs = (memoryInUse() - before) / count;
  log(`  rate-limiter-flexible: ${theirs.toFixed(1)} bytes/key at ${count} keys`);
  flexible = undefined; // its per-key timers keep the process alive: run.ts exits explicitly
  void flexible;
  return { ours, flexible: theirs };
}

export async function runLimiterBench(log: Log): Promise<string> {
  const rows: Row[] = [];
  for (const path of ['allow', 'reject'] as const) {
    log(`limiter: rate-limiter-flexible consume(), ${path} path…`);
    rows.push({ name: 'rate-limiter-flexible RateLimiterMemory.consume()', path, perSecond: measure('flexible', 'token-bucket', path) });
    for (const algorithm of ALGORITHMS) {
      log(`limiter: ringlimit ${algorithm}, ${path} path…`);
      rows.push({ name: `ringlimit ${algorithm} isAllowed()`, path, perSecond: measure('ours', algorithm, path) });
      rows.push({ name: `ringlimit ${algorithm} allow() → Decision`, path, perSecond: measure('ours-decision', algorithm, path) });
    }
  }
  log('limiter: token-bucket isAllowed() with the system clock…');
  const withClock = measure('ours-system-clock', 'token-bucket', 'allow');
  log('limiter: memory at 1M active keys…');
  const memory = await bytesPerKey(1_000_000, log);

  const flexibleRate = (path: string) => rows.find((r) => r.path === path && r.name.startsWith('rate-limiter'))!.perSecond;
  const speedTable = table(
    ['limiter', 'path', 'decisions/s', 'vs rate-limiter-flexible'],
    rows.map((r) => [r.name, r.path, fmtRate(r.perSecond), `${(r.perSecond / flexibleRate(r.path)).toFixed(1)}×`]),
  );
  const memTable = table(
    ['limiter', 'bytes per active key (1M keys)', 'ratio'],
    [
      ['ringlimit', memory.ours.toFixed(1), `${(memory.flexible / memory.ours).toFixed(1)}× less`],
      ['rate-limiter-flexible', memory.flexible.toFixed(1), '1.0×'],
    ],
  );
  return [
    '### Local decision (one thread, 100k distinct keys in random order)',
    '',
    `Each figure is the median over ${PROCESSES} fresh processes of the median of ${ROUNDS} rounds (ringlimit: ${KEYS * PASSES} decisions per round, with a clock that is not read from the OS; rate-limiter-flexible: ${(KEYS * PASSES) / 4}, awaited per call as its API is used). Requests are object literals made per call, as an application makes them.`,
    `With the system clock read on every call, token-bucket isAllowed() runs at ${fmtRate(withClock)}.`,
    '',
    speedTable,
    '',
    '### Memory (heap + off-heap array buffers, after GC; key strings excluded, both sides)',
    '',
    memTable,
  ].join('\n');
}
