import { execFile } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import express from 'express';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { RingLimitError } from '../../src/common/errors.js';
import { createLimiter } from '../../src/limiter/create.js';
import type { RemoteLimiter } from '../../src/limiter/remote-limiter.js';
import { rateLimit } from '../../src/middleware/express.js';
import { createStoreLimiterMetrics } from '../../src/node/ops/metrics.js';
import { RedisStore, redisStore } from '../../src/redis/redis-store.js';
import { RedisProcess } from './redis-server.js';

const run = promisify(execFile);
const HAMMER = fileURLToPath(new URL('./fixtures/hammer.mjs', import.meta.url));

let server: RedisProcess;
let client: Redis;
const cleanups: (() => Promise<void> | void)[] = [];
let prefixCount = 0;

beforeAll(async () => {
  server = await RedisProcess.start();
  client = new Redis({ port: server.port, host: '127.0.0.1' });
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  client.disconnect();
  await server.stop();
});

/** A limiter on the shared server, with keys of its own. */
function limiterOn(options: Partial<Parameters<typeof redisStore>[0]> = {}, init: Partial<Parameters<typeof createLimiter>[0]> = {}): { limiter: RemoteLimiter; store: RedisStore; prefix: string } {
  const prefix = `t${prefixCount++}:`;
  const store = redisStore({ client, prefix, ...options });
  const limiter = createLimiter({ store, ...init });
  cleanups.push(() => limiter.close());
  return { limiter, store, prefix };
}

async function keysUnder(prefix: string): Promise<string[]> {
  return client.keys(`${prefix}*`);
}

