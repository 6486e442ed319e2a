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

describe('WakeTimer.wakeAfter', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sleeps the delay asked for, not one run per period; wake() brings a long sleep forward to one period; an armed timer is not moved later', () => {
    let runs = 0;
    const timer = new WakeTimer(() => {
      runs++;
      return false;
    }, 5);
    timer.wakeAfter(50);
    vi.advanceTimersByTime(49);
    expect(runs).toBe(0); // no run per period while it sleeps
    vi.advanceTimersByTime(1);
    expect(runs).toBe(1);
    timer.wakeAfter(50);
    vi.advanceTimersByTime(10);
    timer.wake(); // due within one period now
    vi.advanceTimersByTime(5);
    expect(runs).toBe(2);
    vi.advanceTimersByTime(100);
    expect(runs).toBe(2); // the long sleep was cancelled, not run as well
    timer.wake();
    timer.wakeAfter(50); // already due in one period: unchanged
    vi.advanceTimersByTime(5);
    expect(runs).toBe(3);
    timer.wakeAfter(2);
    timer.wake(); // due sooner than a period anyway: not put off
    vi.advanceTimersByTime(2);
    expect(runs).toBe(4);
    vi.advanceTimersByTime(10);
    expect(runs).toBe(4);
    timer.wakeAfter(50);
    timer.close();
    vi.advanceTimersByTime(100);
    expect(runs).toBe(4);
  });

  it('a task may put itself to sleep from its own run', () => {
    const at: number[] = [];
    let left = 3;
    const timer = new WakeTimer(() => {
      at.push(Date.now());
      if (--left > 0) timer.wakeAfter(20);
      return false;
    }, 5);
    const start = Date.now();
    timer.wake();
    vi.advanceTimersByTime(200);
    expect(at.map((t) => t - start)).toEqual([5, 25, 45]);
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
