import { describe, expect, it } from 'vitest';
import { IdleGc, idleGcDefaults } from '../../src/node/ops/idle-gc.js';

const MB = 1024 * 1024;

/** A process as IdleGc sees it: a heap that grows when told, a gc that empties it to `live`. */
function fakeProcess(live: number) {
  const p = { heap: live, busy: 0, collections: 0 };
  const components = {
    gc: () => {
      p.collections++;
      p.heap = live;
    },
    heapUsedBytes: () => p.heap,
    loopUtilization: () => p.busy,
  };
  return { p, components };
}

describe('IdleGc: a full collection when serve goes idle holding garbage', () => {
  it('collects on an idle event loop once the heap grew by minGarbageBytes, and only then', () => {
    const { p, components } = fakeProcess(20 * MB);
    const idle = new IdleGc(components);
    idle.check();
    expect(p.collections).toBe(0); // nothing grew
    p.heap += idleGcDefaults.minGarbageBytes - MB;
    idle.check();
    expect(p.collections).toBe(0); // not enough garbage to be worth a full collection
    p.heap += 2 * MB;
    idle.check();
    expect(p.collections).toBe(1);
    expect(idle.stats).toEqual({ collections: 1, lastHeapAfterBytes: 20 * MB });
    idle.check();
    expect(p.collections).toBe(1); // the heap is back at its live size
    idle.close();
  });

  it('leaves a busy event loop alone (V8 collects as it allocates), and counts from where V8 collected by itself', () => {
    const { p, components } = fakeProcess(20 * MB);
    const idle = new IdleGc(components);
    p.busy = 0.5;
    p.heap += 100 * MB;
    idle.check();
    expect(p.collections).toBe(0);
    // V8 collected on its own (the heap shrank below the last figure seen), then a little garbage: not enough.
    p.heap = 10 * MB;
    p.busy = 0;
    idle.check();
    p.heap = 10 * MB + idleGcDefaults.minGarbageBytes - MB;
    idle.check();
    expect(p.collections).toBe(0);
    idle.close();
  });

  it('does nothing without an exposed gc (no --expose-gc): no timer, no collection', () => {
    const { p, components } = fakeProcess(20 * MB);
    const idle = new IdleGc({ ...components, gc: undefined });
    expect(idle.enabled).toBe(false);
    p.heap += 500 * MB;
    idle.check();
    expect(idle.stats.collections).toBe(0);
    idle.close();
  });
});
