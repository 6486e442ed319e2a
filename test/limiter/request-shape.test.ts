import { describe, expect, it } from 'vitest';
import { RingLimitError } from '../../src/common/errors.js';
import { peerStateBounds } from '../../src/limiter/peer-state.js';
import type { LimiterStore } from '../../src/limiter/store.js';
import { AlgorithmId, type RateLimitRequest } from '../../src/limiter/types.js';
import { ALL, newStore } from './helpers.js';

const HOUR = 3_600_000;

/** allow(), with a refused shape (FAILED_PRECONDITION) counted as not allowed. */
function admitted(store: LimiterStore, request: RateLimitRequest): boolean {
  try {
    return store.allow(request).allowed;
  } catch (error) {
    expect(error).toBeInstanceOf(RingLimitError);
    expect((error as RingLimitError).code).toBe('FAILED_PRECONDITION');
    return false;
  }
}

function cellsOf(store: LimiterStore, key = 'k'): number[] {
  const into = new Float64Array(4);
  const algorithm = store.readEntry('default', key, into);
  return [algorithm, ...into];
}

describe('issue 28 finding 4: a request’s shape never resets a key', () => {
  it('alternating the algorithm every 5 calls at 5 an hour admits 5 of 40, not 40', () => {
    const { store, clock } = newStore();
    let allowed = 0;
    for (let i = 0; i < 40; i++) {
      clock.advance(10);
      if (admitted(store, { key: 'k', limit: 5, windowMs: HOUR, algorithm: ALL[Math.floor(i / 5) % ALL.length]! })) allowed++;
    }
    expect(allowed).toBe(5);
    // The other algorithms' 30 calls are refused for their shape; the token bucket's later 5 for its limit.
    expect(store.stats().shapeMismatches).toBe(30);
  });

  it.each(ALL)('a cost-0 peek as another algorithm does not reset a used-up %s key (refused, nothing written)', (algorithm) => {
    const { store, clock } = newStore();
    const request: RateLimitRequest = { key: 'k', limit: 5, windowMs: HOUR, algorithm };
    for (let i = 0; i < 5; i++) expect(store.allow(request).allowed).toBe(true);
    clock.advance(1);
    const before = cellsOf(store);
    for (const other of ALL.filter((a) => a !== algorithm)) {
      expect(() => store.allow({ ...request, algorithm: other, cost: 0 })).toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION', field: 'algorithm' }));
      expect(() => store.inspect({ ...request, algorithm: other })).toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION' }));
    }
    expect(cellsOf(store)).toEqual(before);
    expect(store.allow(request).allowed).toBe(false);
  });

  it('a cost-0 peek of the same shape writes nothing either', () => {
    const { store, clock } = newStore();
    const request: RateLimitRequest = { key: 'k', limit: 5, windowMs: 1000, algorithm: 'sliding-window' };
    store.allow(request);
    const before = cellsOf(store);
    const mutations = store.mutations;
    clock.advance(2500); // a step would move the windows on
    expect(store.allow({ ...request, cost: 0 }).remaining).toBe(5);
    expect(cellsOf(store)).toEqual(before);
    expect(store.mutations).toBe(mutations);
  });

  it('rotating timeZone on a calendar day window admits at most the limit (5 of 30, was 7)', () => {
    const { store, clock } = newStore();
    const zones = ['UTC', 'Pacific/Kiritimati', 'Pacific/Pago_Pago', 'Asia/Kolkata', 'America/New_York', 'Europe/Paris'];
    let allowed = 0;
    for (let i = 0; i < 30; i++) {
      clock.advance(1000);
      if (admitted(store, { key: 'k', limit: 5, calendar: 'day', timeZone: zones[i % zones.length]! })) allowed++;
    }
    expect(allowed).toBeLessThanOrEqual(5);
    expect(() => store.allow({ key: 'k', limit: 5, calendar: 'day', timeZone: 'Europe/Paris' })).toThrow(
      expect.objectContaining({ code: 'FAILED_PRECONDITION', field: 'timeZone' }),
    );
    expect(() => store.allow({ key: 'k', limit: 5, calendar: 'hour' })).toThrow(expect.objectContaining({ field: 'calendar' }));
    expect(() => store.allow({ key: 'k', limit: 5, windowMs: HOUR, algorithm: 'fixed-window' })).toThrow(expect.objectContaining({ field: 'calendar' }));
  });

  it('another windowMs is refused while the key is in use, and taken once its state is fresh', () => {
    const { store, clock } = newStore();
    const request: RateLimitRequest = { key: 'k', limit: 5, windowMs: 60_000, algorithm: 'fixed-window' };
    store.allow(request);
    expect(() => store.allow({ ...request, windowMs: 1000 })).toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION', field: 'windowMs' }));
    clock.advance(60_000);
    expect(store.allow({ ...request, windowMs: 1000 }).remaining).toBe(4);
  });

  it('raising the limit in one request does not refill a used-up token bucket', () => {
    const { store, clock } = newStore();
    const request: RateLimitRequest = { key: 'k', limit: 5, windowMs: HOUR };
    for (let i = 0; i < 5; i++) store.allow(request);
    clock.advance(60_000); // 1/12 of a token at 5 an hour; 277 at a million an hour
    // The minute passed refills at the slower rate, and a larger bucket adds no tokens at once.
    const raised = store.allow({ ...request, limit: 1_000_000 });
    expect(raised.allowed).toBe(false);
    expect(raised.remaining).toBe(0);
    expect(store.allow(request).allowed).toBe(false);
    clock.advance(HOUR / 5); // one token at 5 an hour
    expect(store.allow(request).allowed).toBe(true);
    expect(store.allow(request).allowed).toBe(false);
  });

  it('GCRA keeps the units consumed when the rate changes: a lower rate with the same burst does not refill', () => {
    const { store } = newStore();
    const request: RateLimitRequest = { key: 'k', limit: 100, burst: 100, windowMs: HOUR, algorithm: 'gcra' };
    for (let i = 0; i < 100; i++) expect(store.allow(request).allowed).toBe(true);
    // 1 an hour with a burst of 100 read the used-up key as 99 left before.
    expect(store.allow({ ...request, limit: 1, cost: 0 }).remaining).toBe(0);
    expect(store.allow({ ...request, limit: 1 }).allowed).toBe(false);
    // A raised burst gives exactly the increase.
    expect(store.allow({ ...request, burst: 110, cost: 0 }).remaining).toBe(10);
  });

  it('a window’s consumed units stay when the limit changes: remaining grows by the increase only', () => {
    const { store } = newStore();
    const request: RateLimitRequest = { key: 'k', limit: 5, windowMs: HOUR, algorithm: 'fixed-window' };
    for (let i = 0; i < 5; i++) store.allow(request);
    expect(store.allow({ ...request, limit: 8, cost: 0 }).remaining).toBe(3);
  });

  it('an operator’s Set re-describes a key in use', () => {
    const { store } = newStore();
    store.allow({ key: 'k', limit: 5, windowMs: HOUR });
    expect(store.setRemaining({ key: 'k', limit: 5, windowMs: HOUR, algorithm: 'fixed-window' }, 2).remaining).toBe(2);
    expect(store.allow({ key: 'k', limit: 5, windowMs: HOUR, algorithm: 'fixed-window' }).remaining).toBe(1);
  });
});

