import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WakeTimer } from '../../src/common/wake-timer.js';
import { startCluster, stopAll, waitFor } from '../node/helpers.js';

describe('WakeTimer', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs one period after wake(), keeps running while the task has work, and stops after a run without', () => {
    let runs = 0;
    let workLeft = 3;
    const timer = new WakeTimer(() => {
      runs++;
      return --workLeft > 0;
    }, 5);
    vi.advanceTimersByTime(50);
    expect(runs).toBe(0); // never woken: never runs
    timer.wake();
    timer.wake(); // already armed: still one run per period
    vi.advanceTimersByTime(4);
    expect(runs).toBe(0);
    vi.advanceTimersByTime(1);
    expect(runs).toBe(1);
    vi.advanceTimersByTime(100);
    expect(runs).toBe(3); // the third run had no work left: disarmed
    workLeft = 1;
    timer.wake();
    vi.advanceTimersByTime(5);
    expect(runs).toBe(4);
    timer.wake();
    timer.close();
    vi.advanceTimersByTime(100);
    expect(runs).toBe(4);
    timer.wake(); // closed: stays off
    vi.advanceTimersByTime(100);
    expect(runs).toBe(4);
  });
});

describe('an idle node', () => {
  it('does not flush replication while nothing changes, and replicates again at the next decision', async () => {
    const nodes = await startCluster(2, { replicas: 1 });
    try {
      const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
      let drains = 0;
      const drain = a.store.drainChanges.bind(a.store);
      a.store.drainChanges = (...args) => {
        drains++;
        return drain(...args);
      };
      const request = (key: string) => ({ key, action: 'idle', limit: 10, windowMs: 60_000 });
      const key = Array.from({ length: 100 }, (_, i) => `k${i}`).find((k) => a.ownerOf(k, 'idle') === 'n0')!;
      await a.allow(request(key));
      await waitFor(() => b.stats().replication.entriesReceived >= 1, 5_000, 'the replica to get the first decision');
      // The flush after the last change finds nothing and disarms: wait until 100 ms pass without one.
      for (let i = 0, last = -1; i < 50 && drains !== last; i++) {
        last = drains;
        await new Promise((r) => setTimeout(r, 100));
      }
      const before = drains;
      await new Promise((r) => setTimeout(r, 300)); // 60 flushes of a 5 ms interval timer
      expect(drains - before).toBe(0);
      await a.allow(request(key));
      await waitFor(() => b.stats().replication.entriesReceived >= 2, 5_000, 'the replica to get the second decision');
      expect(drains - before).toBeGreaterThanOrEqual(1);
    } finally {
      await stopAll(nodes);
    }
  });
});
