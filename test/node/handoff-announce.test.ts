import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { LimiterStore } from '../../src/limiter/store.js';
import { ClusterView, routingHash, routingKey, type ViewMember } from '../../src/node/routing/cluster-view.js';
import { createNode, type RingLimitNode } from '../../src/node/node.js';
import { Handoff } from '../../src/node/state/handoff.js';
import { FrameIds } from '../../src/node/wire/frame-ids.js';
import { decodeFrame } from '../../src/node/wire/codec.js';
import { FrameType } from '../../src/node/wire/frames.js';
import type { PeerTransport } from '../../src/node/transport/peer-transport.js';
import { Ring } from '../../src/ring/index.js';
import { allAnnounced, startCluster, stopAll, waitFor } from './helpers.js';

const WINDOW_MS = 86_400_000;
const total = (nodes: RingLimitNode[], read: (n: RingLimitNode) => number): number => nodes.reduce((a, n) => a + read(n), 0);
const pulls = (nodes: RingLimitNode[]): number => total(nodes, (n) => n.stats().handoff.pulls);

describe('handoff: a node pulls only from members that may still hold what it needs', () => {
  let nodes: RingLimitNode[] = [];
  afterEach(async () => {
    await stopAll(nodes);
  });

  it('a fresh cluster makes no pull on its first pass over its keys (every member announced an empty push)', async () => {
    nodes = await startCluster(3);
    await waitFor(() => allAnnounced(nodes), 10_000, 'every member to announce its handoff');
    for (let i = 0; i < 900; i++) await nodes[i % 3]!.allow({ key: `fresh-${i}`, action: 'a', limit: 5, windowMs: WINDOW_MS });
    expect(pulls(nodes)).toBe(0);
  }, 30_000);

  it('a member joining a warm cluster: the moved keys arrive by push, their counts kept, and no key waits once the others announced', async () => {
    nodes = await startCluster(3, { replicationDelayMs: 5 });
    const keys = Array.from({ length: 600 }, (_, i) => `warm-${i}`);
    // Every key used up (limit 1, one hit).
    for (let i = 0; i < keys.length; i++) expect((await nodes[i % 3]!.allow({ key: keys[i]!, action: 'a', limit: 1, windowMs: WINDOW_MS })).allowed).toBe(true);
    nodes.push(await createNode({ nodeId: 'n3', gossipPreset: 'test', port: 0, gossipPort: 0, replicationDelayMs: 5, join: [nodes[0]!.gossipAddress!], clusterName: nodes[0]!.options.clusterName }));
    await waitFor(() => nodes.every((n) => n.owners().length === 4) && allAnnounced(nodes), 15_000, 'n3 to own keys everywhere, every push announced');
    const before = pulls(nodes);
    const after = new Ring(['n0', 'n1', 'n2', 'n3'].map((nodeId) => ({ nodeId })));
    const moved = keys.filter((k) => after.owner(routingKey('a', k)) === 'n3');
    expect(moved.length).toBeGreaterThan(60);
    // Asked through every node: every key is still used up, the moved ones at their new owner.
    const allowed = [];
    for (let i = 0; i < keys.length; i++) if ((await nodes[i % 4]!.allow({ key: keys[i]!, action: 'a', limit: 1, windowMs: WINDOW_MS })).allowed) allowed.push(keys[i]);
    expect(allowed).toEqual([]);
    expect(pulls(nodes) - before).toBe(0);
  }, 60_000);
});

/** A transport that takes every frame and answers none: the members never answer a pull. */
function silentTransport(): PeerTransport & { sent: number } {
  const t = {
    sent: 0,
    send: () => {
      t.sent++;
      return true;
    },
    onFrame: () => undefined,
    onPeerDown: () => undefined,
    disconnect: () => undefined,
    close: () => Promise.resolve(),
  };
  return t as unknown as PeerTransport & { sent: number };
}

