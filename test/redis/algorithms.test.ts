import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { newResolvedParams, resolveRequest } from '../../src/limiter/validate.js';
import { RedisStore } from '../../src/redis/redis-store.js';
import { newStore } from '../limiter/helpers.js';
import { baseRequest, scenarioArb } from '../limiter/scenarios.js';
import { PARITY_TIMEOUT_MS, propertyOptions, redisForTests } from './redis-server.js';

const redisServer = redisForTests();

describe('the Lua algorithms against the in-memory core', () => {
  // Every decision equal, field for field, to the in-memory store's: so every invariant the
  // core's property tests prove (test/limiter/properties.test.ts, same scenarios) holds on Redis.
  it('decide every request of random sequences exactly as the in-memory store does (all four algorithms, allow and reserve)', async () => {
    let run = 0;
    let decisions = 0;
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (s) => {
        const request = baseRequest(s);
        fc.pre(request !== undefined);
        const { store, clock } = newStore();
        const redis = new RedisStore({ client: redisServer.client(), clock, timeoutMs: PARITY_TIMEOUT_MS, prefix: `same${run++}:` });
        const windowed = s.algorithm === 'fixed-window' || s.algorithm === 'sliding-window';
        const capacity = windowed || s.burst === undefined ? Math.floor(s.limit * s.weight) : Math.floor(s.burst * s.weight);
        for (const op of s.ops) {
          clock.advance(op.dtFraction * s.windowMs);
          const cost = op.costKind === 0 ? 0 : op.costKind === 1 ? 1 : 1 + Math.floor(op.costFraction * (capacity - 1));
          const req = { ...request!, cost };
          const maxWaitMs = op.reserve ? Math.min(86_400_000, op.maxWaitFraction * s.windowMs) : -1;
          const local = op.reserve ? store.reserve(req, maxWaitMs) : { ...store.allow(req), waitMs: 0 };
          const remote = await redis.decide(resolveRequest(req, newResolvedParams()), maxWaitMs);
          expect({ ...remote, limit: local.limit, nowMs: clock.now() }).toEqual({ ...local, nowMs: clock.now() });
          decisions++;
        }
      }),
      propertyOptions(4),
    );
    expect(decisions).toBeGreaterThan(propertyOptions().numRuns * 12);
  }, 120_000);
});
