import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { createLimiter } from '../../src/limiter/create.js';
import { RemoteLimiter } from '../../src/limiter/remote-limiter.js';
import { LimiterStore } from '../../src/limiter/store.js';
import type { Algorithm, RateLimitRequest } from '../../src/limiter/types.js';
import { newResolvedParams, resolveRequest } from '../../src/limiter/validate.js';
import { RedisStore, redisStore } from '../../src/redis/index.js';
import { PARITY_TIMEOUT_MS, propertyOptions, redisForTests } from './redis-server.js';

const redisServer = redisForTests();

type Step = { kind: 'allow' | 'reserve' | 'inspect' | 'reset' | 'set'; dt: number; cost: number; fraction: number };

const scenario = fc.record({
  algorithm: fc.constantFrom<Algorithm>('token-bucket', 'gcra', 'sliding-window', 'fixed-window'),
  calendar: fc.boolean(),
  limit: fc.integer({ min: 1, max: 8 }),
  steps: fc.array(
    fc.record({
      kind: fc.constantFrom<Step['kind']>('allow', 'allow', 'reserve', 'inspect', 'reset', 'set', 'set'),
      dt: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1.5, noNaN: true })),
      cost: fc.integer({ min: 0, max: 3 }),
      fraction: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
    { minLength: 1, maxLength: 14 },
  ),
});

describe("operators' calls on the Redis store", () => {
  it('inspect, set and reset leave every key exactly as the in-memory core does, decisions between them included', async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const windowed = s.algorithm === 'sliding-window' || s.algorithm === 'fixed-window';
        const calendar = windowed && s.calendar;
        const windowMs = 60_000;
        const clock = new ManualClock(Date.UTC(2026, 9, 24, 23, 59, 30));
        const store = new LimiterStore(clock, {});
        const redis = new RedisStore({ client: redisServer.client(), clock, timeoutMs: PARITY_TIMEOUT_MS, prefix: `admin${run++}:` });
        const request: RateLimitRequest = calendar
          ? { key: 'k', limit: s.limit, calendar: 'day', timeZone: 'Europe/Paris', algorithm: s.algorithm }
          : { key: 'k', limit: s.limit, windowMs, algorithm: s.algorithm };
        const span = calendar ? 86_400_000 : windowMs;
        for (const step of s.steps) {
          clock.advance(Math.floor(step.dt * span));
          const peek = resolveRequest({ ...request, cost: 0 }, newResolvedParams());
          if (step.kind === 'allow' || step.kind === 'reserve') {
            const req = { ...request, cost: Math.min(step.cost, s.limit) };
            const maxWaitMs = step.kind === 'reserve' ? step.fraction * span : -1;
            const local = step.kind === 'reserve' ? store.reserve(req, maxWaitMs) : { ...store.allow(req), waitMs: 0 };
            const remote = await redis.decide(resolveRequest(req, newResolvedParams()), maxWaitMs);
            expect({ ...remote, limit: local.limit, nowMs: 0 }).toEqual({ ...local, nowMs: 0 });
            continue;
          }
          const remaining = Math.floor(step.fraction * s.limit);
          const local = step.kind === 'inspect' ? store.inspect(request) : store.setRemaining(request, step.kind === 'reset' ? undefined : remaining);
          const remote = await redis.admin(step.kind === 'inspect' ? 'inspect' : 'set', peek, step.kind === 'reset' ? s.limit : remaining);
          expect({ remaining: remote.remaining, resetAtMs: remote.resetAtMs }, step.kind).toEqual({ remaining: local.remaining, resetAtMs: local.resetAtMs });
        }
      }),
      propertyOptions(),
    );
  }, 120_000);

  it("on a RemoteLimiter: a refused key reset answers at once (the process's cached refusal is dropped); bad values reach no store", async () => {
    const prefix = `ops${Date.now()}:`;
    const limiter = createLimiter({ store: redisStore({ client: redisServer.client(), prefix }) }) as RemoteLimiter;
    try {
      const key = { key: 'user-42', action: 'login', limit: 3, windowMs: 3_600_000 };
      for (let i = 0; i < 3; i++) await limiter.allow(key);
      expect((await limiter.allow(key)).allowed).toBe(false);
      expect((await limiter.allow(key)).allowed).toBe(false); // from the rejection cache
      expect(await limiter.inspect(key)).toMatchObject({ allowed: false, remaining: 0, limit: 3 });
      expect(await limiter.reset(key)).toMatchObject({ allowed: true, remaining: 3 });
      expect(await limiter.allow(key)).toMatchObject({ allowed: true, remaining: 2 });
      expect(await limiter.setRemaining(key, 1)).toMatchObject({ remaining: 1 });
      expect(await limiter.allow(key)).toMatchObject({ allowed: true, remaining: 0 });
      const calls = limiter.store.stats().calls;
      await expect(limiter.setRemaining(key, 4)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'remaining' });
      await expect(limiter.setRemaining(key, 1.5)).rejects.toMatchObject({ field: 'remaining' });
      await expect(limiter.inspect({ ...key, key: '' })).rejects.toMatchObject({ field: 'key' });
      expect(limiter.store.stats().calls).toBe(calls);
      // Another process sees the value set: the state is in Redis.
      const other = createLimiter({ store: redisStore({ client: redisServer.client(), prefix }) }) as RemoteLimiter;
      expect(await other.inspect(key)).toMatchObject({ remaining: 0 });
      await other.close();
    } finally {
      await limiter.close();
    }
  });
});
