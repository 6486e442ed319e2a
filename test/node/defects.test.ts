import { afterEach, describe, expect, it } from 'vitest';
import type { RingLimitNode } from '../../src/node/node.js';
import type { PeerTransport } from '../../src/node/transport/peer-transport.js';
import { decodeFrame } from '../../src/node/wire/codec.js';
import { FrameType, type ForwardResult } from '../../src/node/wire/frames.js';
import { encodeMsgpack } from '../../src/node/wire/msgpack.js';
import { rawPeerStream, startCluster, stopAll, waitFor } from './helpers.js';

/** Regression tests for two defects the issue-8 review found in src/node. */

/** The real transport, with sends refused while `refuse()` holds (the fault seam the chaos harness uses). */
function refusingSends(inner: PeerTransport, refuse: () => boolean): PeerTransport {
  return {
    send: (address, frame) => !refuse() && inner.send(address, frame),
    onFrame: (handler) => inner.onFrame(handler),
    onPeerDown: (handler) => inner.onPeerDown(handler),
    disconnect: (address) => inner.disconnect(address),
    close: () => inner.close(),
  };
}

describe('defect 1: a fallback answer names its own request', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  it("onUnavailable 'allow' and 'deny' answer each request with its own limit under concurrent failovers", async () => {
    let refuse = false;
    for (const policy of ['allow', 'deny'] as const) {
      refuse = false;
      nodes = await startCluster(2, { replicas: 0, onUnavailable: policy }, (i) =>
        i === 0 ? { wrapPeerTransport: (t) => refusingSends(t, () => refuse) } : {},
      );
      const a = nodes[0]!;
      const keys: string[] = [];
      for (let i = 0; keys.length < 8 && i < 10_000; i++) if (a.ownerOf(`u-${i}`, 'api') === 'n1') keys.push(`u-${i}`);
      refuse = true;
      // All in one turn: every forward fails over (no candidate left) after the others were resolved.
      const answers = await Promise.all(keys.map((key, i) => a.allow({ key, action: 'api', limit: 10 + i, windowMs: 60_000 })));
      expect(answers.map((d) => d.limit)).toEqual(keys.map((_, i) => 10 + i));
      expect(answers.every((d) => d.allowed === (policy === 'allow'))).toBe(true);
      expect(a.stats().unavailable).toBe(keys.length);
      await stopAll(nodes);
      nodes = [];
    }
  }, 30_000);
});

describe('defect 2: an ack releases only what its own frame was waiting for', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  it('acks for handoff frames sent while draining never release a sync-replication waiter', async () => {
    // Node n0's transport, observed: ids of the Replicate and Handoff frames it sends; the replica's
    // first ack for each watched Replicate frame is held back (a slow replica), every other frame passes.
    let watchReplicates = false;
    const replicateIds = new Set<number>();
    const handoffIds = new Set<number>();
    let handoffsSent = 0;
    let handoffAcks = 0;
    const heldAcks: (() => void)[] = [];
    const observed = (inner: PeerTransport): PeerTransport => ({
      send(address, frame) {
        const f = decodeFrame(frame);
        if (f?.type === FrameType.Replicate && watchReplicates) replicateIds.add(f.id);
        if (f?.type === FrameType.Handoff) {
          handoffIds.add(f.id);
          handoffsSent++;
        }
        return inner.send(address, frame);
      },
      onFrame(handler) {
        inner.onFrame((bytes, reply, from) => {
          const f = decodeFrame(bytes);
          if (f?.type === FrameType.Ack) {
            if (replicateIds.delete(f.id)) {
              heldAcks.push(() => handler(bytes, reply, from));
              return;
            }
            if (handoffIds.has(f.id)) handoffAcks++;
          }
          handler(bytes, reply, from);
        });
      },
      onPeerDown: (handler) => inner.onPeerDown(handler),
      disconnect: (address) => inner.disconnect(address),
      close: () => inner.close(),
    });
    // One entry per frame, no pulls (handoffWindowMs 0): the drain's handoff frames get many ids.
    nodes = await startCluster(2, { replication: 'sync', maxBatchSize: 1, handoffWindowMs: 0, forwardTimeoutMs: 30_000 }, (i) =>
      i === 0 ? { wrapPeerTransport: observed } : {},
    );
    const [a, b] = nodes as [RingLimitNode, RingLimitNode];
    const request = (key: string) => ({ key, action: 'api', limit: 5, windowMs: 60_000 });
    // n0 holds its own keys and copies of n1's keys.
    for (let i = 0; i < 120; i++) await (i % 2 === 0 ? a : b).allow(request(`k-${i}`));
    let ownKey = '';
    for (let i = 0; ownKey === '' && i < 10_000; i++) if (a.ownerOf(`mine-${i}`, 'api') === 'n0') ownKey = `mine-${i}`;

    watchReplicates = true;
    let answered = false;
    const decision = a.allow(request(ownKey)).then((d) => {
      answered = true;
      return d;
    });
    await waitFor(() => heldAcks.length === 1, 5_000, 'the replica to ack the watched Replicate frame');
    expect(answered).toBe(false);

    // Draining pushes every key n0 owns to n1 in Handoff frames (one entry each), which n1 acks.
    const owned = Array.from({ length: 120 }, (_, i) => `k-${i}`).filter((k) => a.ownerOf(k, 'api') === 'n0').length;
    expect(owned).toBeGreaterThan(30);
    const stopping = a.stop();
    await waitFor(() => handoffsSent >= owned && handoffAcks >= handoffsSent, 5_000, 'n1 to ack every handoff frame');
    await new Promise((r) => setImmediate(r));
    expect(answered).toBe(false);

    for (const release of heldAcks) release();
    expect((await decision).allowed).toBe(true);
    await stopping;
  }, 30_000);
});