describe('handoff announcements, on one node', () => {
  it('pulls from a member until it announces its push for the current ring, and from none after; a lost announcement costs pulls, never state (the window still bounds it)', () => {
    const clock = new ManualClock(1_000_000);
    // n2 was away (restarted): its view starts from {n0, n1}…
    const members: ViewMember[] = ['n0', 'n1', 'n2'].map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: nodeId !== 'n2' }));
    const view = new ClusterView({ members: { current: () => members }, clock }, { selfId: 'n2', replicas: 1, maxHandedAwayKeys: 100, handoffWindowMs: 10_000 });
    const transport = silentTransport();
    const handoff = new Handoff(
      { store: new LimiterStore(clock, { routingHash }), view, transport, clock, ids: new FrameIds(1_000) },
      { selfId: 'n2', handoffWindowMs: 30_000, pullTimeoutMs: 500, maxTrackedKeys: 1_000, maxBatchSize: 100 },
    );
    view.onHandoffNews(() => handoff.pulls.handoffNews()); // as the cluster wires it
    view.onChange(() => handoff.pulls.handoffNews());
    // … and changes to {n0, n1, n2} when it is active.
    members[2]!.owns = true;
    view.refresh();
    const ownedHere = Array.from({ length: 200 }, (_, i) => `k${i}`).filter((k) => view.decidesHere('a', k));
    expect(ownedHere.length).toBeGreaterThan(20);
    // Nobody announced: the first access of a key owned here asks.
    expect(handoff.pulls.mayPull()).toBe(true);
    expect(handoff.pulls.pullIfNeeded('a', ownedHere[0]!)).toBeInstanceOf(Promise);
    const asked = transport.sent;
    expect(asked).toBeGreaterThan(0);
    // Both others announce their push for this ring: nothing to pull any more.
    for (const m of members) m.handed = view.ringVersion;
    view.refresh();
    expect(handoff.pulls.mayPull()).toBe(false);
    expect(handoff.pulls.pullIfNeeded('a', ownedHere[1]!)).toBeUndefined();
    expect(transport.sent).toBe(asked);
    // An announcement for another ring does not count.
    for (const m of members) m.handed = 'another ring';
    view.refresh();
    expect(handoff.pulls.mayPull()).toBe(true);
    // The window bounds it anyway: past handoffWindowMs, no key waits.
    clock.advance(30_001);
    expect(handoff.pulls.mayPull()).toBe(false);
    handoff.close();
  });
});

