import { afterEach, describe, expect, it } from 'vitest';
import { encodeMsgpack } from '../../src/node/wire/msgpack.js';
import { RingLimitClient } from '../../src/node/client/client.js';
import type { RingLimitNode } from '../../src/node/node.js';
import type { RateLimitRequest } from '../../src/limiter/types.js';
import { rawPeerStream, startCluster, stopAll, waitFor } from './helpers.js';

/**
 * Hot-key mode (`global: true`) on a real 3-node cluster (UDP gossip, gRPC streams). The
 * key is owned by n0; n1 and n2 answer from their copies. Includes one test for each of
 * Gubernator's GLOBAL-mode bugs (#208, #216, #225).
 */
describe('hot-key mode', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
    nodes = [];
  });

  /** A key n0 owns, so n1 and n2 are non-owners. */
  function keyOwnedBy(owner: string): string {
    for (let i = 0; i < 10_000; i++) if (nodes[1]!.ownerOf(`hot-${i}`, 'api') === owner) return `hot-${i}`;
    throw new Error('no key found');
  }

  const request = (key: string, extra: Partial<RateLimitRequest> = {}): RateLimitRequest => ({ key, action: 'api', limit: 10, windowMs: 3_600_000, algorithm: 'fixed-window', global: true, ...extra });

  /** Polls an async condition every 20 ms, for at most timeoutMs. */
  async function eventually(condition: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await condition())) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** What every node says is left, without taking anything (the owner answers from its store, the others from their copies). */
  const remainingEverywhere = async (r: RateLimitRequest): Promise<number[]> => Promise.all(nodes.map(async (n) => (await n.allow({ ...r, cost: 0 })).remaining));

  /** Waits until each of `among` says `left` units remain. */
  async function agreed(among: RingLimitNode[], r: RateLimitRequest, left: number): Promise<void> {
    await eventually(async () => (await Promise.all(among.map((n) => n.allow({ ...r, cost: 0 })))).every((d) => d.remaining === left), 5_000, `every node to say ${left} left`);
  }

  /** Makes n1 and n2 hold a current copy: one request each (forwarded), then the owner's broadcast. */
  async function primeCopies(key: string, r: RateLimitRequest = request(key)): Promise<void> {
    await nodes[1]!.allow(r);
    await nodes[2]!.allow(r);
    const left = r.limit! - 2;
    await waitFor(() => [1, 2].every((i) => nodes[i]!.allowNow({ ...r, cost: 0 })?.remaining === left), 5_000, 'current copies on n1 and n2');
  }

  it('a non-owner answers from its copy synchronously, and the owner gets its hits', async () => {
    nodes = await startCluster(3);
    const key = keyOwnedBy('n0');
    expect(nodes[1]!.allowNow(request(key))).toBeUndefined(); // no copy yet: it must be forwarded
    await primeCopies(key);
    const before = nodes[1]!.stats().hotKeys.answeredFromCopy;
    const d = nodes[1]!.allowNow(request(key));
    expect(d).toMatchObject({ allowed: true, remaining: 7 });
    expect(nodes[1]!.stats().hotKeys.answeredFromCopy).toBe(before + 1);
    expect(nodes[1]!.stats().forwarder.forwarded).toBe(1); // only the first request went to the owner
    // The owner counts it at the next sync.
    await eventually(async () => (await nodes[0]!.allow(request(key, { cost: 0 }))).remaining === 7, 5_000, 'the owner to apply the hit');
  });

  it('slow traffic through all three nodes admits exactly the limit', async () => {
    nodes = await startCluster(3);
    const key = keyOwnedBy('n0');
    let allowed = 0;
    for (let i = 0; i < 30; i++) {
      const d = await nodes[i % 3]!.allow(request(key));
      if (d.allowed) allowed++;
      // Traffic slower than the sync: the next request waits until every node agrees.
      await agreed(nodes, request(key), Math.max(0, 10 - allowed));
    }
    // Should this fail on a loaded machine: which path decided twice (a forward that timed out and failed over, a ring change)?
    const paths = nodes.map((n) => ({ node: n.nodeId, owners: n.owners().length, forwarder: n.stats().forwarder, fallback: n.stats().decidedAsFallback, moved: n.stats().handoff.movedDuringPull }));
    expect(allowed, JSON.stringify(paths)).toBe(10);
  });

  it('gubernator #208: once the owner is over the limit, non-owners answer over the limit too', async () => {
    nodes = await startCluster(3);
    const key = keyOwnedBy('n0');
    await primeCopies(key); // 2 of 10 taken
    // A burst on both non-owners within one sync: each copy admits what it thinks is left (8).
    const burst = await Promise.all([...Array.from({ length: 50 }, () => nodes[1]!.allow(request(key))), ...Array.from({ length: 50 }, () => nodes[2]!.allow(request(key)))]);
    const admitted = burst.filter((d) => d.allowed).length;
    // The stated bound: over-admission at most (non-owners) × remaining at the last broadcast = 2 × 8.
    expect(2 + admitted).toBeGreaterThanOrEqual(10);
    expect(2 + admitted - 10).toBeLessThanOrEqual(2 * 8);
    // After a sync every node says over the limit, with nothing remaining.
    await eventually(async () => (await remainingEverywhere(request(key))).every((left) => left === 0), 5_000, 'every node to learn the key is exhausted');
    for (const node of nodes) {
      const d = await node.allow(request(key));
      expect(d.allowed).toBe(false);
      expect(d.remaining).toBe(0);
      expect(d.retryAfterMs).toBeGreaterThan(0);
    }
  });

  it('gubernator #216: the owner broadcasts the state after applying the hits, so a node that never took any sees them', async () => {
    nodes = await startCluster(3);
    const key = keyOwnedBy('n0');
    await primeCopies(key); // remaining 8
    for (let i = 0; i < 5; i++) expect(nodes[1]!.allowNow(request(key))!.allowed).toBe(true);
    // n2 took nothing since priming; after one sync round its copy must include n1's 5 hits.
    await waitFor(() => nodes[2]!.allowNow(request(key, { cost: 0 }))!.remaining === 3, 5_000, 'n2 to see n1’s hits');
    for (let i = 0; i < 3; i++) expect(nodes[2]!.allowNow(request(key))!.allowed).toBe(true);
    expect(nodes[2]!.allowNow(request(key))!.allowed).toBe(false);
    await eventually(async () => (await nodes[0]!.allow(request(key, { cost: 0 }))).remaining === 0, 5_000, 'the owner to apply n2’s hits');
    expect((await nodes[0]!.allow(request(key))).allowed).toBe(false);
  });

  it('gubernator #225: every node gives the same reset time, even with skewed clocks', async () => {
    const offsets = [0, 5_000, -5_000];
    nodes = await startCluster(3, {}, (i) => ({ clock: { now: () => Date.now() + offsets[i]! } }));
    const key = keyOwnedBy('n0');
    // 100 per hour refills one token every 36 s: nothing refills while the nodes converge (even on a
    // loaded machine), so each must say exactly what is left. The reset time is as far from any
    // node's clock skew whatever the window: a copy not re-based would be 5 s off.
    const tokenBucket = (extra: Partial<RateLimitRequest> = {}) => request(key, { algorithm: 'token-bucket', limit: 100, windowMs: 3_600_000, ...extra });
    await primeCopies(key, tokenBucket());
    for (let i = 0; i < 20; i++) expect(nodes[1 + (i % 2)]!.allowNow(tokenBucket())?.allowed).toBe(true);
    await eventually(async () => (await remainingEverywhere(tokenBucket())).every((left) => left === 100 - 22), 5_000, 'all nodes to agree that 78 remain');
    // Read back on each node's own clock, then taken to the common one.
    const resets = (await Promise.all(nodes.map((n) => n.allow(tokenBucket({ cost: 0 }))))).map((d, i) => d.resetAtMs - offsets[i]!);
    const spread = Math.max(...resets) - Math.min(...resets);
    // Each state crossed the network once, re-based relative to the sender's now: the spread is the transit time.
    expect(spread).toBeLessThan(250);
  });

  it('hostile GlobalHits and GlobalState items change no counter; the owner keeps deciding', async () => {
    nodes = await startCluster(3);
    const key = keyOwnedBy('n0');
    await primeCopies(key); // 8 left
    const owner = nodes[0]!;
    const { stream, close } = rawPeerStream(owner, nodes[1]!.nodeId); // a hostile member
    stream.on('error', () => undefined);
    stream.on('data', () => undefined);
    const item = (cost: unknown, limit: unknown = 10, global = true) => [0, 'api', key, limit, 3_600_000, 1, cost, 3, 0, 0, -1, ...(global ? [true] : [])];
    const hostile = [
      [1, 8, 0, [item(-5), item(0), item(1.5), item(2 ** 53), item(3, -1), item(3, 10, false)]],
      [1, 8, 0, [[0, 'api', '', 10, 3_600_000, 1, 3, 3, 0, 0, -1, true]]],
      [1, 9, 0, [['api', key, 9, 0, 0, 0, 0]]],
    ];
    for (const frame of hostile) stream.write(encodeMsgpack(frame));
    // A well-formed frame last: once it is applied, the ones before it were handled.
    stream.write(encodeMsgpack([1, 8, 0, [item(1)]]));
    await eventually(async () => (await owner.allow(request(key, { cost: 0 }))).remaining === 7, 5_000, 'the valid hit');
    close();
    expect(owner.stats().malformedFrames).toBeGreaterThanOrEqual(1);
    expect((await owner.allow(request(key))).remaining).toBe(6);
  });

  it('RingLimitClient sends a hot key to its preferred node, not the owner: clients on different nodes spread its load', async () => {
    nodes = await startCluster(3);
    const key = keyOwnedBy('n0');
    const [n0, n1, n2] = nodes.map((n) => n.grpcAddress!) as [string, string, string];
    const clients = [new RingLimitClient({ nodes: [n1, n0, n2], preferFirst: true }), new RingLimitClient({ nodes: [n2, n0, n1], preferFirst: true })];
    try {
      const r = request(key, { limit: 1_000 });
      await primeCopies(key, r);
      const before = nodes.map((n) => n.stats());
      let allowed = 2;
      for (let i = 0; i < 30; i++) if ((await clients[i % 2]!.allow(r)).allowed) allowed++;
      expect(allowed).toBe(32);
      // Each client's node answered its 15 from its copy; nothing was forwarded, the owner was not asked.
      for (const i of [1, 2]) {
        expect(nodes[i]!.stats().hotKeys.answeredFromCopy - before[i]!.hotKeys.answeredFromCopy).toBe(15);
        expect(nodes[i]!.stats().forwarder.forwarded).toBe(before[i]!.forwarder.forwarded);
      }
      await eventually(async () => (await nodes[0]!.allow({ ...r, cost: 0 })).remaining === 1_000 - 32, 5_000, 'the owner to count every hit');
    } finally {
      for (const client of clients) client.close();
    }
  });

  it('a reservation of a hot key goes to the owner, and a request without global is never answered from a copy', async () => {
    nodes = await startCluster(3);
    const key = keyOwnedBy('n0');
    await primeCopies(key);
    const forwarded = nodes[1]!.stats().forwarder.forwarded;
    await nodes[1]!.reserve(request(key), { maxWaitMs: 0 });
    await nodes[1]!.allow(request(key, { global: false }));
    expect(nodes[1]!.stats().forwarder.forwarded).toBe(forwarded + 2);
    expect(nodes[1]!.allowNow(request(key, { global: false }))).toBeUndefined();
  });

  it('a node that loses its owner keeps answering: the new owner takes the hits and broadcasts', async () => {
    nodes = await startCluster(3, { replicas: 2 });
    const key = keyOwnedBy('n0');
    await primeCopies(key);
    await nodes[0]!.stop({ graceful: true });
    await waitFor(() => nodes[1]!.owners().length === 2 && nodes[2]!.owners().length === 2, 10_000, 'the owner to leave');
    let allowed = 2;
    const live = nodes.slice(1);
    for (let i = 0; i < 20; i++) {
      if ((await live[i % 2]!.allow(request(key))).allowed) allowed++;
      await agreed(live, request(key), Math.max(0, 10 - allowed));
    }
    expect(allowed).toBe(10);
  });
});