describe('defect 3 (chaos, rolling restart): a forward that lands on a node without the key’s state is not decided from a fresh one', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  /** Sends one Forward item with `hops` to `target` over a raw peer stream; resolves with its answer. */
  async function forwardOnce(target: RingLimitNode, key: string, hops: number): Promise<ForwardResult> {
    // As a member relaying (the node that relayed it once): only members speak the peer protocol.
    const { stream, close } = rawPeerStream(target, nodes.find((n) => n !== target)!.nodeId);
    try {
      return await new Promise<ForwardResult>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5_000);
        stream.on('error', () => undefined);
        stream.on('data', (bytes: Buffer) => {
          const frame = decodeFrame(bytes);
          const result = frame?.type === FrameType.ForwardReply ? frame.results.find((r) => r.id === 77) : undefined;
          if (result !== undefined) {
            clearTimeout(timer);
            resolve(result);
          }
        });
        // [id, action, key, limit, windowMs, weight, cost, algorithm (3: fixed-window), burst, hops, maxWaitMs]
        stream.write(encodeMsgpack([1, FrameType.Forward, 5, [[77, 'api', key, 10, 3_600_000, 1, 1, 3, 0, hops, -1]]]));
      });
    } finally {
      close();
    }
  }

  it('relayed once already, it goes on to the owner in this node’s view; only a third hop is decided where it lands', async () => {
    // No replicas: a node that does not own the key holds nothing for it.
    nodes = await startCluster(3, { replicas: 0, handoffWindowMs: 0 });
    const [owner, other] = nodes as [RingLimitNode, RingLimitNode];
    let key = '';
    for (let i = 0; key === '' && i < 10_000; i++) if (owner.ownerOf(`k-${i}`, 'api') === 'n0') key = `k-${i}`;
    const request = { key, action: 'api', limit: 10, windowMs: 3_600_000, algorithm: 'fixed-window' as const };
    for (let i = 0; i < 10; i++) expect((await owner.allow(request)).allowed).toBe(true);
    // As a peer whose view lags would send it: already relayed once, to a node that is not the owner.
    const relayed = await forwardOnce(other, key, 1);
    expect(relayed).toMatchObject({ status: 0, allowed: false, remaining: 0 });
    expect(other.store.has('api', key)).toBe(false);
    expect(other.stats().decidedAsFallback).toBe(0);
    // The loop bound: a request that has been relayed twice is decided where it lands.
    const third = await forwardOnce(other, key, 2);
    expect(third.status).toBe(0);
    expect(other.stats().decidedAsFallback).toBe(1);
  });
});

describe('defect 4 (chaos, rolling restart): a node shutting down does not decide forwards from what it holds', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  it('once closing, a request for another node’s key is refused with UNAVAILABLE (the client tries another node), not decided here from a fresh state', async () => {
    nodes = await startCluster(2, { replicas: 0, handoffWindowMs: 0 });
    const [a, b] = nodes as [RingLimitNode, RingLimitNode];
    let key = '';
    for (let i = 0; key === '' && i < 10_000; i++) if (a.ownerOf(`k-${i}`, 'api') === 'n1') key = `k-${i}`;
    const request = { key, action: 'api', limit: 1, windowMs: 3_600_000 };
    expect((await b.allow(request)).allowed).toBe(true);
    await a.stop({ graceful: false });
    await expect(a.allow(request)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(a.store.has('api', key)).toBe(false);
  });
});
