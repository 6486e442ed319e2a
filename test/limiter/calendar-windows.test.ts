import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import type { RateLimitError } from '../../src/common/errors.js';
import { calendarOf, type CalendarUnit } from '../../src/limiter/calendar.js';
import { createLimiter } from '../../src/limiter/create.js';
import { Policies } from '../../src/limiter/policies.js';
import { decide } from '../../src/limiter/pure.js';
import { RejectionCache } from '../../src/limiter/rejection-cache.js';
import { LimiterStore } from '../../src/limiter/store.js';
import type { RateLimitRequest } from '../../src/limiter/types.js';
import { newResolvedParams, resolveRequest } from '../../src/limiter/validate.js';

const RUNS = Number(process.env.PROPERTY_RUNS ?? 300);
const REPLAY = process.env.PROPERTY_SEED === undefined ? {} : { seed: Number(process.env.PROPERTY_SEED) };
const HOUR = 3_600_000;

function storeAt(ms: number) {
  const clock = new ManualClock(ms);
  return { clock, store: new LimiterStore(clock) };
}

function refusal(f: () => unknown): RateLimitError {
  try {
    f();
  } catch (error) {
    return error as RateLimitError;
  }
  throw new Error('not refused');
}

const paris: RateLimitRequest = { key: 'u', action: 'quota', limit: 1000, calendar: 'day', timeZone: 'Europe/Paris' };

describe('1,000 per day, reset at midnight Europe/Paris', () => {
  // Local midnights around the 2026 changes (23 h on 03-29, 25 h on 10-25), in UTC.
  const midnights = [
    Date.UTC(2026, 2, 27, 23), Date.UTC(2026, 2, 28, 23), Date.UTC(2026, 2, 29, 22), Date.UTC(2026, 2, 30, 22),
    Date.UTC(2026, 9, 23, 22), Date.UTC(2026, 9, 24, 22), Date.UTC(2026, 9, 25, 23), Date.UTC(2026, 9, 26, 23),
  ];

  for (const algorithm of ['fixed-window', 'sliding-window'] as const) {
    it(`${algorithm}: exactly the limit per local day; reset and retry point at local midnight`, () => {
      const { clock, store } = storeAt(midnights[0]! + 0.5);
      const req = { ...paris, algorithm };
      for (let i = 0; i + 1 < midnights.length; i++) {
        const [day, next] = [midnights[i]!, midnights[i + 1]!];
        if (next - day > 26 * HOUR) continue; // the gap between the spring and autumn dates
        // A sliding window carries yesterday's units into today: start each day with a fresh key.
        const key = algorithm === 'sliding-window' ? `u${i}` : 'u';
        clock.set(Math.max(clock.now(), day + 1));
        let allowed = 0;
        for (let n = 0; n < 1200; n++) {
          if (n === 600) clock.advance((next - day) / 2);
          if (store.allow({ ...req, key }).allowed) allowed++;
        }
        expect(allowed).toBe(1000);
        const refused = store.allow({ ...req, key });
        expect(refused.allowed).toBe(false);
        if (algorithm === 'fixed-window') {
          expect(refused.resetAtMs).toBe(next);
          expect(clock.now() + refused.retryAfterMs).toBe(next);
          clock.set(next - 1);
          expect(store.allow(req).allowed).toBe(false);
          clock.set(next);
          expect(store.allow({ ...req, cost: 0 }).remaining).toBe(1000);
        } else {
          // Sliding: full now, its estimate is clear one period after this one ends.
          expect(refused.resetAtMs).toBe(calendarOf('day', 'Europe/Paris').after(day, 2));
        }
      }
    });
  }

  it('a 23 h and a 25 h day are one window each', () => {
    const cal = calendarOf('day', 'Europe/Paris');
    expect(cal.lengthOf(Date.UTC(2026, 2, 28, 23))).toBe(23 * HOUR);
    expect(cal.lengthOf(Date.UTC(2026, 9, 24, 22))).toBe(25 * HOUR);
  });
});