describe('handoff announcements, on the pushing node', () => {
  it('announces — directly to the members and in gossip — once every frame of a push that spans many turns is acked, acks arriving between turns', async () => {
    const clock = new ManualClock(1_000_000);
    const members: ViewMember[] = ['n0', 'n1', 'n2'].map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: nodeId !== 'n2' }));
    const view = new ClusterView({ members: { current: () => members }, clock }, { selfId: 'n0', replicas: 1, maxHandedAwayKeys: 100, handoffWindowMs: 10_000 });
    const store = new LimiterStore(clock, { routingHash });
    for (let i = 0; i < 5_000; i++) store.allow({ key: `k${i}`, action: 'a', limit: 5, windowMs: WINDOW_MS });
    const ids = new FrameIds(10_000);
    const done: { to: string; version: string }[] = [];
    let handoffFrames = 0;
    const transport = {
      send: (address: string, bytes: Uint8Array) => {
        const frame = decodeFrame(bytes);
        if (frame?.type === FrameType.Handoff) {
          handoffFrames++;
          setImmediate(() => ids.deliverAck(frame.id)); // acked before the walk's next turn
        }
        if (frame?.type === FrameType.HandoffDone) done.push({ to: address, version: frame.version });
        return true;
      },
      onFrame: () => undefined,
      onPeerDown: () => undefined,
      disconnect: () => undefined,
      close: () => Promise.resolve(),
    };
    const announced: string[] = [];
    const handoff = new Handoff(
      { store, view, transport, clock, ids, announce: (version) => announced.push(version) },
      { selfId: 'n0', handoffWindowMs: 30_000, pullTimeoutMs: 500, maxTrackedKeys: 1_000, maxBatchSize: 50 },
    );
    view.onChange(() => handoff.pushMoved());
    members[2]!.owns = true;
    view.refresh();
    await waitFor(() => announced.length > 0, 5_000, 'the announcement');
    expect(handoffFrames).toBeGreaterThan(5);
    expect(announced).toEqual([view.ringVersion]);
    expect(done.map((d) => d.to).sort()).toEqual(['n1:1', 'n2:1']);
    expect(done.every((d) => d.version === view.ringVersion)).toBe(true);
    expect(handoff.stats.announcements).toBe(1);
    handoff.close();
  });

  it('a push with a frame never acked announces nothing: the new owner keeps pulling from this node (bounded by the window)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const clock = new ManualClock(1_000_000);
      const members: ViewMember[] = ['n0', 'n1', 'n2'].map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: nodeId !== 'n2' }));
      const view = new ClusterView({ members: { current: () => members }, clock }, { selfId: 'n0', replicas: 1, maxHandedAwayKeys: 100, handoffWindowMs: 10_000 });
      const store = new LimiterStore(clock, { routingHash });
      for (let i = 0; i < 500; i++) store.allow({ key: `k${i}`, action: 'a', limit: 5, windowMs: WINDOW_MS });
      const announced: string[] = [];
      const handoff = new Handoff(
        { store, view, transport: silentTransport(), clock, ids: new FrameIds(1_000), announce: (version) => announced.push(version) },
        { selfId: 'n0', handoffWindowMs: 30_000, pullTimeoutMs: 500, maxTrackedKeys: 1_000, maxBatchSize: 50 },
      );
      view.onChange(() => handoff.pushMoved());
      members[2]!.owns = true;
      view.refresh();
      vi.advanceTimersByTime(10_000);
      expect(announced).toEqual([]);
      expect(handoff.stats.announcements).toBe(0);
      handoff.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a member told directly (HandoffDone) stops pulling from the teller before gossip brings the meta', () => {
    const clock = new ManualClock(1_000_000);
    const members: ViewMember[] = ['n0', 'n1', 'n2'].map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: nodeId !== 'n2' }));
    const view = new ClusterView({ members: { current: () => members }, clock }, { selfId: 'n2', replicas: 1, maxHandedAwayKeys: 100, handoffWindowMs: 10_000 });
    const handoff = new Handoff(
      { store: new LimiterStore(clock, { routingHash }), view, transport: silentTransport(), clock, ids: new FrameIds(1_000) },
      { selfId: 'n2', handoffWindowMs: 30_000, pullTimeoutMs: 500, maxTrackedKeys: 1_000, maxBatchSize: 100 },
    );
    view.onHandoffNews(() => handoff.pulls.handoffNews());
    view.onChange(() => handoff.pulls.handoffNews());
    members[2]!.owns = true;
    view.refresh();
    expect(handoff.pulls.mayPull()).toBe(true);
    handoff.peerHandedOver('n0', view.ringVersion);
    expect(handoff.pulls.mayPull()).toBe(true);
    // A stranger's word, or one for another ring, counts for nothing.
    handoff.peerHandedOver('n9', view.ringVersion);
    handoff.peerHandedOver('n1', 'another ring');
    expect(handoff.pulls.mayPull()).toBe(true);
    handoff.peerHandedOver('n1', view.ringVersion);
    expect(handoff.pulls.mayPull()).toBe(false);
    expect(handoff.stats.peersPending).toBe(0);
    handoff.close();
  });
});

