import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { RingLimitError } from '../../src/common/errors.js';
import { createLimiter } from '../../src/limiter/create.js';
import { decide, reserve, type ShapedState } from '../../src/limiter/pure.js';
import { LimiterStore } from '../../src/limiter/store.js';
import { AlgorithmId, type Decision, type RateLimitRequest, type Reservation } from '../../src/limiter/types.js';
import { checkedRemaining, newResolvedParams, resolveRequest } from '../../src/limiter/validate.js';
import { RedisStore, redisStore } from '../../src/redis/redis-store.js';
import type { RemoteDecision, RemoteInspection } from '../../src/limiter/remote-store.js';
import { T0 } from '../limiter/helpers.js';
import { PARITY_TIMEOUT_MS, propertyOptions, redisForTests } from './redis-server.js';
import { shapeCallsArb, shapeCallsWithoutAdmin, type ShapeCall } from './shape-calls.js';

/**
 * The Redis store under issue 28's rule (docs/request-shape.md): a key keeps its shape while its
 * state is in use. Random sequences of requests of random shapes, limits and costs are played
 * through the in-memory store (the reference), the Redis store and the pure functions, and every
 * answer compared: decisions field for field, refusals by code, field and message. A refusal and
 * a peek leave the key's value and its expiry in Redis as they were.
 */

const redisServer = redisForTests();

type Refused = { code: string; field: string | undefined; message: string };
type Outcome = { allowed: boolean; remaining: number; resetAtMs: number; retryAfterMs: number; waitMs: number } | Refused;

function refusalOf(error: unknown): Outcome {
  if (!(error instanceof RingLimitError)) throw error;
  return { code: error.code, field: error.field, message: error.message };
}

function local(run: () => Decision | Reservation): Outcome {
  try {
    const d = run();
    return { allowed: d.allowed, remaining: d.remaining, resetAtMs: d.resetAtMs, retryAfterMs: d.retryAfterMs, waitMs: 'waitMs' in d ? d.waitMs : 0 };
  } catch (error) {
    return refusalOf(error);
  }
}

async function remote(call: Promise<RemoteDecision>): Promise<Outcome> {
  return call.then(
    (d) => ({ allowed: d.allowed, remaining: d.remaining, resetAtMs: d.resetAtMs, retryAfterMs: d.retryAfterMs, waitMs: d.waitMs }),
    refusalOf,
  );
}

/** The key's value in Redis and its expiry (absolute: PEXPIRETIME), to check that nothing was written. */
async function storedOf(key: string): Promise<[string | null, unknown]> {
  const client = redisServer.client();
  const [value, expiresAt] = await Promise.all([client.getBuffer(key), client.call('PEXPIRETIME', key)]);
  return [value === null ? null : value.toString('hex'), expiresAt];
}

function refused(o: Outcome): o is Refused {
  return 'code' in o;
}

