import { describe, expect, it } from 'vitest';
import { RateLimitError } from '../../src/common/errors.js';
import { createLimiter } from '../../src/limiter/create.js';
import { requestLimits } from '../../src/limiter/limits.js';
import type { RateLimitRequest } from '../../src/limiter/types.js';
import { newStore } from './helpers.js';

const good: RateLimitRequest = { key: 'user-1', action: 'login', limit: 10, windowMs: 1000 };

/** Each case: a request that must be refused, the field the error names, and a phrase of its message. */
const bad: [string, Record<string, unknown>, string, RegExp][] = [
  ['empty key', { key: '' }, 'key', /non-empty string/],
  ['non-string key', { key: 42 }, 'key', /non-empty string/],
  ['key too long', { key: 'k'.repeat(requestLimits.maxKeyBytes + 1) }, 'key', /1024 bytes/],
  ['key too long in UTF-8 only', { key: 'é'.repeat(513) }, 'key', /1024 bytes/],
  ['empty action', { action: '' }, 'action', /non-empty/],
  ['non-string action', { action: 7 }, 'action', /non-empty/],
  ['action too long', { action: 'a'.repeat(257) }, 'action', /256 bytes/],
  ['zero limit', { limit: 0 }, 'limit', /positive safe integer/],
  ['fractional limit', { limit: 1.5 }, 'limit', /positive safe integer/],
  ['unsafe limit', { limit: 2 ** 60 }, 'limit', /positive safe integer/],
  ['string limit', { limit: '10' }, 'limit', /positive safe integer/],
  ['window below 1 ms', { windowMs: 0.5 }, 'windowMs', /from 1 to 86400000/],
  ['window above 24 h', { windowMs: 86_400_001 }, 'windowMs', /24 h/],
  ['window NaN', { windowMs: Number.NaN }, 'windowMs', /finite/],
  ['window Infinity', { windowMs: Infinity }, 'windowMs', /finite/],
  ['weight zero', { weight: 0 }, 'weight', /> 0/],
  ['weight negative', { weight: -1 }, 'weight', /> 0/],
  ['weight NaN', { weight: Number.NaN }, 'weight', /finite/],
  ['weight too large', { weight: requestLimits.maxWeight * 2 }, 'weight', /1000000/],
  ['weight makes the limit zero', { limit: 1, weight: 0.5 }, 'weight', /below 1/],
  ['negative cost', { cost: -1 }, 'cost', /non-negative integer/],
  ['fractional cost', { cost: 0.5 }, 'cost', /non-negative integer/],
  ['cost above the limit', { cost: 11 }, 'cost', /could never be allowed/],
  ['cost above weighted burst', { burst: 3, cost: 4 }, 'cost', /burst/],
  ['global not a boolean', { global: 'yes' as unknown as boolean }, 'global', /boolean/],
  ['unknown algorithm', { algorithm: 'leaky' }, 'algorithm', /unknown algorithm/],
  ['burst on a window algorithm', { algorithm: 'fixed-window', burst: 5 }, 'burst', /token-bucket and gcra/],
  ['fractional burst', { burst: 2.5 }, 'burst', /positive safe integer/],
];

describe('request validation', () => {
  it.each(bad)('%s is refused with INVALID_ARGUMENT naming the field', (_name, patch, field, message) => {
    const { store } = newStore();
    store.allow(good); // some state exists, and must not change
    const before = store.getState('login', 'user-1');
    const statsBefore = store.stats();
    const request = { ...good, ...patch } as unknown as RateLimitRequest;
    let caught: unknown;
    try {
      store.allow(request);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(RateLimitError);
    const error = caught as RateLimitError;
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
    expect(store.getState('login', 'user-1')).toEqual(before);
    expect(store.stats()).toEqual(statsBefore);
  });

  it('refuses a non-object request', () => {
    const { store } = newStore();
    expect(() => store.allow(null as unknown as RateLimitRequest)).toThrow(/must be an object/);
  });

  it('accepts keys at the documented maximum, and non-ASCII keys', () => {
    const { store } = newStore();
    expect(store.allow({ ...good, key: 'k'.repeat(requestLimits.maxKeyBytes) }).allowed).toBe(true);
    expect(store.allow({ ...good, key: 'ü'.repeat(512) }).allowed).toBe(true);
    expect(store.allow({ ...good, key: '__proto__' }).allowed).toBe(true);
  });

  it('the call-shape wrappers validate too', () => {
    const limiter = createLimiter();
    try {
      expect(() => limiter.rateLimit('', 'x', 5, 1)).toThrow(RateLimitError);
      expect(() => limiter.allowRequest('u', 'e', -5, 1)).toThrow(/limit/);
      expect(() => limiter.allowRate('u', 'a', 0, 10, 1)).toThrow(/ratePerSecond/);
      expect(() => limiter.allowRate('u', 'a', 0.01, 10, 1)).toThrow(/less than one request/);
      expect(() => limiter.allowRate('u', 'a', 1, Number.NaN, 1)).toThrow(/windowSeconds/);
      expect(() => limiter.reserve(good, { maxWaitMs: -1 })).toThrow(/maxWaitMs/);
    } finally {
      limiter.close();
    }
  });

  it('bad options are refused at construction with a clear message', () => {
    expect(() => createLimiter({ maxKeys: 0 })).toThrow(/maxKeys/);
    expect(() => createLimiter({ sweepIntervalMs: 0 })).toThrow(/sweepIntervalMs/);
    expect(() => createLimiter({ freshKeyGraceMs: -1 })).toThrow(/freshKeyGraceMs/);
    expect(() => createLimiter({ maxActions: 70_000 })).toThrow(/maxActions/);
  });
});
