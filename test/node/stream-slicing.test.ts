import { afterEach, describe, expect, it } from 'vitest';
import { batchBudgetDefaults } from '../../src/node/api/batch-budget.js';
import { RingLimitClient } from '../../src/node/client/client.js';
import type { RingLimitNode } from '../../src/node/node.js';
import { startCluster, stopAll, waitFor } from './helpers.js';

const N = 5_000;

describe('a large AllowStream message runs under the large batches budget (issue 28)', () => {
  let nodes: RingLimitNode[] = [];
  const clients: RingLimitClient[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await stopAll(nodes);
    nodes = [];
  });

  it('5,000 requests in one message are decided in slices, a single call from another caller answered meanwhile; every request answered, exactly; the stream carries on after it', async () => {
    nodes = await startCluster(1, { replicas: 0 });
    const node = nodes[0]!;
    // One message of all 5,000: nothing goes out eagerly, one frame at a time, and batches of up to 10,000.
    const bulk = new RingLimitClient({ nodes: [node.grpcAddress!], maxBatchSize: 10_000, eagerBatchSize: 10_000, maxFramesInFlight: 1, timeoutMs: 30_000 });
    const single = new RingLimitClient({ nodes: [node.grpcAddress!] });
    clients.push(bulk, single);
    expect((await bulk.allow({ key: 'warm', action: 'stream-slicing', limit: 10, windowMs: 60_000 })).allowed).toBe(true);
    expect((await single.allow({ key: 'warm', action: 'single', limit: 10, windowMs: 60_000 })).allowed).toBe(true);
    const slicesBefore = node.stats().callers.largeBatchSlices;
    const order: string[] = [];
    // Limit 1 on each key, two requests for each: exactly one of each pair allowed, whatever the slicing.
    const calls = Array.from({ length: N }, (_, i) => bulk.allow({ key: `k${i % (N / 2)}`, action: 'stream-slicing', limit: 1, windowMs: 60_000 }));
    const all = Promise.all(calls).then((d) => (order.push('bulk'), d));
    await waitFor(() => node.stats().callers.largeBatchSlices > slicesBefore, 10_000, 'the large message under way');
    expect((await single.allow({ key: 'during', action: 'single', limit: 10, windowMs: 60_000 })).allowed).toBe(true);
    order.push('single');
    const decisions = await all;
    expect(order).toEqual(['single', 'bulk']);
    expect(decisions.filter((d) => d.allowed).length).toBe(N / 2);
    expect(node.stats().callers.largeBatchSlices - slicesBefore).toBeGreaterThanOrEqual(N / batchBudgetDefaults.sliceItems);
    expect(bulk.stats().messages).toBeLessThanOrEqual(3); // the warm-up, the large one (and at most one more)
    // The stream was paused, not broken: it serves the next message.
    expect((await bulk.allow({ key: 'after', action: 'stream-slicing', limit: 10, windowMs: 60_000 })).allowed).toBe(true);
    expect(bulk.stats().streamBreaks).toBe(0);
  }, 60_000);
});