describe('createLimiter({ store: redisStore({ client }) }) on a real redis-server', () => {
  it('concurrent decisions on one key admit exactly the limit; those of one turn share a script call', async () => {
    const { limiter, store } = limiterOn();
    const decisions = await Promise.all(Array.from({ length: 25 }, () => limiter.allow({ key: 'u1', action: 'login', limit: 10, windowMs: 60_000 })));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(10);
    // The first goes at once (nothing was in flight), the other 24 together.
    expect(store.counters.scriptCalls).toBe(2);
    const refused = decisions.find((d) => !d.allowed)!;
    expect(refused.remaining).toBe(0);
    expect(refused.retryAfterMs).toBeGreaterThan(5_000); // a token every 6 s
    expect(refused.retryAfterMs).toBeLessThanOrEqual(6_000);
  });

  it('processes deciding on one key at once admit exactly the limit between them', async () => {
    const key = `shared-${Date.now()}`;
    const outputs = await Promise.all(
      Array.from({ length: 4 }, () => run(process.execPath, [HAMMER, String(server.port), key, '450', '16'], { timeout: 60_000 })),
    );
    const counts = outputs.map((o) => JSON.parse(o.stdout) as { allowed: number; storeCalls: number; cachedRejections: number });
    // 1,800 attempts on a bucket of 1,000 that refills 1,000 a day: exactly 1,000 in a few seconds.
    expect(counts.reduce((sum, c) => sum + c.allowed, 0)).toBe(1000);
    // Once refused, a process asks Redis no more until the retry time (about 86 s away).
    expect(counts.reduce((sum, c) => sum + c.cachedRejections, 0)).toBeGreaterThan(600);
  }, 90_000);

  it('keys expire with their window (plus the grace), on Redis\'s clock', async () => {
    const { limiter, prefix } = limiterOn({ freshKeyGraceMs: 0 });
    await limiter.allow({ key: 'e', limit: 5, windowMs: 300 });
    const [key] = await keysUnder(prefix);
    const ttl = await client.pttl(key!);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(61); // one token of five per 300 ms: fresh again in 60 ms
    await limiter.allow({ key: 'w', limit: 5, windowMs: 300, algorithm: 'fixed-window' });
    const deadline = Date.now() + 3_000;
    while ((await keysUnder(prefix)).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await keysUnder(prefix)).toEqual([]);
  });

  it('callers whose clocks disagree by hours still share one exact count: Redis\'s clock decides', async () => {
    const prefix = `skew${prefixCount++}:`;
    const ahead = new ManualClock(Date.now() + 3_600_000);
    const behind = new ManualClock(Date.now() - 3_600_000);
    const limiters = [ahead, behind].map((clock) => createLimiter({ store: redisStore({ client, prefix }), clock, maxCachedRejections: 0 }));
    cleanups.push(async () => {
      for (const l of limiters) await l.close();
    });
    const request = { key: 'skewed', limit: 6, windowMs: 60_000, algorithm: 'sliding-window' as const };
    let allowed = 0;
    for (let i = 0; i < 20; i++) if ((await limiters[i % 2]!.allow(request)).allowed) allowed++;
    expect(allowed).toBe(6);
    // Reset times come back on each caller's own clock.
    for (const [i, clock] of [ahead, behind].entries()) {
      const d = await limiters[i]!.allow(request);
      expect(d.resetAtMs - clock.now()).toBeGreaterThan(0);
      expect(d.resetAtMs - clock.now()).toBeLessThanOrEqual(120_000);
    }
  });

  it('a refused key is answered from the cache until its exact retry time, with no Redis call', async () => {
    const clock = new ManualClock(1_763_800_000_000);
    const { limiter, store } = limiterOn({ clock }, { clock });
    const request = { key: 'blocked', limit: 2, windowMs: 10_000, algorithm: 'gcra' as const };
    expect((await limiter.allow(request)).allowed).toBe(true);
    expect((await limiter.allow(request)).allowed).toBe(true);
    const refused = await limiter.allow(request);
    expect(refused.allowed).toBe(false);
    const callsBefore = store.counters.decisions;
    for (let i = 0; i < 1_000; i++) expect((await limiter.allow(request)).allowed).toBe(false);
    expect(store.counters.decisions).toBe(callsBefore);
    expect(limiter.stats().cachedRejections).toBe(1_000);
    // A cheaper request is not answered from the cache.
    await limiter.allow({ ...request, cost: 0 });
    expect(store.counters.decisions).toBe(callsBefore + 1);
    // At the retry time, exactly: allowed by Redis.
    clock.advance(refused.retryAfterMs);
    expect((await limiter.allow(request)).allowed).toBe(true);
    expect(store.counters.decisions).toBe(callsBefore + 2);
    // Refused again, from Redis then from the cache; a request with other limits is not answered from
    // the cache (asked before the retry time above, it would have taken a unit: GCRA keeps the units
    // consumed across a change of limit, docs/request-shape.md).
    expect((await limiter.allow(request)).allowed).toBe(false);
    expect((await limiter.allow(request)).allowed).toBe(false);
    expect(store.counters.decisions).toBe(callsBefore + 3);
    await limiter.allow({ ...request, limit: 3 });
    expect(store.counters.decisions).toBe(callsBefore + 4);
  });

  it('policies declared once decide on Redis too, and a change of limits drops cached refusals', async () => {
    const { limiter } = limiterOn({}, { policies: { defaults: { search: { limit: 3, window: '1d', algorithm: 'fixed-window' } } } });
    const results = [];
    for (let i = 0; i < 5; i++) results.push((await limiter.allow({ key: 'p', action: 'search' })).allowed);
    expect(results).toEqual([true, true, true, false, false]);
    limiter.setPolicies({ defaults: { search: { limit: 5, window: '1d', algorithm: 'fixed-window' } } });
    expect((await limiter.allow({ key: 'p', action: 'search' })).allowed).toBe(true);
  });

  it('reserve and acquire queue on Redis: a caller waits for its slot', async () => {
    const { limiter } = limiterOn();
    const request = { key: 'q', limit: 10, windowMs: 1_000 }; // a token every 100 ms
    for (let i = 0; i < 10; i++) await limiter.allow(request);
    const started = Date.now();
    const granted = await limiter.acquire(request, { maxWaitMs: 1_000 });
    expect(granted.allowed).toBe(true);
    expect(granted.waitMs).toBeGreaterThan(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(Math.floor(granted.waitMs) - 5);
    const tooLong = await limiter.reserve(request, { maxWaitMs: 10 });
    expect(tooLong.allowed).toBe(false);
  });

  it('bad requests and options are refused with clear errors and write nothing', async () => {
    const { limiter, prefix } = limiterOn();
    await expect(limiter.allow({ key: '', limit: 5, windowMs: 1_000 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'key' });
    await expect(limiter.allow({ key: 'k', limit: -1, windowMs: 1_000 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'limit' });
    await expect(limiter.reserve({ key: 'k', limit: 1, windowMs: 1_000 }, { maxWaitMs: -5 })).rejects.toMatchObject({ field: 'maxWaitMs' });
    expect(await keysUnder(prefix)).toEqual([]);
    expect(() => redisStore({ client: {} as never })).toThrow(/client/);
    expect(() => redisStore({ client, prefix: 'a{b}' })).toThrow(/prefix/);
    expect(() => redisStore({ client, timeoutMs: 0 })).toThrow(/timeoutMs/);
    expect(() => createLimiter({ store: {} as never })).toThrow(/store/);
    expect(() => createLimiter({ store: redisStore({ client }), whenUnavailable: 'maybe' as never })).toThrow(/whenUnavailable/);
  });

  it('a key holding something else (written by another program) is read as fresh, never as a crash', async () => {
    const { limiter, store } = limiterOn();
    for (const junk of ['garbage', '0|1|2', '0|nan|1|2', '9|1|2|3', '0|inf|1|1']) {
      await client.set(store.keyOf('default', 'junk'), junk);
      const d = await limiter.allow({ key: 'junk', limit: 4, windowMs: 60_000 });
      expect(d).toMatchObject({ allowed: true, remaining: 3 });
    }
  });

  it('exposes Prometheus metrics: decisions, cached refusals, store calls, sampled latency', async () => {
    const { limiter } = limiterOn();
    const request = { key: 'm', limit: 100, windowMs: 86_400_000 };
    for (let i = 0; i < 200; i++) await limiter.allow(request);
    const text = await createStoreLimiterMetrics(limiter).metrics();
    expect(text).toContain('ringlimit_decisions_total{result="allowed"} 100');
    expect(text).toContain('ringlimit_decisions_total{result="rejected"} 100');
    expect(text).toContain('ringlimit_store_cached_rejections_total 99');
    expect(text).toContain('ringlimit_store_decisions_sent_total 101');
    expect(text).toMatch(/ringlimit_decision_duration_seconds_count\{path="store"\} [1-9]/);
    expect(text).toContain('ringlimit_store_skipped 0');
  });

  it('the Express middleware limits on Redis', async () => {
    const { limiter } = limiterOn();
    const app = express();
    app.use(rateLimit({ limiter, limit: 3, windowMs: 60_000, action: 'http' }));
    app.get('/', (_req, res) => void res.send('ok'));
    const listening = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => listening.once('listening', resolve));
    cleanups.push(() => new Promise<void>((resolve) => listening.close(() => resolve())));
    const url = `http://127.0.0.1:${(listening.address() as AddressInfo).port}/`;
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await fetch(url)).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const last = await fetch(url);
    expect(last.headers.get('ratelimit-policy')).toContain('q=3');
  });
});

describe('when Redis is down or restarts', () => {
  it('decides by whenUnavailable, skips Redis for unavailableRetryMs, and returns to it (reloading the script) after a restart', async () => {
    const own = await RedisProcess.start();
    const ownClient = new Redis({ port: own.port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => 50 });
    ownClient.on('error', () => undefined); // refused connections while the server is down: expected here
    cleanups.push(async () => {
      ownClient.disconnect();
      await own.stop();
    });
    const store = redisStore({ client: ownClient, timeoutMs: 300 });
    const thrower = createLimiter({ store, whenUnavailable: 'throw', unavailableRetryMs: 200 });
    const local = createLimiter({ store: redisStore({ client: ownClient, timeoutMs: 300 }), whenUnavailable: 'local', unavailableRetryMs: 200 });
    const closed = createLimiter({ store: redisStore({ client: ownClient, timeoutMs: 300 }), whenUnavailable: 'closed', unavailableRetryMs: 200 });
    cleanups.push(async () => {
      for (const l of [thrower, local, closed]) await l.close();
    });
    const request = { key: 'r', limit: 3, windowMs: 60_000 };
    expect((await thrower.allow(request)).allowed).toBe(true);

    await own.stop();
    const error = await thrower.allow(request).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RingLimitError);
    expect((error as RingLimitError).code).toBe('UNAVAILABLE');
    // Within unavailableRetryMs: no call to Redis at all, an answer at once.
    const started = Date.now();
    await expect(thrower.allow(request)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(Date.now() - started).toBeLessThan(100);
    // 'local' decides in this process with the same limits; 'closed' refuses.
    const locally = [];
    for (let i = 0; i < 4; i++) locally.push((await local.allow(request)).allowed);
    expect(locally).toEqual([true, true, true, false]);
    expect((await closed.allow(request)).allowed).toBe(false);
    expect(thrower.stats().storeErrors).toBeGreaterThanOrEqual(1);

    // Callers keep calling through the restart ('local' answers while the server is away).
    let calls = 0;
    let slowest = 0;
    let stop = false;
    const traffic = (async () => {
      while (!stop) {
        const t0 = Date.now();
        await local.allow({ key: `t${calls % 50}`, limit: 1_000, windowMs: 60_000 });
        slowest = Math.max(slowest, Date.now() - t0);
        calls++;
        if (calls % 20 === 0) await new Promise((r) => setTimeout(r, 1));
      }
    })();
    const sentBeforeRestart = local.stats().store.decisions;
    await own.restart(); // an empty server: no keys, no script
    const deadline = Date.now() + 10_000;
    let back = false;
    while (!back && Date.now() < deadline) {
      back = await thrower.allow(request).then(
        () => true,
        () => false,
      );
      if (!back) await new Promise((r) => setTimeout(r, 100));
    }
    expect(back).toBe(true);
    expect(store.counters.scriptLoads).toBeGreaterThanOrEqual(1);
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await traffic;
    expect(calls).toBeGreaterThan(100);
    expect(slowest).toBeLessThan(2_000); // a deadline (300 ms) bounds every call, even on a busy machine
    expect(local.stats().store.decisions).toBeGreaterThan(sentBeforeRestart); // back on Redis
  }, 30_000);
});