describe('calendar windows in the limiter', () => {
  it('a monthly quota across February, in UTC and in a zone', () => {
    for (const [timeZone, marchFirst] of [['UTC', Date.UTC(2028, 2, 1)], ['America/New_York', Date.UTC(2028, 2, 1, 5)]] as const) {
      const { clock, store } = storeAt(Date.UTC(2028, 1, 10));
      const req: RateLimitRequest = { key: 'm', limit: 100, calendar: 'month', timeZone };
      for (let i = 0; i < 100; i++) expect(store.allow(req).allowed).toBe(true);
      clock.set(Date.UTC(2028, 1, 29, 2)); // Feb 29, a leap year
      const d = store.allow(req);
      expect([d.allowed, d.resetAtMs, clock.now() + d.retryAfterMs]).toEqual([false, marchFirst, marchFirst]);
      clock.set(marchFirst);
      expect(store.allow(req).remaining).toBe(99);
    }
  });

  it('sliding window across a 23 h day: at most L per day and at most 2L − 1 in 23 h, and near L a day for steady traffic', () => {
    const { clock, store } = storeAt(Date.UTC(2026, 2, 26, 23));
    const req: RateLimitRequest = { key: 's', limit: 100, calendar: 'day', timeZone: 'Europe/Paris', algorithm: 'sliding-window' };
    const cal = calendarOf('day', 'Europe/Paris');
    const admitted: number[] = [];
    // A request every 5 minutes, and a burst of 150 late on the 28th, just before the short day.
    for (let t = clock.now(); t < Date.UTC(2026, 2, 31, 22); t += 5 * 60_000) {
      clock.set(t);
      const burst = t >= Date.UTC(2026, 2, 28, 21) && t < Date.UTC(2026, 2, 28, 21, 5) ? 150 : 1;
      for (let i = 0; i < burst; i++) if (store.allow(req).allowed) admitted.push(t);
    }
    const perDay = new Map<number, number>();
    for (const t of admitted) perDay.set(cal.start(t), (perDay.get(cal.start(t)) ?? 0) + 1);
    for (const [day, n] of perDay) {
      expect(n, new Date(day).toISOString()).toBeLessThanOrEqual(100);
    }
    for (let i = 0, j = 0; i < admitted.length; i++) {
      while (j < admitted.length && admitted[j]! - admitted[i]! < 23 * HOUR) j++;
      expect(j - i).toBeLessThanOrEqual(199);
    }
    // Steady traffic after the burst has decayed: close to the limit each day.
    expect(perDay.get(Date.UTC(2026, 2, 30, 22))).toBeGreaterThanOrEqual(95);
  });

  it('reservations queue into the next periods across a 23 h day: waits end exactly at local midnights', () => {
    const { store } = storeAt(Date.UTC(2026, 2, 28, 22)); // 23:00 on the 28th in Paris, before the 23 h day
    const req: RateLimitRequest = { key: 'r', limit: 10, calendar: 'day', timeZone: 'Europe/Paris' };
    for (let i = 0; i < 10; i++) expect(store.allow(req).allowed).toBe(true);
    const nextDay = store.reserve(req, 86_400_000);
    expect([nextDay.allowed, nextDay.waitMs]).toEqual([true, HOUR]);
    for (let i = 0; i < 9; i++) expect(store.reserve(req, 86_400_000).waitMs).toBe(HOUR);
    // Two windows ahead: 1 h of the 28th plus the 23 h day.
    const dayAfter = store.reserve(req, 86_400_000);
    expect([dayAfter.allowed, dayAfter.waitMs]).toEqual([true, 24 * HOUR]);
    const tooFar = store.reserve(req, 2 * HOUR);
    expect([tooFar.allowed, tooFar.retryAfterMs]).toEqual([false, 24 * HOUR]);
    expect(store.allow(req).retryAfterMs).toBe(24 * HOUR);
  });

  it('reservations carry into the right windows when the key is next seen periods later', () => {
    const { clock, store } = storeAt(Date.UTC(2026, 10, 1, 4, 30)); // New York, 00:30 EDT on the 25 h day
    const req: RateLimitRequest = { key: 'h', limit: 5, calendar: 'hour', timeZone: 'America/New_York' };
    for (let i = 0; i < 5; i++) store.allow(req);
    // Queue 3 hours' worth: the hours starting 05:00, 06:00 (the repeated 01:00) and 07:00 UTC.
    const waits = Array.from({ length: 15 }, () => store.reserve(req, 4 * HOUR).waitMs);
    expect(new Set(waits)).toEqual(new Set([30 * 60_000, 90 * 60_000, 150 * 60_000]));
    clock.set(Date.UTC(2026, 10, 1, 6, 10)); // the second 01:00 hour: its 5 queued units are there
    expect(store.allow(req).allowed).toBe(false);
    clock.set(Date.UTC(2026, 10, 1, 8)); // all drained
    expect(store.allow(req).remaining).toBe(4);
  });

  it('a policy handle takes a calendar window', () => {
    const clock = new ManualClock(Date.UTC(2026, 9, 25, 12));
    const limiter = createLimiter({ clock });
    const daily = limiter.policy({ action: 'export', limit: 2, calendar: 'day', timeZone: 'Europe/Paris' });
    expect(daily.allow('u').allowed).toBe(true);
    expect(daily.allow('u').allowed).toBe(true);
    const refused = daily.allow('u');
    expect([refused.allowed, refused.resetAtMs]).toEqual([false, Date.UTC(2026, 9, 25, 23)]);
    limiter.close();
  });

  it('inspect and setRemaining work on calendar windows', () => {
    const { store } = storeAt(Date.UTC(2026, 5, 10, 12));
    const req: RateLimitRequest = { key: 'a', limit: 50, calendar: 'week', timeZone: 'Asia/Kolkata' };
    const monday = Date.UTC(2026, 5, 14, 18, 30); // Monday 2026-06-15 00:00 +05:30
    expect(store.setRemaining(req, 3)).toMatchObject({ remaining: 3, resetAtMs: monday });
    expect(store.inspect(req)).toMatchObject({ remaining: 3, resetAtMs: monday });
    store.allow(req);
    expect(store.inspect(req).remaining).toBe(2);
    expect(store.setRemaining(req, undefined).remaining).toBe(50);
  });
});

