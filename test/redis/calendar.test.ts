import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { calendarOf, type CalendarUnit } from '../../src/limiter/calendar.js';
import { createLimiter } from '../../src/limiter/create.js';
import { LimiterStore } from '../../src/limiter/store.js';
import type { Algorithm } from '../../src/limiter/types.js';
import { newResolvedParams, resolveRequest } from '../../src/limiter/validate.js';
import { redisStore } from '../../src/redis/index.js';
import { RedisStore } from '../../src/redis/redis-store.js';
import { PARITY_TIMEOUT_MS, propertyOptions, redisForTests } from './redis-server.js';

const redisServer = redisForTests();

const ZONES = ['UTC', 'Europe/Paris', 'America/New_York', 'Australia/Lord_Howe', 'Asia/Kolkata', 'America/Santiago', 'Pacific/Chatham'];
const UNITS: CalendarUnit[] = ['minute', 'hour', 'day', 'week', 'month', 'year'];
/** Instants near the zones' DST changes of 2026 (and a plain one), where periods are unequal. */
const STARTS = [
  Date.UTC(2026, 2, 8, 6, 40), Date.UTC(2026, 2, 29, 0, 30), Date.UTC(2026, 3, 4, 15, 10), Date.UTC(2026, 8, 26, 13, 50), Date.UTC(2026, 9, 25, 0, 20), Date.UTC(2026, 10, 1, 5, 45), Date.UTC(2026, 5, 15, 12, 0),
  // Minutes before a change, so that minute and hour periods cross it.
  Date.UTC(2026, 2, 29, 0, 55), Date.UTC(2026, 9, 25, 0, 55), Date.UTC(2026, 2, 8, 6, 55), Date.UTC(2026, 10, 1, 5, 55), Date.UTC(2026, 3, 4, 14, 55),
];

const scenario = fc.record({
  algorithm: fc.constantFrom<Algorithm>('fixed-window', 'sliding-window'),
  unit: fc.constantFrom(...UNITS),
  zone: fc.constantFrom(...ZONES),
  start: fc.constantFrom(...STARTS),
  startJitter: fc.double({ min: 0, max: 1, noNaN: true }),
  limit: fc.integer({ min: 1, max: 6 }),
  ops: fc.array(
    fc.record({
      /** Time to the next call, as a fraction of the unit's longest period (often 0: bursts). */
      dt: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1.3, noNaN: true })),
      cost: fc.integer({ min: 0, max: 3 }),
      reserve: fc.boolean(),
      /** A reservation's bound: up to the unit's longest period, at most a day. */
      maxWait: fc.double({ min: 0, max: 1.5, noNaN: true }),
    }),
    { minLength: 1, maxLength: 12 },
  ),
});

describe('calendar windows on Redis', () => {
  it('decide every request of random sequences exactly as the in-memory core does, in six units and seven zones across DST changes', async () => {
    let run = 0;
    let decisions = 0;
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const longest = calendarOf(s.unit, s.zone).longestMs;
        const clock = new ManualClock(s.start + Math.floor(s.startJitter * Math.min(longest, 3 * 86_400_000)));
        const store = new LimiterStore(clock, {});
        const redis = new RedisStore({ client: redisServer.client(), clock, timeoutMs: PARITY_TIMEOUT_MS, prefix: `cal${run++}:` });
        const request = { key: 'k', limit: s.limit, calendar: s.unit, timeZone: s.zone, algorithm: s.algorithm };
        for (const op of s.ops) {
          clock.advance(Math.floor(op.dt * Math.min(longest, 2 * 86_400_000)));
          const req = { ...request, cost: Math.min(op.cost, s.limit) };
          const maxWaitMs = op.reserve ? Math.min(86_400_000, op.maxWait * Math.min(longest, 86_400_000)) : -1;
          const local = op.reserve ? store.reserve(req, maxWaitMs) : { ...store.allow(req), waitMs: 0 };
          const remote = await redis.decide(resolveRequest(req, newResolvedParams()), maxWaitMs);
          expect({ ...remote, limit: local.limit, nowMs: clock.now() }).toEqual({ ...local, nowMs: clock.now() });
          decisions++;
        }
      }),
      propertyOptions(),
    );
    expect(decisions).toBeGreaterThan(propertyOptions().numRuns);
  }, 120_000);

  it("a daily quota in Paris on Redis's own clock: exactly the limit, reset at the next Paris midnight", async () => {
    const limiter = createLimiter({ store: redisStore({ client: redisServer.client(), prefix: `paris${Date.now()}:` }) });
    try {
      const request = { key: 'tenant-1', action: 'exports', limit: 3, calendar: 'day' as const, timeZone: 'Europe/Paris' };
      const answers = [];
      for (let i = 0; i < 5; i++) answers.push(await limiter.allow(request));
      expect(answers.map((a) => a.allowed)).toEqual([true, true, true, false, false]);
      const midnight = calendarOf('day', 'Europe/Paris').after(calendarOf('day', 'Europe/Paris').start(Date.now()), 1);
      expect(Math.abs(answers[0]!.resetAtMs - midnight)).toBeLessThan(1_000);
      expect(Math.abs(answers[4]!.retryAfterMs - (midnight - Date.now()))).toBeLessThan(1_000);
    } finally {
      await limiter.close();
    }
  });
});
