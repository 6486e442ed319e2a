import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchBudget } from '../../src/node/api/batch-budget.js';
import { rateLimiterClientConstructor } from '../../src/node/api/proto.js';
import type { RingLimitNode } from '../../src/node/node.js';
import { startCluster, stopAll } from './helpers.js';

describe('BatchBudget', () => {
  it('lets large batches take their share of the event loop, then refuses them until time refills it; small calls always pass', () => {
    let now = 0;
    const budget = new BatchBudget({ windowMs: 100, maxBusyMs: 50, smallBatchItems: 100 }, () => now);
    expect(budget.admit(5_000)).toBe(true);
    budget.spent(80); // 30 ms into debt
    expect(budget.admit(5_000)).toBe(false);
    expect(budget.admit(100)).toBe(true); // small
    now += 40; // refills 20 ms: still 10 ms in debt
    expect(budget.admit(5_000)).toBe(false);
    now += 40; // +20 ms: 10 ms to spend
    expect(budget.admit(5_000)).toBe(true);
    budget.spent(10);
    now += 10_000; // a long quiet spell saves up no more than the share
    expect(budget.admit(5_000)).toBe(true);
    budget.spent(50);
    expect(budget.admit(5_000)).toBe(false);
  });
});

type Unary = (req: object, cb: (err: grpc.ServiceError | null, res?: Record<string, unknown>) => void) => void;

describe('a flood of large AllowBatch calls', () => {
  let nodes: RingLimitNode[] = [];
  const clients: grpc.Client[] = [];
  beforeAll(async () => {
    nodes = await startCluster(1, { replicas: 0 });
  }, 30_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await stopAll(nodes);
  });

  it('is partly refused with RESOURCE_EXHAUSTED while single calls keep being answered', async () => {
    const Ctor = rateLimiterClientConstructor();
    const connect = () => {
      const c = new Ctor(nodes[0]!.grpcAddress!, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }) as unknown as grpc.Client & { allow: Unary; allowBatch: Unary };
      clients.push(c);
      return c;
    };
    const flooders = Array.from({ length: 8 }, connect);
    const good = connect();
    const batch = { requests: Array.from({ length: 5_000 }, (_, i) => ({ key: `flood-${i}`, action: 'flood', limit: 1_000_000, windowMs: 60_000 })) };
    const codes: number[] = [];
    const endAt = Date.now() + 2_000;
    const flood = Promise.all(
      flooders.map(async (c) => {
        for (let i = 0; i < 200 && Date.now() < endAt; i++) {
          await Promise.all(Array.from({ length: 4 }, () => new Promise<void>((resolve) => c.allowBatch(batch, (err) => (codes.push(err?.code ?? 0), resolve())))));
        }
      }),
    );
    const latencies: number[] = [];
    let failures = 0;
    while (Date.now() < endAt) {
      const t0 = performance.now();
      await new Promise<void>((resolve) => good.allow({ key: 'good', action: 'g', limit: 1_000_000, windowMs: 60_000 }, (err) => ((err === null ? latencies.push(performance.now() - t0) : failures++), resolve())));
    }
    await flood;
    expect(codes.filter((c) => c === grpc.status.RESOURCE_EXHAUSTED).length).toBeGreaterThan(0);
    expect(codes.filter((c) => c === grpc.status.OK).length).toBeGreaterThan(0);
    expect(failures).toBe(0);
    expect(latencies.length).toBeGreaterThan(5);
  }, 30_000);
});
