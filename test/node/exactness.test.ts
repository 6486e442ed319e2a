import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RingLimitNode } from '../../src/node/node.js';
import type { Algorithm } from '../../src/limiter/types.js';
import { startCluster, stopAll } from './helpers.js';

describe('three nodes, real gossip and gRPC on 127.0.0.1', () => {
  let nodes: RingLimitNode[] = [];
  beforeAll(async () => {
    nodes = await startCluster(3);
  }, 30_000);
  afterAll(async () => {
    await stopAll(nodes);
  });

  it('every node agrees on the owners', () => {
    for (const node of nodes) expect(node.owners()).toEqual(['n0', 'n1', 'n2']);
    for (let i = 0; i < 50; i++) {
      const owners = new Set(nodes.map((n) => n.ownerOf(`user-${i}`, 'api')));
      expect(owners.size).toBe(1);
    }
  });

  it.each(['token-bucket', 'gcra', 'sliding-window', 'fixed-window'] as Algorithm[])(
    '%s: 200 concurrent callers over all nodes, 20 keys with limit 100 → exactly 100 allowed per key',
    async (algorithm) => {
      const keys = Array.from({ length: 20 }, (_, i) => `${algorithm}-key-${i}`);
      const allowed = new Map<string, number>(keys.map((k) => [k, 0]));
      const callers = 200;
      const callsPerCaller = 30; // 6,000 calls for 2,000 units of capacity
      // Fixed windows: stay inside one aligned 60 s window so the test never straddles a boundary.
      const windowMs = 60_000;
      const msIntoWindow = Date.now() % windowMs;
      if (algorithm === 'fixed-window' || algorithm === 'sliding-window') {
        if (msIntoWindow > windowMs - 15_000) await new Promise((r) => setTimeout(r, windowMs - msIntoWindow + 50));
      }
      const started = Date.now();
      await Promise.all(
        Array.from({ length: callers }, async (_, c) => {
          const node = nodes[c % nodes.length]!;
          for (let i = 0; i < callsPerCaller; i++) {
            const key = keys[(c * 7 + i) % keys.length]!;
            const d = await node.allow({ key, action: 'exact', limit: 100, windowMs, algorithm });
            if (d.allowed) allowed.set(key, allowed.get(key)! + 1);
          }
        }),
      );
      // Token bucket and GCRA refill 100 per minute: exactly what fell due during the run may pass too.
      const elapsedMs = Date.now() - started;
      const refillSlack = algorithm === 'token-bucket' || algorithm === 'gcra' ? Math.floor((100 * elapsedMs) / windowMs) : 0;
      for (const key of keys) {
        expect(allowed.get(key)!).toBeGreaterThanOrEqual(100);
        expect(allowed.get(key)!).toBeLessThanOrEqual(100 + refillSlack);
      }
    },
    60_000,
  );

  it('a forwarded request keeps its weight, burst and cost: the owner decides what a local call would', async () => {
    const [a] = nodes as [RingLimitNode];
    let key = '';
    for (let i = 0; key === '' && i < 10_000; i++) if (a.ownerOf(`weighted-${i}`, 'api') === 'n1') key = `weighted-${i}`;
    // Effective limit floor(10 × 2.5) = 25; capacity floor(4 × 2.5) = 10; cost 3 takes 3 of them a call.
    const request = { key, action: 'api', limit: 10, windowMs: 86_400_000, weight: 2.5, burst: 4, cost: 3, algorithm: 'gcra' as const };
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(await a.allow(request));
    expect(answers.map((d) => d.allowed)).toEqual([true, true, true, false, false]);
    expect(answers.every((d) => d.limit === 25)).toBe(true);
    await expect(a.allow({ ...request, cost: 11 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'cost' });
    expect(a.stats().forwarder.forwarded).toBeGreaterThanOrEqual(5);
  });
});