describe('a previous owner keeps deciding the keys it has not pushed yet', () => {
  it('routes a moved key here until the paced push has sent it, then to its new owner; state always travels before the forwards', async () => {
    const clock = new ManualClock(1_000_000);
    const members: ViewMember[] = ['n0', 'n1', 'n2'].map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: nodeId !== 'n2' }));
    const view = new ClusterView({ members: { current: () => members }, clock }, { selfId: 'n0', replicas: 1, maxHandedAwayKeys: 100, handoffWindowMs: 10_000 });
    const store = new LimiterStore(clock, { routingHash });
    const keys = Array.from({ length: 6_000 }, (_, i) => `k${i}`);
    for (const key of keys) store.allow({ key, action: 'a', limit: 5, windowMs: WINDOW_MS });
    const ids = new FrameIds(10_000);
    const heldFrames: number[] = [];
    const pushed = new Set<string>();
    const transport = {
      send: (_address: string, bytes: Uint8Array) => {
        const frame = decodeFrame(bytes);
        if (frame?.type === FrameType.Handoff) {
          heldFrames.push(frame.id); // acked only when the test says so
          for (const e of frame.entries) pushed.add(e.key);
        }
        return true;
      },
      onFrame: () => undefined,
      onPeerDown: () => undefined,
      disconnect: () => undefined,
      close: () => Promise.resolve(),
    };
    const handoff = new Handoff({ store, view, transport, clock, ids }, { selfId: 'n0', handoffWindowMs: 30_000, pullTimeoutMs: 500, maxTrackedKeys: 10_000, maxBatchSize: 10_000 });
    const ownedBefore = keys.filter((k) => view.decidesHere('a', k));
    view.onChange(() => handoff.pushMoved());
    members[2]!.owns = true;
    view.refresh();
    const movedAtAll = ownedBefore.filter((k) => new Ring(['n0', 'n1', 'n2'].map((nodeId) => ({ nodeId }))).owner(routingKey('a', k)) === 'n2');
    expect(movedAtAll.length).toBeGreaterThan(200);
    // The first chunk went out and waits for its ack: its keys go to n2; the rest are still decided here.
    expect(heldFrames.length).toBe(1);
    const sentFirst = movedAtAll.filter((k) => pushed.has(k));
    const notYet = movedAtAll.filter((k) => !pushed.has(k));
    expect(sentFirst.length).toBeGreaterThan(0);
    expect(notYet.length).toBeGreaterThan(0);
    for (const k of sentFirst) expect(view.decidesHere('a', k)).toBe(false);
    for (const k of notYet) expect(view.decidesHere('a', k)).toBe(true);
    // Acks come back chunk by chunk: the walk goes on, and each moved key leaves once sent.
    for (let i = 0; i < 200 && pushed.size < movedAtAll.length; i++) {
      for (const id of heldFrames.splice(0)) ids.deliverAck(id);
      await new Promise((r) => setImmediate(r));
    }
    for (const id of heldFrames.splice(0)) ids.deliverAck(id);
    await waitFor(() => movedAtAll.every((k) => !view.decidesHere('a', k)), 2_000, 'every moved key to be routed to n2');
    expect(movedAtAll.every((k) => pushed.has(k))).toBe(true);
    handoff.close();
  });

  it('a ring-aware client is told the old owners until every member announced its push for the new ring', () => {
    const clock = new ManualClock(1_000_000);
    const members: ViewMember[] = ['n0', 'n1', 'n2'].map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: nodeId !== 'n2' }));
    const view = new ClusterView({ members: { current: () => members }, clock }, { selfId: 'n0', replicas: 1, maxHandedAwayKeys: 100, handoffWindowMs: 10_000 });
    const ids = (list: { nodeId: string }[]): string[] => list.map((m) => m.nodeId).sort();
    expect(ids(view.clientOwners())).toEqual(['n0', 'n1']);
    members[2]!.owns = true;
    view.refresh();
    expect(view.ownerIds()).toEqual(['n0', 'n1', 'n2']);
    expect(ids(view.clientOwners())).toEqual(['n0', 'n1']);
    members[0]!.handed = view.ringVersion;
    members[1]!.handed = view.ringVersion;
    view.refresh();
    expect(ids(view.clientOwners())).toEqual(['n0', 'n1']);
    view.noteHandedOver('n2', view.ringVersion);
    expect(ids(view.clientOwners())).toEqual(['n0', 'n1', 'n2']);
    // n2 drains: clients keep sending its keys to it (it forwards what it pushed) until the handoff is over…
    members[2]!.owns = false;
    view.refresh();
    expect(ids(view.clientOwners())).toEqual(['n0', 'n1', 'n2']);
    // …but a member of the old ring that is gone: the new ring at once (the old one would send callers to it).
    members.splice(1, 1);
    view.refresh();
    expect(ids(view.clientOwners())).toEqual(['n0']);
  });
});