describe('request shapes on the Redis store (issue 28, finding 4)', () => {
  it('decides random sequences of requests of random shapes exactly as the in-memory store and the pure functions do; refusals and peeks write nothing', async () => {
    let run = 0;
    let refusals = 0;
    let reshaped = 0;
    await fc.assert(
      fc.asyncProperty(shapeCallsWithoutAdmin, async (calls: ShapeCall[]) => {
        const clock = new ManualClock(T0);
        const store = new LimiterStore(clock, {});
        const redis = new RedisStore({ client: redisServer.client(), clock, timeoutMs: PARITY_TIMEOUT_MS, prefix: `shape${run++}:` });
        const key = redis.keyOf('default', 'k');
        let state: ShapedState | undefined;
        for (const call of calls) {
          clock.advance(call.dtMs);
          const now = clock.now();
          const reserving = call.maxWaitMs >= 0;
          const expected = local(() => (reserving ? store.reserve(call.request, call.maxWaitMs) : store.allow(call.request)));
          const pure = local(() => {
            const step = reserving ? reserve(state, call.request, now, call.maxWaitMs) : decide(state, call.request, now);
            if (state !== undefined && !state.empty && step.state.algorithm !== state.algorithm) reshaped++;
            state = step.state;
            return step.decision;
          });
          const before = await storedOf(key);
          const answer = await remote(redis.decide(resolveRequest(call.request, newResolvedParams()), call.maxWaitMs));
          expect(answer).toEqual(expected);
          expect(pure).toEqual(expected);
          if (refused(answer) || call.request.cost === 0) expect(await storedOf(key)).toEqual(before);
          if (refused(answer)) refusals++;
        }
        expect(redis.counters.shapeMismatches).toBe(store.stats().shapeMismatches);
      }),
      propertyOptions(),
    );
    // Both sides of the rule were reached: refusals, and keys taking another algorithm once fresh.
    expect(refusals).toBeGreaterThan(propertyOptions().numRuns);
    expect(reshaped).toBeGreaterThan(propertyOptions().numRuns / 20);
  }, 60_000);

  it("with operators' inspect (refused for another shape while in use) and set (re-describes the key), exactly as the in-memory store", async () => {
    let run = 0;
    let refusedInspects = 0;
    await fc.assert(
      fc.asyncProperty(shapeCallsArb(true), async (calls: ShapeCall[]) => {
        const clock = new ManualClock(T0);
        const store = new LimiterStore(clock, {});
        const redis = new RedisStore({ client: redisServer.client(), clock, timeoutMs: PARITY_TIMEOUT_MS, prefix: `shapeadmin${run++}:` });
        const key = redis.keyOf('default', 'k');
        for (const call of calls) {
          clock.advance(call.dtMs);
          const before = await storedOf(key);
          if (call.op === 'allow' || call.op === 'reserve') {
            const expected = local(() => (call.op === 'reserve' ? store.reserve(call.request, call.maxWaitMs) : store.allow(call.request)));
            expect(await remote(redis.decide(resolveRequest(call.request, newResolvedParams()), call.maxWaitMs))).toEqual(expected);
            if (refused(expected) || call.request.cost === 0) expect(await storedOf(key)).toEqual(before);
            continue;
          }
          const peek = resolveRequest({ ...call.request, cost: 0 }, newResolvedParams());
          const remaining = call.setFraction === 1 ? undefined : Math.floor(call.setFraction * checkedRemaining(peek, undefined));
          const expected = local(() => (call.op === 'inspect' ? store.inspect(call.request) : store.setRemaining(call.request, remaining)));
          const answer = await redis.admin(call.op, peek, checkedRemaining(peek, remaining)).then(
            (d: RemoteInspection): Outcome => ({ allowed: d.remaining >= 1, remaining: d.remaining, resetAtMs: d.resetAtMs, retryAfterMs: 0, waitMs: 0 }),
            refusalOf,
          );
          expect(answer, call.op).toEqual(expected);
          if (call.op === 'inspect') expect(await storedOf(key)).toEqual(before);
          if (refused(answer)) refusedInspects++;
        }
      }),
      propertyOptions(),
    );
    expect(refusedInspects).toBeGreaterThan(0);
  }, 60_000);

  it('alternating the algorithm every 5 calls at 5 an hour admits 5 of 40; the others are refused in the same script calls as the decisions beside them', async () => {
    const redis = new RedisStore({ client: redisServer.client(), prefix: `alternate${Date.now()}:` });
    const ALL = ['token-bucket', 'gcra', 'sliding-window', 'fixed-window'] as const;
    let allowed = 0;
    for (let i = 0; i < 40; i++) {
      const p = resolveRequest({ key: 'k', limit: 5, windowMs: 3_600_000, algorithm: ALL[Math.floor(i / 5) % 4]! }, newResolvedParams());
      const answer = await remote(redis.decide(p, -1));
      if (!refused(answer) && answer.allowed) allowed++;
      if (refused(answer)) expect(answer).toMatchObject({ code: 'FAILED_PRECONDITION', field: 'algorithm' });
    }
    expect(allowed).toBe(5);
    expect(redis.counters.shapeMismatches).toBe(30);
    // One batch: a refused decision fails alone, its neighbours are decided.
    const calls = redis.counters.scriptCalls;
    const shaped = (key: string, algorithm: 'gcra' | 'token-bucket') => resolveRequest({ key, limit: 5, windowMs: 3_600_000, algorithm }, newResolvedParams());
    const answers = await Promise.all([remote(redis.decide(shaped('other', 'gcra'), -1)), remote(redis.decide(shaped('k', 'gcra'), -1)), remote(redis.decide(shaped('other', 'gcra'), -1))]);
    expect(answers.map((a) => (refused(a) ? a.field : a.allowed))).toEqual([true, 'algorithm', true]);
    expect(redis.counters.scriptCalls - calls).toBe(2); // the first alone (nothing in flight), the other two together
  });

  it('a time zone, a calendar unit or a window of another shape is refused naming its field, with the held shape in the message', async () => {
    const redis = new RedisStore({ client: redisServer.client(), prefix: `fields${Date.now()}:` });
    const day = (timeZone: string) => resolveRequest({ key: 'k', limit: 5, calendar: 'day', timeZone, algorithm: 'fixed-window' }, newResolvedParams());
    expect(await remote(redis.decide(day('Europe/Paris'), -1))).toMatchObject({ allowed: true, remaining: 4 });
    const rotated = await remote(redis.decide(day('America/New_York'), -1));
    expect(rotated).toMatchObject({ code: 'FAILED_PRECONDITION', field: 'timeZone' });
    expect(refused(rotated) && rotated.message).toMatch(/^timeZone: the key holds a state as fixed-window over a calendar day in Europe\/Paris until .*this request describes it as fixed-window over a calendar day in America\/New_York/);
    const hourly = resolveRequest({ key: 'k', limit: 5, calendar: 'hour', timeZone: 'Europe/Paris', algorithm: 'fixed-window' }, newResolvedParams());
    expect(await remote(redis.decide(hourly, -1))).toMatchObject({ field: 'calendar' });
    const minutes = resolveRequest({ key: 'm', limit: 5, windowMs: 60_000, algorithm: 'sliding-window' }, newResolvedParams());
    await redis.decide(minutes, -1);
    expect(await remote(redis.decide({ ...minutes, windowMs: 60_001 }, -1))).toMatchObject({ code: 'FAILED_PRECONDITION', field: 'windowMs' });
    await expect(redis.admin('inspect', { ...minutes, windowMs: 1_000, cost: 0 }, 0)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', field: 'windowMs' });
    // An operator's set re-describes the key.
    expect(await redis.admin('set', { ...minutes, windowMs: 1_000, cost: 0 }, 5)).toMatchObject({ remaining: 5 });
    expect(await remote(redis.decide({ ...minutes, windowMs: 1_000 }, -1))).toMatchObject({ allowed: true, remaining: 4 });
  });

  it('a value written before shapes (25 bytes) is read as the window of a request of its algorithm, and refused by another until the key expires', async () => {
    const client = redisServer.client();
    const clock = new ManualClock(T0);
    const prefix = `legacy${Date.now()}:`;
    const redis = new RedisStore({ client, clock, prefix });
    const key = redis.keyOf('default', 'k');
    // The in-memory analog: an imported state, of an algorithm and no window (docs/request-shape.md).
    const store = new LimiterStore(clock, {});
    const written = new LimiterStore(clock, {});
    const request: RateLimitRequest = { key: 'k', limit: 5, windowMs: 60_000, algorithm: 'fixed-window' };
    for (let i = 0; i < 3; i++) written.allow(request);
    const cells = new Float64Array(4);
    written.readEntry('default', 'k', cells);
    store.importEntry('default', 'k', AlgorithmId.FixedWindow, cells, 0, 'replace');
    const legacy = Buffer.alloc(25);
    legacy.writeUInt8(AlgorithmId.FixedWindow, 0);
    for (let i = 0; i < 3; i++) legacy.writeDoubleLE(cells[i]!, 1 + 8 * i);
    await client.set(key, legacy, 'PX', 60_000);
    // Another algorithm: refused while the key lives (its window and freshness were not recorded); nothing written.
    const other = resolveRequest({ ...request, algorithm: 'gcra' }, newResolvedParams());
    const answer = await remote(redis.decide(other, -1));
    expect(answer).toMatchObject({ code: 'FAILED_PRECONDITION', field: 'algorithm' });
    expect(refused(answer) && answer.message).toContain('fixed-window over a window not recorded');
    expect((await client.getBuffer(key))!.equals(legacy)).toBe(true);
    // Its own algorithm, another window: the request's window, as the in-memory store takes an imported state's. A peek rewrites nothing.
    const hourly = { ...request, windowMs: 3_600_000 };
    expect(await remote(redis.decide(resolveRequest({ ...hourly, cost: 0 }, newResolvedParams()), -1))).toEqual(local(() => store.allow({ ...hourly, cost: 0 })));
    expect((await client.getBuffer(key))!.equals(legacy)).toBe(true);
    expect(await remote(redis.decide(resolveRequest(hourly, newResolvedParams()), -1))).toEqual(local(() => store.allow(hourly)));
    const rewritten = (await client.getBuffer(key))!;
    expect(rewritten.length).toBe(33 + '3600000'.length);
    expect(rewritten.readUInt8(0)).toBe(16 + AlgorithmId.FixedWindow);
    expect(rewritten.subarray(33).toString()).toBe('3600000');
    // Now the key records its shape: the minute window of before is refused.
    expect(await remote(redis.decide(resolveRequest(request, newResolvedParams()), -1))).toMatchObject({ field: 'windowMs' });
    // A legacy key of another algorithm is taken afresh once it expired.
    await client.set(key, legacy, 'PX', 30);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(await remote(redis.decide(other, -1))).toMatchObject({ allowed: true, remaining: 4 });
  });

  it('token bucket and GCRA on Redis answer a raised limit as in memory: the raised request refills nothing at once', async () => {
    for (const algorithm of ['token-bucket', 'gcra'] as const) {
      const clock = new ManualClock(T0);
      const store = new LimiterStore(clock, {});
      const redis = new RedisStore({ client: redisServer.client(), clock, timeoutMs: PARITY_TIMEOUT_MS, prefix: `raise${algorithm}${Date.now()}:` });
      const request: RateLimitRequest = { key: 'k', limit: 5, windowMs: 3_600_000, algorithm };
      const both = async (r: RateLimitRequest): Promise<Outcome> => {
        const expected = local(() => store.allow(r));
        expect(await remote(redis.decide(resolveRequest(r, newResolvedParams()), -1))).toEqual(expected);
        return expected;
      };
      for (let i = 0; i < 5; i++) await both(request);
      clock.advance(1_000);
      // A limit of a million: the second waited refills at the slower rate (token bucket), the units consumed stay consumed (GCRA).
      expect(await both({ ...request, limit: 1_000_000, burst: 5 })).toMatchObject({ allowed: false, remaining: 0 });
      clock.advance(1_000);
      await both(request);
    }
  });

  it('token bucket and GCRA with limits, bursts and weights changing call by call decide exactly as in memory (the stored rate and interval)', async () => {
    const limitsArb = fc.record({
      algorithm: fc.constantFrom<'token-bucket' | 'gcra'>('token-bucket', 'gcra'),
      windowMs: fc.oneof(fc.constantFrom(1, 7, 1_000, 60_000, 86_400_000), fc.double({ min: 1, max: 86_400_000, noNaN: true })),
      ops: fc.array(
        fc.record({
          dtFraction: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 0.05, noNaN: true }), fc.double({ min: 0, max: 1.5, noNaN: true })),
          limit: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 1_000 })),
          burst: fc.option(fc.integer({ min: 1, max: 1_000 }), { nil: undefined }),
          weight: fc.constantFrom(1, 1, 2.5, 1_000),
          cost: fc.integer({ min: 0, max: 3 }),
          maxWaitFraction: fc.option(fc.double({ min: 0, max: 2, noNaN: true }), { nil: undefined }),
        }),
        { minLength: 2, maxLength: 40 },
      ),
    });
    let run = 0;
    await fc.assert(
      fc.asyncProperty(limitsArb, async (s) => {
        const clock = new ManualClock(T0);
        const store = new LimiterStore(clock, {});
        const redis = new RedisStore({ client: redisServer.client(), clock, timeoutMs: PARITY_TIMEOUT_MS, prefix: `limits${run++}:` });
        for (const op of s.ops) {
          clock.advance(op.dtFraction * s.windowMs);
          const capacity = Math.floor((op.burst ?? op.limit) * op.weight);
          const request: RateLimitRequest = { key: 'k', algorithm: s.algorithm, windowMs: s.windowMs, limit: op.limit, weight: op.weight, cost: Math.min(op.cost, capacity), ...(op.burst === undefined ? {} : { burst: op.burst }) };
          const maxWaitMs = op.maxWaitFraction === undefined ? -1 : Math.min(86_400_000, op.maxWaitFraction * s.windowMs);
          const expected = local(() => (maxWaitMs >= 0 ? store.reserve(request, maxWaitMs) : store.allow(request)));
          expect(await remote(redis.decide(resolveRequest(request, newResolvedParams()), maxWaitMs))).toEqual(expected);
        }
      }),
      propertyOptions(),
    );
  }, 60_000);

  // The RemoteLimiter (src/limiter/remote-limiter.ts) passes its store's FAILED_PRECONDITION through:
  // not answered by whenUnavailable, and Redis is not skipped for unavailableRetryMs.
  it('on a RemoteLimiter, a request of another shape gets FAILED_PRECONDITION, and Redis keeps deciding', async () => {
    const limiter = createLimiter({ store: redisStore({ client: redisServer.client(), prefix: `limiter${Date.now()}:` }) });
    try {
      const request: RateLimitRequest = { key: 'k', limit: 1, windowMs: 3_600_000 };
      expect((await limiter.allow(request)).allowed).toBe(true);
      await expect(limiter.allow({ ...request, algorithm: 'gcra' })).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', field: 'algorithm' });
      expect((await limiter.allow(request)).allowed).toBe(false);
    } finally {
      await limiter.close();
    }
  });
});