describe('issue 28 finding 6: a peer’s state is bounded by the limit it belongs to', () => {
  const bucket: RateLimitRequest = { key: 'k', limit: 5, windowMs: HOUR };

  it.each(['merge', 'replace'] as const)('a %s of −9e15 tokens is clamped at the first decision, counted, and the key recovers within the bound', (mode) => {
    const { store, clock } = newStore();
    const now = clock.now();
    store.importEntry('default', 'k', AlgorithmId.TokenBucket, new Float64Array([-9e15, now, 5 / HOUR, now + 1e20]), 0, mode);
    const d = store.allow(bucket);
    expect(d.allowed).toBe(false);
    expect(store.stats().implausibleStates).toBe(1);
    // At most maxWaitMs of refill owed behind a full bucket: a day and an hour, not 2.5 × 10^12 years.
    const boundMs = peerStateBounds.maxWaitMs + HOUR;
    expect(d.retryAfterMs).toBeLessThanOrEqual(boundMs + HOUR / 5);
    clock.advance(d.retryAfterMs);
    expect(store.allow(bucket).allowed).toBe(true);
  });

  it('a held key merging a −9e15 hand-off clamps it (counted) and keeps deciding', () => {
    const { store, clock } = newStore();
    store.allow(bucket);
    const now = clock.now();
    store.importEntry('default', 'k', AlgorithmId.TokenBucket, new Float64Array([-9e15, now, 0, now]), 0, 'merge');
    const d = store.allow(bucket);
    expect(d.allowed).toBe(false);
    expect(store.stats().implausibleStates).toBe(1);
    expect(d.retryAfterMs).toBeLessThanOrEqual(peerStateBounds.maxWaitMs + 2 * HOUR);
  });

  it('huge values are cut to what the key can hold; a negative count is dropped at import and counted', () => {
    const { store, clock } = newStore();
    const now = clock.now();
    // A bucket of 9e15 tokens decides as a full bucket of 5.
    store.importEntry('default', 'k', AlgorithmId.TokenBucket, new Float64Array([9e15, now, 0, now]), 0, 'merge');
    let allowed = 0;
    for (let i = 0; i < 10; i++) if (store.allow(bucket).allowed) allowed++;
    expect(allowed).toBe(5);
    // A count of 9e15 in a fixed window (a lock-out for ever) is cut to the queue a day of reservations can hold.
    const window: RateLimitRequest = { key: 'w', limit: 5, windowMs: HOUR, algorithm: 'fixed-window' };
    store.importEntry('default', 'w', AlgorithmId.FixedWindow, new Float64Array([Math.floor(now / HOUR) * HOUR, 9e15, 0, now + HOUR]), 0, 'merge');
    const refused = store.allow(window);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(peerStateBounds.maxWaitMs * 2 + 4 * HOUR);
    expect(store.stats().implausibleStates).toBe(1);
    // A negative count would admit without limit: dropped, counted, the key not created.
    store.importEntry('default', 'n', AlgorithmId.FixedWindow, new Float64Array([now, -9e15, 0, now]), 0, 'merge');
    expect(store.has('default', 'n')).toBe(false);
    expect(store.stats().implausibleStates).toBe(2);
    // A window that starts a year from now (a lock-out until then) starts at the latest plausible time.
    store.importEntry('default', 'f', AlgorithmId.FixedWindow, new Float64Array([now + 365 * 24 * HOUR, 5, 0, now + 366 * 24 * HOUR]), 0, 'merge');
    const future = store.allow({ ...window, key: 'f' });
    expect(future.retryAfterMs).toBeLessThanOrEqual(HOUR + peerStateBounds.clockSlackMs);
    expect(store.stats().implausibleStates).toBe(3);
  });

  it('a plausible imported state is taken as is, and its window comes from the first request', () => {
    const { store } = newStore();
    const source = newStore().store;
    const request: RateLimitRequest = { key: 'k', limit: 5, windowMs: HOUR, algorithm: 'sliding-window' };
    for (let i = 0; i < 3; i++) source.allow(request);
    source.forEachEntry((action, key, algorithm, cells, base) => store.importEntry(action, key, algorithm, cells, base, 'merge'));
    expect(store.allow({ ...request, cost: 0 }).remaining).toBe(2);
    expect(store.allow(request).remaining).toBe(1);
    expect(store.stats().implausibleStates).toBe(0);
    expect(() => store.allow({ ...request, windowMs: 60_000 })).toThrow(expect.objectContaining({ field: 'windowMs' }));
  });
});