describe('calendar requests: validation', () => {
  it('resolves to the interned calendar with windowMs its longest period, fixed-window by default', () => {
    const p = resolveRequest(paris, newResolvedParams());
    expect(p.calendar).toBe(calendarOf('day', 'Europe/Paris'));
    expect(p.windowMs).toBe(27 * HOUR);
    expect(p.algorithm).toBe(resolveRequest({ key: 'k', limit: 1, windowMs: 1, algorithm: 'fixed-window' }, newResolvedParams()).algorithm);
    expect(resolveRequest({ key: 'k', limit: 1, windowMs: 1000 }, newResolvedParams()).calendar).toBeNull();
  });

  it('refuses what does not make sense, naming the field, and changes no state', () => {
    const { store } = storeAt(Date.UTC(2026, 0, 1));
    const cases: [RateLimitRequest, string, RegExp][] = [
      [{ key: 'k', limit: 5, windowMs: 1000, timeZone: 'Europe/Paris' }, 'timeZone', /only with calendar/],
      [{ key: 'k', limit: 5, windowMs: 1000, calendar: 'day' }, 'calendar', /not both/],
      [{ key: 'k', limit: 5, calendar: 'day', algorithm: 'token-bucket' }, 'calendar', /fixed-window or sliding-window/],
      [{ key: 'k', limit: 5, calendar: 'day', algorithm: 'gcra' }, 'calendar', /fixed-window or sliding-window/],
      [{ key: 'k', limit: 5, calendar: 'decade' as CalendarUnit }, 'calendar', /must be one of/],
      [{ key: 'k', limit: 5, calendar: 'day', timeZone: 'Europe/Atlantis' }, 'timeZone', /unknown time zone/],
      [{ key: 'k', limit: 5 }, 'windowMs', /windowMs or calendar/],
    ];
    for (const [req, field, message] of cases) {
      const error = refusal(() => store.allow(req));
      expect([error.code, error.field]).toEqual(['INVALID_ARGUMENT', field]);
      expect(error.message).toMatch(message);
    }
    expect(store.stats().keys).toBe(0);
  });

  it('policies: window { calendar, timeZone }, checked with the path of a mistake', () => {
    const policies = new Policies({ defaults: { upload: { limit: 3, window: { calendar: 'day', timeZone: 'Europe/Paris' } }, 'api*': { limit: 5, window: '1m' } }, users: { vip: { actions: { upload: { window: '1h' } } } } });
    const { store } = storeAt(Date.UTC(2026, 2, 28, 22, 30));
    store.policies = policies;
    for (let i = 0; i < 3; i++) expect(store.allow({ key: 'u', action: 'upload' }).allowed).toBe(true);
    const refused = store.allow({ key: 'u', action: 'upload' });
    expect(refused.resetAtMs).toBe(Date.UTC(2026, 2, 28, 23));
    // A more specific rule's duration replaces the calendar.
    expect(resolveRequest({ key: 'vip', action: 'upload' }, newResolvedParams(), policies.resolve('vip', 'upload', undefined))).toMatchObject({ calendar: null, windowMs: HOUR });
    const bad: [unknown, string][] = [
      [{ defaults: { x: { limit: 1, window: { calendar: 'fortnight' } } } }, 'defaults.x.window.calendar'],
      [{ defaults: { x: { limit: 1, window: { calendar: 'day', timeZone: 'Nowhere/Land' } } } }, 'defaults.x.window.timeZone'],
      [{ defaults: { x: { limit: 1, window: { calendar: 'day', tz: 'UTC' } } } }, 'defaults.x.window.tz'],
      [{ defaults: { x: { limit: 1, window: { calendar: 'day' }, algorithm: 'gcra' } } }, 'defaults'],
      [{ shared: { x: { limit: 1, window: { calendar: 'day' } } } }, 'shared.x.window'],
    ];
    for (const [document, path] of bad) {
      const error = refusal(() => new Policies(document));
      expect([error.code, error.field]).toEqual(['INVALID_ARGUMENT', path]);
    }
  });

  it('the rejection cache tells calendars apart', () => {
    const cache = new RejectionCache(10);
    const day = resolveRequest({ key: 'k', limit: 1, calendar: 'day' }, newResolvedParams());
    cache.remember(day, 1000, 0, 1000);
    expect(cache.lookup(resolveRequest({ key: 'k', limit: 1, calendar: 'day' }, newResolvedParams()), 0)).toBeDefined();
    expect(cache.lookup(resolveRequest({ key: 'k', limit: 1, calendar: 'day', timeZone: 'Asia/Tokyo' }, newResolvedParams()), 0)).toBeUndefined();
    expect(cache.lookup(resolveRequest({ key: 'k', limit: 1, calendar: 'hour' }, newResolvedParams()), 0)).toBeUndefined();
  });
});

