import { describe, expect, it } from 'vitest';
import { RateLimitError } from '../../src/common/errors.js';
import { newStore } from './helpers.js';

const req = (key: string, action = 'a') => ({ key, action, limit: 5, windowMs: 1000 });

describe('LimiterStore', () => {
  it('counts decisions, allowed, rejected and keys', () => {
    const { store } = newStore();
    for (let i = 0; i < 7; i++) store.allow(req('u'));
    store.allow(req('v'));
    expect(store.stats()).toEqual({ decisions: 8, allowed: 6, rejected: 2, keys: 2, evictions: 0, expired: 0 });
  });

  it('never holds more than maxKeys: the least recently used key is evicted and counted', () => {
    const { store } = newStore({ maxKeys: 3, initialKeys: 1 });
    store.allow(req('a'));
    store.allow(req('b'));
    store.allow(req('c'));
    store.allow(req('a')); // a is now the most recent; b is the least
    store.allow(req('d'));
    expect(store.keyCount).toBe(3);
    expect(store.getState('a', 'b')).toBeUndefined();
    expect(store.getState('a', 'a')).toBeDefined();
    expect(store.getState('a', 'c')).toBeDefined();
    expect(store.stats().evictions).toBe(1);
    for (let i = 0; i < 1000; i++) store.allow(req(`k${i}`, `act${i % 7}`));
    expect(store.keyCount).toBe(3);
    expect(store.stats().evictions).toBe(1001);
  });

  it('the sweeper drops only keys whose state is back to fresh, with bounded work per call', () => {
    const { store, clock } = newStore({ initialKeys: 4 });
    for (let i = 0; i < 100; i++) store.allow(req(`k${i}`));
    // Not yet fresh: a token bucket refills 5 per second, one token was taken.
    expect(store.sweep(1000)).toBe(0);
    clock.advance(150);
    store.allow(req('k0')); // k0 is busy again
    clock.advance(100); // 250 ms after the first calls: everyone else has refilled
    expect(store.sweep(10)).toBeLessThanOrEqual(10);
    let removed = 10;
    for (let i = 0; i < 20 && store.keyCount > 1; i++) removed += store.sweep(10);
    expect(store.keyCount).toBe(1);
    expect(store.getState('a', 'k0')).toBeDefined();
    expect(store.stats().expired).toBe(99);
    expect(store.stats().evictions).toBe(0);
  });

  it('an evicted key comes back fresh; a swept key comes back equivalent to how it left', () => {
    const { store, clock } = newStore();
    for (let i = 0; i < 5; i++) store.allow(req('u'));
    expect(store.allow(req('u')).allowed).toBe(false);
    clock.advance(1000);
    store.sweep(100);
    expect(store.keyCount).toBe(0);
    const d = store.allow(req('u'));
    expect(d.allowed).toBe(true);
    expect(d.remaining).toBe(4);
  });

  it('reuses freed slots instead of growing', () => {
    const { store, clock } = newStore({ initialKeys: 8, maxKeys: 1000 });
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 8; i++) store.allow(req(`r${round}-${i}`));
      clock.advance(1000);
      store.sweep(64);
    }
    expect(store.keyCount).toBe(0);
    expect(store.stats().expired).toBe(400);
  });

  it('keys that look like prototype members are ordinary keys', () => {
    const { store } = newStore();
    for (const key of ['__proto__', 'constructor', 'hasOwnProperty', 'toString']) {
      for (let i = 0; i < 5; i++) expect(store.allow(req(key, '__proto__')).allowed).toBe(true);
      expect(store.allow(req(key, '__proto__')).allowed).toBe(false);
    }
    expect(({} as Record<string, unknown>).allowed).toBeUndefined();
  });

  it('bounds the number of distinct actions with a clear error', () => {
    const { store } = newStore({ maxActions: 2 });
    store.allow(req('u', 'one'));
    store.allow(req('u', 'two'));
    let caught: unknown;
    try {
      store.allow(req('u', 'three'));
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(RateLimitError);
    expect((caught as RateLimitError).code).toBe('RESOURCE_EXHAUSTED');
    expect(store.stats().decisions).toBe(2);
  });

  it('isAllowed agrees with allow', () => {
    const a = newStore().store;
    const b = newStore().store;
    for (let i = 0; i < 20; i++) expect(a.isAllowed(req('x'))).toBe(b.allow(req('x')).allowed);
  });
});
