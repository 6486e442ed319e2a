/**
 * ringlimit's Redis store against what a Node.js team uses on Redis today, in the same run on
 * the same redis-server: rate-limiter-flexible's RateLimiterRedis (and a hand-written Lua token
 * bucket). Closed loops at concurrency 1, 64 and 256 over 10,000 users, system clock, every
 * call allowed (so the rejection cache cannot help): decisions per second and p99. Then a
 * hammered blocked key: how many Redis calls each makes for it.
 * Standalone: npx tsc -p tsconfig.bench.json && node dist-bench/bench/redis.js
 */
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { createLimiter } from '../src/limiter/create.js';
import { redisStore } from '../src/redis/redis-store.js';
import { closedLoop, type LoopResult } from './load.js';
import { luaTokenBucketRedis, rateLimiterFlexibleRedis, startRedis, type Contender } from './peers/redis.js';
import { fmtRate, median, table, type Log } from './util.js';

const LIMIT = 1_000_000_000;
const WINDOW_SECONDS = 60;
const CONCURRENCY = [1, 64, 256];
const ROUNDS = 3;
const RUN_MS = 3_000;
const USERS = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

function ringlimitRedis(port: number): Contender & { redisCalls(): number } {
  const client = new Redis({ port, host: '127.0.0.1' });
  const store = redisStore({ client, prefix: `rl${Date.now()}:` });
  const limiter = createLimiter({ store });
  // Two call sites, as an app has (a login route and an API route).
  let turn = 0;
  return {
    name: 'ringlimit redisStore',
    short: 'ringlimit',
    call: (key) => limiter.allow({ key, action: turn++ % 2 === 0 ? 'api' : 'login', limit: LIMIT, windowMs: WINDOW_SECONDS * 1000 }),
    close: async () => {
      await limiter.close();
      client.disconnect();
    },
    redisCalls: () => store.counters.scriptCalls,
  };
}

interface Row {
  concurrency: number;
  results: Map<string, LoopResult[]>;
}

/** Calls to a key refused for the next hour: ringlimit answers from its cache; rate-limiter-flexible asks Redis each time. */
async function hammer(port: number, log: Log): Promise<string[][]> {
  const calls = 20_000;
  const client = new Redis({ port, host: '127.0.0.1' });
  const store = redisStore({ client, prefix: `hammer${Date.now()}:` });
  const limiter = createLimiter({ store });
  const request = { key: 'blocked', action: 'login', limit: 1, windowMs: 3_600_000 };
  await limiter.allow(request);
  await limiter.allow(request);
  const before = store.counters.decisions;
  let t0 = performance.now();
  for (let i = 0; i < calls; i++) await limiter.allow(request);
  const oursMs = performance.now() - t0;
  const ourCalls = store.counters.decisions - before;
  await limiter.close();
  client.disconnect();

  const flexClient = new Redis({ port, host: '127.0.0.1' });
  const flex = new RateLimiterRedis({ storeClient: flexClient, points: 1, duration: 3_600, keyPrefix: `rlfh${Date.now()}` });
  await flex.consume('blocked').catch(() => undefined);
  const commandsBefore = Number(/total_commands_processed:(\d+)/.exec(await flexClient.info('stats'))?.[1] ?? 0);
  t0 = performance.now();
  for (let i = 0; i < calls; i++) await flex.consume('blocked').catch(() => undefined);
  const flexMs = performance.now() - t0;
  const commandsAfter = Number(/total_commands_processed:(\d+)/.exec(await flexClient.info('stats'))?.[1] ?? 0);
  flexClient.disconnect();
  log(`redis: blocked key: ringlimit ${ourCalls} Redis calls for ${calls} refusals; rate-limiter-flexible ${commandsAfter - commandsBefore - 1} Redis commands`);
  return [
    ['ringlimit redisStore', `${ourCalls}`, fmtRate((1000 * calls) / oursMs)],
    ['rate-limiter-flexible + Redis', `${commandsAfter - commandsBefore - 1} commands`, fmtRate((1000 * calls) / flexMs)],
  ];
}

export async function runRedisBench(log: Log): Promise<string> {
  const redis = await startRedis(log);
  if (redis === undefined) return '_Redis store: skipped (needs redis-server)._';
  try {
    const rows: Row[] = [];
    for (const concurrency of CONCURRENCY) {
      const results = new Map<string, LoopResult[]>();
      for (let round = 0; round < ROUNDS; round++) {
        // Alternate the order each round: neither side always runs on a warmer machine.
        const makers = [() => ringlimitRedis(redis.port), () => rateLimiterFlexibleRedis(redis.port, LIMIT, WINDOW_SECONDS), () => luaTokenBucketRedis(redis.port, LIMIT, WINDOW_SECONDS)];
        if (round % 2 === 1) makers.reverse();
        for (const make of makers) {
          const contender = make();
          await closedLoop(contender.call, USERS, concurrency, 300); // warm-up: connection, script load, JIT
          const r = await closedLoop(contender.call, USERS, concurrency, RUN_MS);
          await contender.close();
          results.set(contender.name, [...(results.get(contender.name) ?? []), r]);
          log(`redis: c${concurrency} round ${round + 1}/${ROUNDS} ${contender.name}: ${fmtRate(r.rate)} decisions/s, p99 ${r.p99Ms.toFixed(2)} ms`);
        }
      }
      rows.push({ concurrency, results });
    }
    const blocked = await hammer(redis.port, log);
    const cells = (rs: LoopResult[] | undefined): [number, number] => [median((rs ?? []).map((r) => r.rate)), median((rs ?? []).map((r) => r.p99Ms))];
    const body = rows.map(({ concurrency, results }) => {
      const [ours, oursP99] = cells(results.get('ringlimit redisStore'));
      const [flex, flexP99] = cells(results.get('rate-limiter-flexible + Redis'));
      const [lua, luaP99] = cells(results.get('Lua token bucket + Redis (ioredis)'));
      return [
        `${concurrency}`,
        `${fmtRate(ours)} (p99 ${oursP99.toFixed(2)} ms)`,
        `${fmtRate(flex)} (p99 ${flexP99.toFixed(2)} ms)`,
        `${fmtRate(lua)} (p99 ${luaP99.toFixed(2)} ms)`,
        `${(ours / flex).toFixed(2)}×, p99 ${(oursP99 / flexP99).toFixed(2)}×`,
      ];
    });
    return [
      '### Redis store (ringlimit/redis)',
      '',
      `One redis-server (no persistence) on 127.0.0.1, shared by every contender; each with its own ioredis connection. Closed loops of ${RUN_MS / 1000} s after a 0.3 s warm-up, ${ROUNDS} rounds in alternating order (medians shown), 10,000 users, every call allowed (limit ${LIMIT.toLocaleString('en')} per ${WINDOW_SECONDS} s): ringlimit from two call sites (actions), system clock.`,
      '',
      table(['concurrency', 'ringlimit redisStore', 'rate-limiter-flexible RateLimiterRedis', 'Lua token bucket (EVALSHA per call)', 'ringlimit ÷ rate-limiter-flexible'], body),
      '',
      'A blocked key hammered 20,000 times (limit 1 per hour, already used): Redis calls made for it, and refusals per second.',
      '',
      table(['', 'Redis calls', 'refusals/s'], blocked),
    ].join('\n');
  } finally {
    await redis.stop();
  }
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  runRedisBench((l) => console.log(`[bench redis] ${l}`)).then(
    (section) => {
      console.log(`\n${section}`);
      process.exit(0);
    },
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