/* ---- the core's invariants, with calendar windows ---- */

interface Op { dt: number; cost: number; reserve: boolean; maxWaitFraction: number }

const NOMINAL: Record<'minute' | 'hour' | 'day', number> = { minute: 60_000, hour: HOUR, day: 24 * HOUR };
const scenario = fc.record({
  algorithm: fc.constantFrom('fixed-window' as const, 'sliding-window' as const),
  unit: fc.constantFrom<'minute' | 'hour' | 'day'>('minute', 'hour', 'day'),
  timeZone: fc.constantFrom('UTC', 'Europe/Paris', 'Australia/Lord_Howe', 'America/New_York', 'Asia/Kathmandu'),
  // Around a DST change (the last Sunday of March / October, and Lord Howe's first Sunday of April),
  // hours before it and ten minutes before it (so that minute periods cross it too).
  startMs: fc.constantFrom(
    Date.UTC(2026, 2, 28, 20), Date.UTC(2026, 9, 24, 20), Date.UTC(2026, 3, 4, 12), Date.UTC(2026, 2, 8, 4), Date.UTC(2026, 10, 1, 3),
    Date.UTC(2026, 2, 29, 0, 50), Date.UTC(2026, 9, 25, 0, 50), Date.UTC(2026, 3, 4, 14, 50), Date.UTC(2026, 2, 8, 6, 50), Date.UTC(2026, 10, 1, 5, 50),
  ),
  limit: fc.integer({ min: 1, max: 8 }),
  ops: fc.array(
    fc.record({
      dt: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 0.05, noNaN: true }), fc.double({ min: 0, max: 1.5, noNaN: true })),
      cost: fc.constantFrom(0, 1, 1, 1, 2),
      reserve: fc.boolean(),
      maxWaitFraction: fc.double({ min: 0, max: 3, noNaN: true }),
    }),
    { minLength: 1, maxLength: 80 },
  ),
});