describe('issue 28: a policy change of a key’s shape converts it, keeping no more than it had left', () => {
  const HOUR_MS = 3_600_000;
  const document = (algorithm: string, window: string) => ({ defaults: { api: { limit: 5, window, algorithm } } });

  it('fixed window to token bucket and to another window: nothing handed back, no error', async () => {
    const { Policies } = await import('../../src/limiter/policies.js');
    const { store, clock } = newStore();
    store.policies = new Policies(document('fixed-window', '1h'));
    // The caller's own fields are overridden by the policies, as before.
    for (let i = 0; i < 4; i++) expect(store.allow({ key: 'k', action: 'api', algorithm: 'gcra', limit: 1000, windowMs: 1000 }).allowed).toBe(true);
    clock.advance(60_000);
    store.policies = new Policies(document('token-bucket', '1h'));
    expect(store.allow({ key: 'k', action: 'api', cost: 0 }).remaining).toBe(1);
    expect(store.getState('api', 'k')?.algorithm).toBe('fixed-window'); // the peek converted a copy only
    expect(store.allow({ key: 'k', action: 'api' }).allowed).toBe(true);
    expect(store.allow({ key: 'k', action: 'api' }).allowed).toBe(false);
    expect(store.getState('api', 'k')?.algorithm).toBe('token-bucket');
    expect(store.stats()).toMatchObject({ shapeConversions: 1, shapeMismatches: 0 });
    store.policies = new Policies(document('token-bucket', '1m'));
    expect(store.allow({ key: 'k', action: 'api' }).allowed).toBe(false);
    expect(store.stats().shapeConversions).toBe(2);
    // A window the policies do not give is still the caller's mismatch: refused.
    store.policies = new Policies({ defaults: { api: { limit: 5, algorithm: 'fixed-window' } } });
    expect(() => store.allow({ key: 'k', action: 'api', windowMs: HOUR_MS })).toThrow(expect.objectContaining({ code: 'FAILED_PRECONDITION', field: 'algorithm' }));
  });
});
