import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { RingLimitClient } from '../../src/node/client/client.js';
import { rateLimiterClientConstructor, rateLimiterService, type WireAllowStreamRequest, type WireAllowStreamResponse, type WireStreamedResult } from '../../src/node/api/proto.js';
import type { RingLimitNode } from '../../src/node/node.js';
import { startCluster, stopAll, waitFor } from './helpers.js';

type StreamCall = grpc.ClientDuplexStream<WireAllowStreamRequest, WireAllowStreamResponse>;

/** A raw AllowStream to `address`, collecting every result it receives. */
function openStream(address: string): { stream: StreamCall; results: WireStreamedResult[]; messages: () => number; close: () => void; failed: () => grpc.ServiceError | undefined } {
  const Ctor = rateLimiterClientConstructor();
  const client = new Ctor(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & { allowStream(): StreamCall };
  const stream = client.allowStream();
  const results: WireStreamedResult[] = [];
  let messages = 0;
  let failure: grpc.ServiceError | undefined;
  stream.on('data', (m: WireAllowStreamResponse) => {
    messages++;
    results.push(...m.results);
  });
  stream.on('error', (e: grpc.ServiceError) => {
    failure = e;
  });
  return { stream, results, messages: () => messages, failed: () => failure, close: () => client.close() };
}

describe('AllowStream: the streaming public API', () => {
  let nodes: RingLimitNode[] = [];
  const cleanup: (() => void)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0)) c();
    await stopAll(nodes);
    nodes = [];
  });

  it('answers every id, for keys owned here and forwarded ones, with per-item errors; items without an id are dropped', async () => {
    // Steady state: no handoff window, so first accesses do not wait for a pull each.
    nodes = await startCluster(2, { handoffWindowMs: 0 });
    const s = openStream(nodes[0]!.grpcAddress!);
    cleanup.push(s.close);
    const requests = Array.from({ length: 200 }, (_, i) => ({ id: 1000 + i, request: { key: `s-${i}`, action: 'api', limit: 1, windowMs: 60_000 } }));
    s.stream.write({
      requests: [
        ...requests,
        { id: 7, request: { key: '', limit: 1, windowMs: 1000 } },
        { id: 8, request: { key: 'r', limit: 5, windowMs: 60_000, maxWaitMs: -3 } },
        { request: { key: 'no-id', limit: 1, windowMs: 1000 } },
      ],
    });
    // The same keys again: each was allowed once, so each is refused now.
    s.stream.write({ requests: requests.map((r) => ({ ...r, id: r.id + 1000 })) });
    await waitFor(() => s.results.length === 402, 5_000, 'every id to be answered');
    const byId = new Map(s.results.map((r) => [r.id, r]));
    expect(byId.size).toBe(402);
    for (const r of requests) {
      expect(byId.get(r.id)?.decision).toMatchObject({ allowed: true, limit: 1 });
      expect(byId.get(r.id + 1000)?.decision).toMatchObject({ allowed: false });
    }
    expect(byId.get(7)?.error).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'key' });
    expect(byId.get(8)?.error).toMatchObject({ code: 'INVALID_ARGUMENT', field: 'maxWaitMs' });
    // Keys owned by n0 are answered at once, forwarded ones when n1 answers: fewer messages than requests.
    expect(s.messages()).toBeLessThan(20);
    expect(nodes[0]!.stats().forwarder.forwarded).toBeGreaterThan(0);
    s.stream.end();
  });

  it('a message over the item bound ends the stream with INVALID_ARGUMENT', async () => {
    nodes = await startCluster(1);
    const s = openStream(nodes[0]!.grpcAddress!);
    cleanup.push(s.close);
    s.stream.write({ requests: Array.from({ length: 10_001 }, (_, id) => ({ id, request: { key: 'k', limit: 1, windowMs: 1000 } })) });
    await waitFor(() => s.failed() !== undefined, 5_000, 'the stream to fail');
    expect(s.failed()!.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(nodes[0]!.stats().store.decisions).toBe(0);
  });

  it('the client batches adaptively: concurrent calls share messages, a lone call goes out at once', async () => {
    nodes = await startCluster(1);
    const client = new RingLimitClient({ nodes: [nodes[0]!.grpcAddress!] });
    cleanup.push(() => client.close());
    const lone = await client.allow({ key: 'lone', limit: 5, windowMs: 60_000 });
    expect(lone).toMatchObject({ allowed: true, remaining: 4 });
    expect(client.stats()).toMatchObject({ messages: 1, requests: 1 });
    const answers = await Promise.all(Array.from({ length: 3_000 }, (_, i) => client.allow({ key: `many-${i % 100}`, limit: 10, windowMs: 60_000 })));
    expect(answers.filter((a) => a.allowed).length).toBe(1_000);
    const { messages, requests } = client.stats();
    expect(requests).toBe(3_001);
    expect(messages).toBeLessThanOrEqual(10); // 3,000 calls made in one turn: at most maxBatchSize (1,000) per message
    // A caller reusing one request object: each call is sent as it was when made.
    const reused = { key: '', limit: 1, windowMs: 60_000 };
    const calls = ['r-1', 'r-2', 'r-3'].map((key) => {
      reused.key = key;
      return client.allow(reused);
    });
    expect((await Promise.all(calls)).map((d) => d.allowed)).toEqual([true, true, true]);
  });

  it('a stream broken mid-flight moves its requests to the next node: every call is answered', async () => {
    nodes = await startCluster(2, { replicas: 1 });
    const [a, b] = nodes as [RingLimitNode, RingLimitNode];
    const client = new RingLimitClient({ nodes: [a.grpcAddress!, b.grpcAddress!], preferFirst: true, timeoutMs: 5_000 });
    cleanup.push(() => client.close());
    const keys = Array.from({ length: 50 }, (_, i) => `mid-${i}`);
    const calls = Array.from({ length: 5_000 }, (_, i) => client.allow({ key: keys[i % keys.length]!, action: 'api', limit: 1e6, windowMs: 60_000 }));
    await waitFor(() => client.stats().messages > 0, 5_000, 'the first message to go out');
    await a.stop({ graceful: false });
    const settled = await Promise.allSettled(calls);
    expect(settled.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(client.stats().streamBreaks).toBeGreaterThanOrEqual(1);
    expect(settled.length).toBe(5_000);
  }, 30_000);

  it('a node that never answers: requests time out and move to the next node', async () => {
    nodes = await startCluster(1);
    // A server that accepts AllowStream and stays silent (a hung node).
    const silent = new grpc.Server();
    silent.addService(rateLimiterService(), { allowStream: () => undefined, allow: () => undefined, allowBatch: () => undefined, health: () => undefined });
    const port = await new Promise<number>((resolve, reject) =>
      silent.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, p) => (error === null ? resolve(p) : reject(error))),
    );
    cleanup.push(() => silent.forceShutdown());
    const client = new RingLimitClient({ nodes: [`127.0.0.1:${port}`, nodes[0]!.grpcAddress!], preferFirst: true, timeoutMs: 300 });
    cleanup.push(() => client.close());
    const started = performance.now();
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => client.allow({ key: `t-${i}`, limit: 1, windowMs: 60_000 })));
    expect(answers.every((a) => a.allowed)).toBe(true);
    // Every request moved on. The 20 may leave in two messages (16 sent mid-turn, 4 at the
    // end of the turn) whose deadlines straddle a deadline check on a busy machine: the first
    // timeouts drop the hung stream, and the rest move with it.
    const { timeouts, failovers, streamBreaks } = client.stats();
    expect(failovers).toBe(20);
    expect(timeouts).toBeGreaterThanOrEqual(16);
    expect(streamBreaks).toBeGreaterThanOrEqual(1);
    expect(performance.now() - started).toBeLessThan(5_000);
  }, 20_000);

  it('ring-aware: the client learns the owners and sends each request to its owner, so no node forwards', async () => {
    nodes = await startCluster(3, { handoffWindowMs: 0 });
    const addresses = nodes.map((n) => n.grpcAddress!);
    const aware = new RingLimitClient({ nodes: addresses, ringRefreshMs: 100 });
    const blind = new RingLimitClient({ nodes: addresses, ringAware: false, preferFirst: true });
    cleanup.push(() => aware.close(), () => blind.close());
    await waitFor(() => aware.ownerIds().length === 3, 5_000, 'the client to learn the owners');
    const forwarded = () => nodes.reduce((sum, n) => sum + n.stats().forwarder.forwarded, 0);
    const before = forwarded();
    await Promise.all(Array.from({ length: 600 }, (_, i) => aware.allow({ key: `direct-${i}`, action: 'api', limit: 5, windowMs: 60_000 })));
    expect(forwarded() - before).toBe(0);
    await Promise.all(Array.from({ length: 600 }, (_, i) => blind.allow({ key: `hop-${i}`, action: 'api', limit: 5, windowMs: 60_000 })));
    expect(forwarded() - before).toBeGreaterThan(300); // about 2/3 of the keys live on the other two nodes
  }, 30_000);

  it('ring-aware: when a node fails its calls (it stopped), the client asks for the owners at once, not at its next refresh', async () => {
    nodes = await startCluster(3);
    const client = new RingLimitClient({ nodes: nodes.map((n) => n.grpcAddress!), ringRefreshMs: 600_000 });
    cleanup.push(() => client.close());
    await waitFor(() => client.ownerIds().length === 3, 5_000, 'the client to learn the three owners');
    const keys = Array.from({ length: 30 }, (_, i) => `gone-${i}`);
    const request = (key: string) => ({ key, action: 'api', limit: 1_000_000, windowMs: 60_000 });
    await Promise.all(keys.map((k) => client.allow(request(k))));
    const gone = nodes.pop()!;
    await gone.stop();
    // Every call is still answered; the ones for the stopped node's keys fail over, and that makes the client ask.
    const deadline = Date.now() + 8_000;
    while (client.ownerIds().length !== 2 && Date.now() < deadline) {
      const answers = await Promise.all(keys.map((k) => client.allow(request(k))));
      expect(answers.every((a) => a.allowed)).toBe(true);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(client.ownerIds()).not.toContain(gone.nodeId);
    expect(client.ownerIds()).toHaveLength(2);
  }, 40_000);

  it('ring-aware with a stale view: a node joins, requests stay exact, and the client follows within its refresh', async () => {
    nodes = await startCluster(2);
    const client = new RingLimitClient({ nodes: nodes.map((n) => n.grpcAddress!), ringRefreshMs: 200 });
    cleanup.push(() => client.close());
    await waitFor(() => client.ownerIds().length === 2, 5_000, 'the client to learn the two owners');
    const keys = Array.from({ length: 40 }, (_, i) => `stale-${i}`);
    const allowed = new Map(keys.map((k) => [k, 0]));
    const request = (key: string) => ({ key, action: 'api', limit: 30, windowMs: 86_400_000, algorithm: 'fixed-window' as const });
    let stop = false;
    const load = (async () => {
      for (let round = 0; !stop && round < 10_000; round++) {
        const answers = await Promise.all(keys.map((k) => client.allow(request(k))));
        answers.forEach((a, i) => a.allowed && allowed.set(keys[i]!, allowed.get(keys[i]!)! + 1));
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const { createNode } = await import('../../src/node/node.js');
    nodes.push(await createNode({ nodeId: 'n2', gossipPreset: 'test', port: 0, gossipPort: 0, join: [nodes[0]!.gossipAddress!], clusterName: nodes[0]!.options.clusterName }));
    await waitFor(() => client.ownerIds().length === 3, 5_000, 'the client to learn the new owner');
    await waitFor(() => [...allowed.values()].every((n) => n >= 30), 10_000, 'every key to reach its limit');
    stop = true;
    await load;
    expect([...allowed.values()].every((n) => n === 30)).toBe(true);
  }, 40_000);
});
