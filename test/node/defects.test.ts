import { afterEach, describe, expect, it } from 'vitest';
import type { RingLimitNode } from '../../src/node/node.js';
import type { PeerTransport } from '../../src/node/transport/peer-transport.js';
import { decodeFrame } from '../../src/node/wire/codec.js';
import { FrameType } from '../../src/node/wire/frames.js';
import { startCluster, stopAll, waitFor } from './helpers.js';

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

    // Draining pushes every key n0 holds to n1 in Handoff frames, which n1 acks.
    const stopping = a.stop();
    await waitFor(() => handoffsSent >= 100 && handoffAcks >= handoffsSent, 5_000, 'n1 to ack every handoff frame');
    await new Promise((r) => setImmediate(r));
    expect(answered).toBe(false);

    for (const release of heldAcks) release();
    expect((await decision).allowed).toBe(true);
    await stopping;
  }, 30_000);
});
