import { describe, expect, it } from 'vitest';
import { RateLimitError } from '../../src/common/errors.js';
import { newStore } from './helpers.js';

const req = (key: string, action = 'a') => ({ key, action, limit: 5, windowMs: 1000 });

describe('LimiterStore', () => {
  it('counts decisions, allowed, rejected and keys', () => {
    const { store } = newStore();
    for (let i = 0; i < 7; i++) store.allow(req('u'));
    store.allow(req('v'));
    expect(store.stats()).toEqual({ decisions: 8, allowed: 6, rejected: 2, keys: 2, evictions: 0, expired: 0, shapeMismatches: 0, shapeConversions: 0, implausibleStates: 0 });
  });

  it('never holds more than maxKeys: a key not used since the CLOCK hand passed is evicted and counted', () => {
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

  it('a key used between passes of the CLOCK hand survives a stream of one-off keys', () => {
    const { store } = newStore({ maxKeys: 4, initialKeys: 4 });
    for (let i = 0; i < 500; i++) {
      store.allow({ ...req('hot'), limit: 1_000_000 });
      store.allow(req(`cold-${i}`));
    }
    expect(store.getState('a', 'hot')).toBeDefined();
    expect(store.keyCount).toBe(4);
    expect(store.stats().evictions).toBe(497);
  });

  it('the sweeper drops only keys whose state is back to fresh, with bounded work per call', () => {
    const { store, clock } = newStore({ initialKeys: 4, freshKeyGraceMs: 0 });
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
    const { store, clock } = newStore({ freshKeyGraceMs: 0 });
    for (let i = 0; i < 5; i++) store.allow(req('u'));
    expect(store.allow(req('u')).allowed).toBe(false);
    clock.advance(1000);
    store.sweep(100); // the first pass finds it used since the last one
    store.sweep(100);
    expect(store.keyCount).toBe(0);
    const d = store.allow(req('u'));
    expect(d.allowed).toBe(true);
    expect(d.remaining).toBe(4);
  });

  it('a key in use is not dropped while its state equals a fresh one: only once a pass found it unused', () => {
    const { store, clock } = newStore({ freshKeyGraceMs: 0 });
    for (let i = 0; i < 3; i++) store.allow(req(`g${i}`));
    clock.advance(1000); // every bucket is full again: equivalent to fresh
    expect(store.sweep(3)).toBe(0); // one pass: each was used since the last one
    store.allow(req('g1')); // g1 is used again, and full again a second later
    clock.advance(1000);
    expect(store.sweep(3)).toBe(2);
    expect(store.getState('a', 'g1')).toBeDefined();
    expect(store.sweep(3)).toBe(1);
    expect(store.keyCount).toBe(0);
    expect(store.stats().expired).toBe(3);
  });

  it('one sweep call makes at most one lap, however large its budget: a key used since the last pass survives it', () => {
    const { store, clock } = newStore({ freshKeyGraceMs: 0 });
    for (let i = 0; i < 3; i++) store.allow(req(`g${i}`));
    clock.advance(1000); // every bucket is full again: equivalent to fresh
    // A budget of 10,000 slots over 3 keys once lapped the store 3,333 times, clearing each
    // key's used mark on one lap and dropping it on the next.
    expect(store.sweep(10_000)).toBe(0);
    expect(store.keyCount).toBe(3);
    expect(store.sweep(10_000)).toBe(3);
  });

  it('a peer state waiting to be merged keeps its key through sweeps, counts at the next decision, and never reaches a key that reuses the slot', () => {
    const fixed = (key: string) => ({ ...req(key), algorithm: 'fixed-window' as const, windowMs: 60_000 });
    const { store, clock } = newStore({ freshKeyGraceMs: 0 });
    const { store: peer } = newStore({ freshKeyGraceMs: 0 });
    for (let i = 0; i < 5; i++) peer.allow(fixed('x')); // the peer used x up
    const used = new Float64Array(4);
    const algorithm = peer.readEntry('a', 'x', used);
    store.allow({ ...fixed('x'), cost: 0 }); // a peek stores nothing
    store.allow({ ...fixed('x'), limit: 1_000_000 }); // held here, its own state far from used up...
    store.setRemaining({ ...fixed('x'), limit: 5 }, 5); // ...and then fresh again
    store.importEntry('a', 'x', algorithm as 0, used, 0, 'merge');
    clock.advance(10);
    for (let i = 0; i < 3; i++) store.sweep(100); // fresh here, but the peer's count waits: kept
    expect(store.allow(fixed('x')).allowed).toBe(false);
    // A merge waiting on a key that goes (deleted) does not follow its slot to the next key.
    store.importEntry('a', 'x', algorithm as 0, used, 0, 'merge');
    expect(store.delete('a', 'x')).toBe(true);
    expect(store.allow(fixed('y')).remaining).toBe(4);
  });

  it('keeps a key for freshKeyGraceMs after its state is fresh again, so a key reused at a slow pace is not recreated each call', () => {
    const { store, clock } = newStore({ freshKeyGraceMs: 2000 });
    const generous = { ...req('slow'), limit: 1_000_000 }; // full again a millisecond after each call
    store.allow(generous);
    clock.advance(10);
    expect(store.sweep(10)).toBe(0); // used since the last pass
    clock.advance(1500);
    expect(store.sweep(10)).toBe(0); // unused for a pass, but fresh for less than 2 s
    expect(store.getState('a', 'slow')).toBeDefined();
    clock.advance(600);
    expect(store.sweep(10)).toBe(1); // fresh for 2.1 s and unused: dropped
    expect(store.keyCount).toBe(0);
  });

  it('reuses freed slots instead of growing', () => {
    const { store, clock } = newStore({ initialKeys: 8, maxKeys: 1000, freshKeyGraceMs: 0 });
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 8; i++) store.allow(req(`r${round}-${i}`));
      clock.advance(1000);
      store.sweep(64);
      store.sweep(64); // a key goes on the pass after the one that found it used
    }
    expect(store.keyCount).toBe(0);
    expect(store.stats().expired).toBe(400);
    expect(store.slotCount).toBeLessThanOrEqual(16);
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

describe('LimiterStore state transfer', () => {
  it('drainChanges lists each changed key once, and only allowed decisions count as changes', () => {
    const { store } = newStore({ trackChanges: true });
    for (let i = 0; i < 7; i++) store.allow(req('u'));
    store.allow(req('v'));
    store.allow({ ...req('w'), cost: 0 });
    const seen: string[] = [];
    store.drainChanges((action, key) => seen.push(`${action}/${key}`));
    expect(seen.sort()).toEqual(['a/u', 'a/v']);
    store.allow(req('u')); // rejected: nothing changed
    expect(store.drainChanges(() => undefined)).toBe(0);
  });

  it('a bounded drain keeps the rest for the next call', () => {
    const { store } = newStore({ trackChanges: true });
    for (let i = 0; i < 10; i++) store.allow(req(`k${i}`));
    expect(store.drainChanges(() => undefined, 4)).toBe(4);
    expect(store.drainChanges(() => undefined, 4)).toBe(4);
    expect(store.drainChanges(() => undefined)).toBe(2);
  });

  it('importEntry replace copies a state; merge into a held key applies conservatively at its next decision', () => {
    const a = newStore();
    const b = newStore();
    for (let i = 0; i < 3; i++) a.store.allow(req('u')); // 2 left in a
    for (let i = 0; i < 4; i++) b.store.allow(req('u')); // 1 left in b
    const cells = new Float64Array(4);
    const algorithm = a.store.readEntry('a', 'u', cells);
    expect(algorithm).toBe(0);
    const c = newStore();
    c.store.importEntry('a', 'u', 0, cells, 0, 'replace');
    expect(c.store.allow({ ...req('u'), cost: 0 }).remaining).toBe(2);
    b.store.importEntry('a', 'u', 0, cells, 0, 'merge');
    expect(b.store.allow({ ...req('u'), cost: 0 }).remaining).toBe(1); // min(2, 1)
    a.store.importEntry('a', 'u', 0, (() => { const x = new Float64Array(4); b.store.readEntry('a', 'u', x); return x; })(), 0, 'merge');
    expect(a.store.allow({ ...req('u'), cost: 0 }).remaining).toBe(1);
    expect(a.store.readEntry('a', 'nobody', cells)).toBe(-1);
  });

  it('several states merged into a held key before its next decision all count: the most spent wins, whatever order they came in', () => {
    const stateAfter = (used: number): Float64Array => {
      const { store } = newStore();
      for (let i = 0; i < used; i++) store.allow(req('u'));
      const cells = new Float64Array(4);
      store.readEntry('a', 'u', cells);
      return cells;
    };
    for (const order of [[4, 1], [1, 4], [2, 4, 1, 3]]) {
      const { store } = newStore();
      store.allow(req('u')); // 4 left here
      for (const used of order) store.importEntry('a', 'u', 0, stateAfter(used), 0, 'merge');
      expect(store.allow({ ...req('u'), cost: 0 }).remaining).toBe(1); // min over 4, 1, 4, 3, 2
    }
  });

  it('forEachEntry(withPending) and forEachPendingState visit the states waiting to be merged, so a key handed on takes them along', () => {
    const { store } = newStore();
    store.allow(req('u'));
    const other = newStore();
    for (let i = 0; i < 4; i++) other.store.allow(req('u'));
    const cells = new Float64Array(4);
    other.store.readEntry('a', 'u', cells);
    store.importEntry('a', 'u', 0, cells, 0, 'merge');
    const seen: number[] = [];
    const visit = (_a: string, _k: string, _alg: number, c: Float64Array, base: number): void => {
      const probe = newStore();
      probe.store.importEntry('a', 'u', 0, c, base, 'replace');
      seen.push(probe.store.allow({ ...req('u'), cost: 0 }).remaining);
    };
    store.forEachEntry(visit);
    expect(seen).toEqual([4]);
    seen.length = 0;
    store.forEachEntry(visit, 0, Infinity, true);
    expect(seen).toEqual([4, 1]);
    seen.length = 0;
    store.forEachPendingState('a', 'u', visit);
    expect(seen).toEqual([1]);
    store.allow(req('u')); // a decision merges it (a peek would not): nothing waits any more
    seen.length = 0;
    store.forEachPendingState('a', 'u', visit);
    expect(seen).toEqual([]);
  });

  it('forEachEntry visits every key; delete drops one', () => {
    const { store } = newStore();
    for (let i = 0; i < 5; i++) store.allow(req(`k${i}`));
    expect(store.delete('a', 'k2')).toBe(true);
    expect(store.delete('a', 'k2')).toBe(false);
    const keys: string[] = [];
    store.forEachEntry((_a, key) => keys.push(key));
    expect(keys.sort()).toEqual(['k0', 'k1', 'k3', 'k4']);
  });
});
