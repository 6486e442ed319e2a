import { describe, expect, it } from 'vitest';
import { ReplayGuard } from '../../src/gossip/replay-guard.js';

const NOW = 1_000_000;
const stamp = (seq: number, epoch = 1, ts = NOW) => ({ epoch, seq, ts });

describe('ReplayGuard', () => {
  it('accepts each sequence number once, in any order within the window, and refuses copies', () => {
    const guard = new ReplayGuard({ maxClockSkewMs: 30_000, maxSenders: 10 });
    expect(guard.accept('a', stamp(5), NOW)).toBe('ok');
    expect(guard.accept('a', stamp(5), NOW)).toBe('replayed');
    expect(guard.accept('a', stamp(3), NOW)).toBe('ok'); // reordered, still in the window
    expect(guard.accept('a', stamp(3), NOW)).toBe('replayed');
    expect(guard.accept('a', stamp(40), NOW)).toBe('ok');
    expect(guard.accept('a', stamp(8), NOW)).toBe('replayed'); // fell out of the 32-packet window
    expect(guard.accept('a', stamp(39), NOW)).toBe('ok');
    expect(guard.accept('b', stamp(5), NOW)).toBe('ok'); // another sender, its own sequence
  });

  it('refuses a stamp too far from the clock, and an old epoch once a newer one spoke', () => {
    const guard = new ReplayGuard({ maxClockSkewMs: 30_000, maxSenders: 10 });
    expect(guard.accept('a', stamp(1, 1, NOW - 31_000), NOW)).toBe('stale');
    expect(guard.accept('a', stamp(1, 1, NOW + 31_000), NOW)).toBe('stale');
    expect(guard.accept('a', stamp(900, 1, NOW - 1_000), NOW)).toBe('ok');
    expect(guard.accept('a', stamp(1, 2, NOW), NOW)).toBe('ok'); // restarted: a new epoch, later
    expect(guard.accept('a', stamp(901, 1, NOW - 900), NOW)).toBe('replayed'); // the old epoch, captured earlier
    expect(guard.accept('a', stamp(2, 2, NOW + 1), NOW)).toBe('ok');
  });

  it('remembers at most maxSenders senders, forgetting the one heard from least recently', () => {
    const guard = new ReplayGuard({ maxClockSkewMs: 30_000, maxSenders: 2 });
    guard.accept('a', stamp(1), NOW);
    guard.accept('b', stamp(1), NOW);
    guard.accept('a', stamp(2), NOW);
    guard.accept('c', stamp(1), NOW); // b is forgotten
    expect(guard.accept('a', stamp(2), NOW)).toBe('replayed');
    expect(guard.accept('b', stamp(1), NOW)).toBe('ok'); // unknown again: accepted (bounded memory's price)
  });
});