describe('algorithm invariants with calendar windows (property-based)', () => {
  it('at most L per period (2L − 1 in a shortest period for sliding); retryAfterMs is exact', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const { clock, store } = storeAt(s.startMs);
        const nominal = NOMINAL[s.unit];
        const cal = calendarOf(s.unit, s.timeZone);
        const request: RateLimitRequest = { key: 'k', limit: s.limit, calendar: s.unit, timeZone: s.timeZone, algorithm: s.algorithm };
        const executed: { at: number; cost: number }[] = [];
        for (const op of s.ops as Op[]) {
          clock.advance(op.dt * nominal);
          const cost = Math.min(op.cost, s.limit);
          const req = { ...request, cost };
          const before = store.getState('default', 'k');
          const now = clock.now();
          const d = op.reserve ? store.reserve(req, Math.min(86_400_000, op.maxWaitFraction * nominal)) : { ...store.allow(req), waitMs: 0 };
          if (d.allowed && cost > 0) executed.push({ at: now + d.waitMs, cost });
          if (!d.allowed && cost > 0) {
            expect(decide(before, req, now + d.retryAfterMs).decision.allowed).toBe(true);
            if (d.retryAfterMs > 1) expect(decide(before, req, now + d.retryAfterMs * 0.999).decision.allowed).toBe(false);
          }
        }
        const perPeriod = new Map<number, number>();
        for (const e of executed) perPeriod.set(cal.start(e.at), (perPeriod.get(cal.start(e.at)) ?? 0) + e.cost);
        for (const [start, sum] of perPeriod) if (sum > s.limit) throw new Error(`period ${new Date(start).toISOString()}: ${sum} > ${s.limit}`);
        if (s.algorithm === 'sliding-window') {
          executed.sort((a, b) => a.at - b.at);
          const shortest = s.timeZone === 'Australia/Lord_Howe' && s.unit === 'hour' ? HOUR / 2 : s.unit === 'day' ? 23 * HOUR : nominal;
          for (let i = 0; i < executed.length; i++) {
            let sum = 0;
            for (let j = i; j < executed.length && executed[j]!.at - executed[i]!.at < shortest; j++) sum += executed[j]!.cost;
            if (sum > 2 * s.limit - 1) throw new Error(`${sum} units within ${shortest} ms exceed 2L - 1`);
          }
        }
      }),
      { numRuns: RUNS * 2, ...REPLAY },
    );
  });
});
