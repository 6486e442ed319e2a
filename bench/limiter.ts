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

/** Paired runs per measurement: the machine is shared, so each of ours runs right after the peer's. */
const PAIRS = 3;

function measureOnce(contender: Contender, algorithm: Algorithm, path: 'allow' | 'reject'): number {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'limiter-measure.js');
  const result = spawnSync(process.execPath, [script, contender, algorithm, path], { encoding: 'utf8', timeout: 300_000 });
  if (result.status !== 0) throw new Error(`measurement ${contender} ${algorithm} ${path} failed: ${result.stderr}`);
  return (JSON.parse(result.stdout.trim().split('\n').pop()!) as { perSecond: number }).perSecond;
}

interface Paired {
  peer: number;
  verdict: number;
  decision: number;
  verdictRatio: number;
  decisionRatio: number;
}

/** rate-limiter-flexible, then ours (isAllowed, allow), PAIRS times in fresh processes; medians of rates and of per-pair ratios. */
function measurePaired(algorithm: Algorithm, path: 'allow' | 'reject'): Paired {
  const runs = Array.from({ length: PAIRS }, () => {
    const peer = measureOnce('flexible', algorithm, path);
    const verdict = measureOnce('ours', algorithm, path);
    const decision = measureOnce('ours-decision', algorithm, path);
    return { peer, verdict, decision };
  });
  return {
    peer: median(runs.map((r) => r.peer)),
    verdict: median(runs.map((r) => r.verdict)),
    decision: median(runs.map((r) => r.decision)),
    verdictRatio: median(runs.map((r) => r.verdict / r.peer)),
    decisionRatio: median(runs.map((r) => r.decision / r.peer)),
  };
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
  const rows: string[][] = [];
  for (const path of ['allow', 'reject'] as const) {
    for (const algorithm of ALGORITHMS) {
      log(`limiter: ${algorithm}, ${path} path: rate-limiter-flexible and ringlimit, ${PAIRS} paired runs…`);
      const m = measurePaired(algorithm, path);
      rows.push([algorithm, path, fmtRate(m.peer), fmtRate(m.verdict), `${m.verdictRatio.toFixed(1)}×`, fmtRate(m.decision), `${m.decisionRatio.toFixed(1)}×`]);
    }
  }
  log('limiter: calendar windows (daily, Europe/Paris and UTC) against 60 s windows, isAllowed()…');
  const calendarRows: string[][] = [];
  for (const algorithm of ['fixed-window', 'sliding-window'] as const) {
    const fixed = median(Array.from({ length: PAIRS }, () => measureOnce('ours', algorithm, 'allow')));
    const paris = median(Array.from({ length: PAIRS }, () => measureOnce('ours-calendar', algorithm, 'allow')));
    const utc = median(Array.from({ length: PAIRS }, () => measureOnce('ours-calendar-utc', algorithm, 'allow')));
    calendarRows.push([algorithm, fmtRate(fixed), fmtRate(utc), fmtRate(paris), `${(1e9 / fixed).toFixed(0)} / ${(1e9 / utc).toFixed(0)} / ${(1e9 / paris).toFixed(0)}`]);
  }
  log('limiter: token-bucket isAllowed() with the system clock…');
  const withClock = measureOnce('ours-system-clock', 'token-bucket', 'allow');
  log('limiter: memory at 1M active keys…');
  const memory = await bytesPerKey(1_000_000, log);

  const speedTable = table(
    ['algorithm', 'path', 'rate-limiter-flexible consume()', 'ringlimit isAllowed()', 'ratio', 'ringlimit allow() → Decision', 'ratio'],
    rows,
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
    `Each rate is the median of ${PAIRS} fresh processes, each the median of ${ROUNDS} rounds (ringlimit: ${KEYS * PASSES} decisions per round, with a clock that is not read from the OS; rate-limiter-flexible: ${(KEYS * PASSES) / 4}, awaited per call as its API is used). Each ratio is the median of the ${PAIRS} per-pair ratios, ours run right after the peer's. Requests are object literals made per call, as an application makes them.`,
    `With the system clock read on every call, token-bucket isAllowed() runs at ${fmtRate(withClock)}.`,
    '',
    speedTable,
    '',
    '### Calendar windows (allow path, isAllowed(), same 100k keys)',
    '',
    'A calendar request names its unit and zone (`calendar: \'day\', timeZone`) instead of `windowMs`: the same decision plus an interned lookup and a cached period check.',
    '',
    table(['algorithm', 'windowMs 60 s', 'calendar day UTC', 'calendar day Europe/Paris', 'ns per decision (60 s / UTC / Paris)'], calendarRows),
    '',
    '### Memory (heap + off-heap array buffers, after GC; key strings excluded, both sides)',
    '',
    memTable,
  ].join('\n');
}
