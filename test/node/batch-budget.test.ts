import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchBudget, batchBudgetDefaults } from '../../src/node/api/batch-budget.js';
import { rateLimiterClientConstructor } from '../../src/node/api/proto.js';
import type { RingLimitNode } from '../../src/node/node.js';
import { startCluster, stopAll } from './helpers.js';

describe('BatchBudget', () => {
  it('refills at its share — the smaller one while single calls come — saves up one window, and lets no large batch start while empty or while maxRunning are under way', () => {
    let now = 0;
    const budget = new BatchBudget({ sharePercent: 50, withCallsPercent: 20 }, undefined, () => now);
    expect(budget.mayStart()).toBe(true); // a window's worth: 50 ms
    budget.spent(80); // 30 ms into debt
    expect(budget.mayStart()).toBe(false);
    now += 40; // refills 20 ms: still 10 ms in debt
    expect(budget.hasTime()).toBe(false);
    now += 40; // +20 ms: 10 ms to spend
    expect(budget.hasTime()).toBe(true);
    budget.spent(10);
    budget.singleCall(); // a single call: 20 % for the next 100 ms
    now += 50; // +10 ms, not 25
    budget.spent(10);
    expect(budget.hasTime()).toBe(false);
    now += 10_000; // a long quiet spell saves up no more than a window at 50 %
    budget.spent(50);
    expect(budget.hasTime()).toBe(false);
    now += 100;
    budget.singleCall();
    budget.spent(20); // the bucket holds at most a window at 20 % while calls come
    expect(budget.hasTime()).toBe(false);
    now += 1_000;
    budget.running = batchBudgetDefaults.maxRunning;
    expect(budget.hasTime()).toBe(true);
    expect(budget.mayStart()).toBe(false);
  });

  it('runs a large batch in slices of at most sliceMs, one slice per event-loop turn however many batches run; a small one at once', async () => {
    let now = 0;
    const budget = new BatchBudget({ sharePercent: 100, withCallsPercent: 100 }, undefined, () => now);
    let turn = 0;
    let ticking = true;
    const tick = (): void => {
      turn++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const seen: { batch: string; turn: number }[] = [];
    const batch = (name: string, steps: number) => {
      let done = 0;
      return budget.run(true, () => {
        now += 0.5; // each step takes 0.5 ms: four to a slice
        seen.push({ batch: name, turn });
        return ++done < steps;
      });
    };
    await Promise.all([batch('a', 20), batch('b', 12)]);
    ticking = false;
    const perTurn = new Map<number, string[]>();
    for (const s of seen) perTurn.set(s.turn, [...(perTurn.get(s.turn) ?? []), s.batch]);
    expect(seen.length).toBe(32);
    expect(perTurn.size).toBe(8); // 5 slices of a, 3 of b
    for (const batches of perTurn.values()) {
      expect(batches.length).toBeLessThanOrEqual(batchBudgetDefaults.sliceMs / 0.5);
      expect(new Set(batches).size).toBe(1);
    }
    const small: number[] = [];
    const before = turn;
    await budget.run(false, () => small.push(turn) < 1_000);
    expect(small.length).toBe(1_000);
    expect(new Set(small)).toEqual(new Set([before]));
  });

  it('charges a slice, the encoding of what it forwarded and the completion of their answers; not other callers’ work between', async () => {
    let now = 0;
    const fresh = () => new BatchBudget({ sharePercent: 100, withCallsPercent: 100 }, undefined, () => now); // 100 ms to spend
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    // Other callers' work between slices (24 s of it) is not the batch's.
    const between = fresh();
    let steps = 0;
    await between.run(true, () => {
      setImmediate(() => void (now += 40));
      return ++steps < 600; // two slices of sliceItems at most
    });
    await turn();
    expect(between.hasTime()).toBe(true);
    // The forwarder writes its frames in immediates it queues during the slice: charged (150 ms of a 100 ms bucket).
    const encoding = fresh();
    await encoding.run(true, (forwarded) => {
      setImmediate(() => void (now += 150));
      forwarded(Promise.resolve());
      return false;
    });
    await turn();
    expect(encoding.hasTime()).toBe(false);
    now += 1_000;
    // The answers' completion (the batch's own callbacks: 150 ms) is charged; another caller's work in the same turn is not.
    const stats = { largeBatchSlices: 0, largeBatchBusyMs: 0 };
    const answers = new BatchBudget({ sharePercent: 100, withCallsPercent: 100 }, stats, () => now);
    await answers.run(true, (forwarded) => {
      const answer = new Promise<void>((resolve) =>
        setTimeout(() => {
          now += 500; // the reply frame's decoding, and other callers' I/O in the turn: not measured by the batch
          resolve();
        }, 5),
      );
      forwarded(answer);
      void answer.then(() => void (now += 150)); // the batch's own completion: measured
      return false;
    });
    await turn();
    expect(stats.largeBatchBusyMs).toBeGreaterThanOrEqual(150);
    expect(stats.largeBatchBusyMs).toBeLessThan(160);
    expect(answers.hasTime()).toBe(false);
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
