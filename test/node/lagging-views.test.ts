import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { LimiterStore } from '../../src/limiter/store.js';
import type { Reservation } from '../../src/limiter/types.js';
import { ClusterView, routingHash, routingKey, type ViewMember } from '../../src/node/routing/cluster-view.js';
import { OwnerDecision, resolveOnce, type ResolvedRequest } from '../../src/node/routing/owner-decision.js';
import { ForwardServer } from '../../src/node/routing/forward-server.js';
import { forwardItem } from '../../src/node/routing/forward-codec.js';
import type { Forwarder, PendingForward } from '../../src/node/routing/forwarder.js';
import { Handoff } from '../../src/node/state/handoff.js';
import type { PeerTransport } from '../../src/node/transport/peer-transport.js';
import { decodeFrame, encodeFrame } from '../../src/node/wire/codec.js';
import { decodeMsgpack, encodeMsgpack } from '../../src/node/wire/msgpack.js';
import { FrameIds, NO_ACK } from '../../src/node/wire/frame-ids.js';
import { FrameType, type WireEntry } from '../../src/node/wire/frames.js';
import { toWireEntry } from '../../src/node/wire/state-wire.js';
import { versionOf } from '../../src/node/routing/ring-keys.js';
import { Ring } from '../../src/ring/index.js';

/**
 * Members' views of the ring change at different moments: while three nodes form a cluster,
 * one may still see {n0} while another sees {n0, n2} and a third {n0, n1, n2}. Each decides
 * the keys it owns on the ring it sees. These check that a key's state, and the right to
 * decide it, follow it through every ring since the cluster last settled — not only the last
 * one (over-admission at cluster formation, found in CI: 152 allowed where 150 were due).
 */

const ring = (...ids: string[]): Ring => new Ring(ids.map((nodeId) => ({ nodeId })));
const ownerOn = (r: Ring, key: string): string | undefined => r.owner(routingKey('a', key));

/** Three members; only n0 active at first. */
function forming(selfId: string): { view: ClusterView; members: ViewMember[]; clock: ManualClock } {
  const clock = new ManualClock(1_000_000);
  const members: ViewMember[] = ['n0', 'n1', 'n2'].map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: nodeId === 'n0' }));
  const view = new ClusterView({ members: { current: () => members }, clock }, { selfId, replicas: 1, maxHandedAwayKeys: 100, handoffWindowMs: 10_000 });
  return { view, members, clock };
}

function activate(v: { view: ClusterView; members: ViewMember[] }, nodeId: string): void {
  v.members.find((m) => m.nodeId === nodeId)!.owns = true;
  v.view.refresh();
}

/** A key whose owner on each ring is the one given. */
function keyOwnedAs(rings: Ring[], owners: string[]): string {
  for (let i = 0; i < 100_000; i++) if (rings.every((r, j) => ownerOn(r, `k${i}`) === owners[j])) return `k${i}`;
  throw new Error(`no key owned by ${owners.join(' then ')}`);
}

describe('ClusterView through rings that changed before the cluster settled', () => {
  it('a new owner pulls from the owner on each ring since the cluster last settled, even where it owned the key on the ring just before', () => {
    const v = forming('n2');
    activate(v, 'n2'); // n2 sees {n0, n2}…
    activate(v, 'n1'); // …then {n0, n1, n2}; nobody has announced a push
    // Owned by n0 on {n0}, by n2 on {n0, n2} and now: n0 may still see {n0} and decide it.
    const key = keyOwnedAs([ring('n0'), ring('n0', 'n2'), ring('n0', 'n1', 'n2'), ring('n0', 'n1', 'n2', 'n3')], ['n0', 'n2', 'n2', 'n2']);
    expect(v.view.ownedHereBefore('a', key)).toBe(false);
    const out: string[] = [];
    const n = v.view.pullSourcesInto('a', key, out);
    expect(out.slice(0, n)).toContain('n0');
    expect(out.slice(0, n)).not.toContain('n2');
    // Once every member (this one too) announced its push for the ring, the next change starts afresh.
    for (const m of v.members) m.handed = v.view.ringVersion;
    v.view.refresh();
    v.members.push({ nodeId: 'n3', address: 'n3:1', owns: true });
    v.view.refresh();
    expect(v.view.decidesHere('a', key)).toBe(true);
    expect(v.view.ownedHereBefore('a', key)).toBe(true);
  });

  it('at a change, a peer that already announced the ring coming in counts as announced: the earlier rings are let go', () => {
    const v = forming('n2');
    activate(v, 'n2');
    activate(v, 'n1'); // {n0} and {n0, n2} kept: nobody announced
    const key = keyOwnedAs([ring('n0'), ring('n0', 'n2'), ring('n0', 'n1', 'n2'), ring('n0', 'n1', 'n2', 'n3')], ['n0', 'n2', 'n2', 'n2']);
    // This node announced the ring in force; the faster peers have moved on and announced the next one (which replaces it).
    v.members.find((m) => m.nodeId === 'n2')!.handed = v.view.ringVersion;
    for (const id of ['n0', 'n1']) v.members.find((m) => m.nodeId === id)!.handed = versionOf(ring('n0', 'n1', 'n2', 'n3'));
    v.members.push({ nodeId: 'n3', address: 'n3:1', owns: true });
    v.view.refresh();
    expect(v.view.ownedHereBefore('a', key)).toBe(true); // only {n0, n1, n2} is kept, where n2 owned it
  });

  it('a ring older than handoffWindowMs counts as settled at the next change, announced or not', () => {
    const v = forming('n2');
    activate(v, 'n2');
    v.clock.advance(10_001);
    activate(v, 'n1');
    // (A key that n1, new on this ring and silent so far, would not own without n2: see the newcomer case below.)
    const key = keyOwnedAs([ring('n0'), ring('n0', 'n2'), ring('n0', 'n1', 'n2'), ring('n0', 'n1')], ['n0', 'n2', 'n2', 'n0']);
    expect(v.view.ownedHereBefore('a', key)).toBe(true);
  });

  it('pushes a key it owned on an earlier unsettled ring to its owner now, though the owner in between is alive', () => {
    const v = forming('n0');
    activate(v, 'n2');
    activate(v, 'n1');
    const key = keyOwnedAs([ring('n0'), ring('n0', 'n2'), ring('n0', 'n1', 'n2')], ['n0', 'n2', 'n1']);
    expect(v.view.handOverTo('a', key)).toBe('n1');
    expect(v.view.handOverTo('a', key, routingHash('a', key))).toBe('n1');
  });

  it('routes a key it handed away on a pull to the puller while the puller is a member, before this view shows it active', () => {
    const v = forming('n0'); // n0 still sees {n0}: n1 is a member, joining
    const key = 'handed';
    v.view.markHandedAway('a', key, 'n1', 1_000_000 + 10_000);
    expect(v.view.ownerOf('a', key)).toBe('n1');
    const out: string[] = [];
    expect(v.view.placement('a', key, out)).toBeGreaterThan(0);
    expect(out[0]).toBe('n1');
    // Gone from the members: the mark goes with it.
    v.members.splice(1, 1);
    v.view.refresh();
    expect(v.view.ownerOf('a', key)).toBe('n0');
  });
});

describe('ClusterView: a newcomer that may have decided a key on a ring of its own', () => {
  it('is asked before a key this node owned on every ring it saw is decided here, until it announces its push', () => {
    const v = forming('n2');
    activate(v, 'n2'); // n2 sees {n0, n2}, and it settles: both announce it
    for (const m of v.members) if (m.nodeId !== 'n1') m.handed = v.view.ringVersion;
    v.view.refresh();
    activate(v, 'n1'); // {n0, n1, n2}: n1 joined beside n2 and may have seen only {n0, n1}
    const all = ring('n0', 'n1', 'n2');
    const withN1After = keyOwnedAs([ring('n0', 'n2'), all, ring('n0', 'n1')], ['n2', 'n2', 'n1']);
    const withN0After = keyOwnedAs([ring('n0', 'n2'), all, ring('n0', 'n1')], ['n2', 'n2', 'n0']);
    expect(v.view.ownedHereBefore('a', withN1After)).toBe(false);
    const out: string[] = [];
    expect(out.slice(0, v.view.pullSourcesInto('a', withN1After, out))).toContain('n1');
    expect(v.view.ownedHereBefore('a', withN0After)).toBe(true); // n0 was on the earlier ring: it would have pulled or pushed
    // Once n1 announced its push for the ring in force, it has nothing more for us.
    v.members.find((m) => m.nodeId === 'n1')!.handed = v.view.ringVersion;
    v.view.refresh();
    expect(v.view.ownedHereBefore('a', withN1After)).toBe(true);
  });
});

describe('OwnerDecision: a request whose key moved on while it waited for a pull', () => {
  function setUp(stillHere: boolean): { decision: OwnerDecision; routed: ResolvedRequest[]; store: LimiterStore; release: () => void } {
    const store = new LimiterStore(new ManualClock(1_000_000));
    let release!: () => void;
    const pull = new Promise<void>((resolve) => (release = resolve));
    const decision = new OwnerDecision({ store, puller: { mayPull: () => true, pullIfNeeded: () => pull } }, { syncReplication: false });
    const routed: ResolvedRequest[] = [];
    const elsewhere: Reservation = { allowed: true, limit: 5, remaining: 99, resetAtMs: 0, retryAfterMs: 0, waitMs: 0 };
    decision.routeMovedKeysBy({ decidesHere: () => stillHere, route: (p) => (routed.push(p), elsewhere) });
    return { decision, routed, store, release };
  }
  const request = resolveOnce({ key: 'u', action: 'a', limit: 5, windowMs: 60_000 });

  it('is routed again, not decided here, when this node no longer owns the key', async () => {
    const { decision, routed, store, release } = setUp(false);
    const answer = decision.decide(request, -1);
    release();
    expect((await answer).remaining).toBe(99);
    expect(routed).toHaveLength(1);
    expect(store.keyCount).toBe(0);
    expect(decision.movedDuringPull).toBe(1);
  });

  it('is decided here when the key is still this node’s', async () => {
    const { decision, routed, release } = setUp(true);
    const answer = decision.decide(request, -1);
    release();
    expect((await answer).remaining).toBe(4);
    expect(routed).toHaveLength(0);
  });
});

describe('Handoff.receive: a pushed state for a key owned elsewhere', () => {
  function setUp(): { handoff: Handoff; view: ClusterView; sent: { address: string; frame: Uint8Array }[]; entryFor: (key: string) => WireEntry } {
    const clock = new ManualClock(1_000_000);
    const members: ViewMember[] = ['n0', 'n1', 'n2'].map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: true }));
    const view = new ClusterView({ members: { current: () => members }, clock }, { selfId: 'n2', replicas: 1, maxHandedAwayKeys: 100, handoffWindowMs: 10_000 });
    const sent: { address: string; frame: Uint8Array }[] = [];
    const transport = {
      send: (address: string, frame: Uint8Array) => (sent.push({ address, frame }), true),
      onFrame: () => undefined,
      onPeerDown: () => undefined,
      disconnect: () => undefined,
      close: () => Promise.resolve(),
    } as unknown as PeerTransport;
    const store = new LimiterStore(clock, { routingHash });
    const handoff = new Handoff({ store, view, transport, clock, ids: new FrameIds(1_000) }, { selfId: 'n2', handoffWindowMs: 10_000, pullTimeoutMs: 500, maxTrackedKeys: 1_000, maxBatchSize: 100 });
    const source = new LimiterStore(clock);
    const entryFor = (key: string): WireEntry => {
      source.allow({ key, action: 'a', limit: 5, windowMs: 60_000 });
      const cells = new Float64Array(4);
      const algorithm = source.readEntry('a', key, cells);
      return toWireEntry('a', key, algorithm as 0, cells, 0, clock.now());
    };
    return { handoff, view, sent, entryFor };
  }

  it('goes on to its owner once (an acked push is relayed as an unacked frame, never back to its sender), and is kept here too', () => {
    const { handoff, view, sent, entryFor } = setUp();
    const all = ring('n0', 'n1', 'n2');
    const toN1 = keyOwnedAs([all], ['n1']);
    const toN0 = keyOwnedAs([all], ['n0']);
    const replies: Uint8Array[] = [];
    handoff.receive(7, [entryFor(toN1), entryFor(toN0)], 'n0', (f) => replies.push(f));
    expect(decodeFrame(replies[0]!)).toMatchObject({ type: FrameType.Ack, id: 7 });
    expect(sent).toHaveLength(1);
    expect(sent[0]!.address).toBe(view.addressOf('n1'));
    const relayed = decodeFrame(sent[0]!.frame);
    expect(relayed).toMatchObject({ type: FrameType.Handoff, id: NO_ACK });
    expect(relayed?.type === FrameType.Handoff ? relayed.entries.map((e) => e.key) : []).toEqual([toN1]);
    expect(handoff.stats.relayedEntries).toBe(1);
    // A relay is not relayed again.
    handoff.receive(NO_ACK, [entryFor(toN1)], 'n0', () => undefined);
    expect(sent).toHaveLength(1);
    handoff.close();
  });
});

describe('ForwardServer: a key brought back by the node it was handed to', () => {
  /** n0 of {n0, n1, n2} owns the key by its ring, and handed it to n1 on n1's pull (n1's view differed then). */
  function setUp() {
    const clock = new ManualClock(1_000_000);
    const members: ViewMember[] = ['n0', 'n1', 'n2'].map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: true }));
    const view = new ClusterView({ members: { current: () => members }, clock }, { selfId: 'n0', replicas: 1, maxHandedAwayKeys: 100, handoffWindowMs: 10_000 });
    const key = keyOwnedAs([ring('n0', 'n1', 'n2')], ['n0']);
    view.markHandedAway('a', key, 'n1', clock.now() + 10_000);
    const store = new LimiterStore(clock, { routingHash });
    const relays: PendingForward[] = [];
    const forwarder = { relay: (pending: PendingForward) => void relays.push(pending) } as unknown as Forwarder;
    const server = new ForwardServer({ clock, view, decision: new OwnerDecision({ store }, { syncReplication: false }), forwarder });
    const item = forwardItem(7, resolveOnce({ key, action: 'a', limit: 5, windowMs: 60_000 }), -1);
    const replies: Uint8Array[] = [];
    return { view, key, relays, server, item, replies, reply: (f: Uint8Array) => void replies.push(f) };
  }

  it('from that node (which routes it here now): the stale mark is dropped and the key decided here, not sent back to be decided there too', () => {
    const { view, key, relays, server, item, replies, reply } = setUp();
    server.serve(1, [item], reply, 'n1');
    expect(relays).toEqual([]);
    expect(server.stats.marksReleased).toBe(1);
    const answer = decodeFrame(replies[0]!);
    expect(answer?.type === FrameType.ForwardReply ? answer.results.map((r) => r.allowed) : []).toEqual([true]);
    expect(view.ownerOf('a', key)).toBe('n0');
  });

  it('from another node: the mark holds, and the forward goes on to the node it names', () => {
    const { view, key, relays, server, item, reply } = setUp();
    server.serve(1, [item], reply, 'n2');
    expect(relays.map((r) => r.candidates)).toEqual([['n1']]);
    expect(server.stats.marksReleased).toBe(0);
    expect(view.ownerOf('a', key)).toBe('n1');
  });
});

describe('KeyPulls: an answer that names the node deciding the key', () => {
  /**
   * Two newcomers at once: n1 sees {n0, n1}, n2 sees {n0, n2}, n0 still sees {n0}. Each
   * newcomer owns the key on its own ring and pulls it from n0. n1 asked first: n0 handed
   * the key to n1, which went on deciding it. n2's pull reaches n0 next, which no longer
   * decides the key: its answer names n1, and n2 routes the key there.
   */
  function formation() {
    const clock = new ManualClock(1_000_000);
    type Peer = { view: ClusterView; members: ViewMember[]; store: LimiterStore; handoff: Handoff; decision: OwnerDecision };
    const peers = new Map<string, Peer>();
    const queue: { to: string; from: string; frame: Uint8Array }[] = [];
    const transportOf = (self: string) =>
      ({
        send: (address: string, frame: Uint8Array) => (queue.push({ to: address.split(':')[0]!, from: self, frame }), true),
        onFrame: () => undefined,
        onPeerDown: () => undefined,
        disconnect: () => undefined,
        close: () => Promise.resolve(),
      }) as unknown as PeerTransport;
    const deliver = (to: string, from: string, bytes: Uint8Array): void => {
      const peer = peers.get(to)!;
      const frame = decodeFrame(bytes);
      const reply = (answer: Uint8Array) => queue.push({ to: from, from: to, frame: answer });
      if (frame?.type === FrameType.Pull) peer.handoff.pulls.answerPull(frame.id, frame.action, frame.key, from, reply);
      else if (frame?.type === FrameType.PullReply) peer.handoff.pulls.handlePullReply(frame.id, frame.entry);
      else if (frame?.type === FrameType.PullNamed) peer.handoff.pulls.handlePullNamed(frame.id, frame.handedTo);
      else if (frame?.type === FrameType.Handoff) peer.handoff.receive(frame.id, frame.entries, from, reply);
    };
    /** Delivers every frame in flight (and those they cause), a turn at a time. */
    const settle = async (): Promise<void> => {
      for (let i = 0; i < 100 && queue.length > 0; i++) {
        const { to, from, frame } = queue.shift()!;
        deliver(to, from, frame);
        await Promise.resolve();
      }
    };
    /** As a node's router does: decided at the owner its view names, one hop at most. */
    const routed = (nodeId: string, p: ResolvedRequest, hops: number): Reservation | Promise<Reservation> => {
      const peer = peers.get(nodeId)!;
      const owner = peer.view.ownerOf(p.action, p.key);
      return owner === nodeId || hops > 0 ? peer.decision.decide(p, -1) : routed(owner, p, hops + 1);
    };
    for (const [self, active] of [['n0', ['n0']], ['n1', ['n0', 'n1']], ['n2', ['n0', 'n2']]] as const) {
      const members: ViewMember[] = ['n0', 'n1', 'n2'].map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: nodeId === 'n0' }));
      const view = new ClusterView({ members: { current: () => members }, clock }, { selfId: self, replicas: 1, maxHandedAwayKeys: 100, handoffWindowMs: 10_000 });
      for (const id of active) if (id !== 'n0') (members.find((m) => m.nodeId === id)!.owns = true), view.refresh();
      const store = new LimiterStore(clock, { routingHash });
      const handoff = new Handoff({ store, view, transport: transportOf(self), clock, ids: new FrameIds(1_000) }, { selfId: self, handoffWindowMs: 10_000, pullTimeoutMs: 60_000, maxTrackedKeys: 1_000, maxBatchSize: 100 });
      const decision = new OwnerDecision({ store, puller: handoff.pulls }, { syncReplication: false });
      decision.routeMovedKeysBy({ decidesHere: (a, k) => view.ownerOf(a, k) === self, route: (p) => routed(self, p, 0) });
      peers.set(self, { view, members, store, handoff, decision });
    }
    const key = keyOwnedAs([ring('n0', 'n1'), ring('n0', 'n2')], ['n1', 'n2']);
    const request = resolveOnce({ key, action: 'a', limit: 5, windowMs: 60_000 });
    const decide = async (nodeId: string): Promise<boolean> => {
      const answer = routed(nodeId, request, 0);
      await settle();
      return (await answer).allowed;
    };
    return { peers, decide, key };
  }

  it('the puller routes the key to the named node instead of deciding it from a second state: no call past the limit', async () => {
    const { peers, decide, key } = formation();
    const allowed: boolean[] = [];
    for (let i = 0; i < 3; i++) allowed.push(await decide('n0')); // before anyone joined
    for (let i = 0; i < 2; i++) allowed.push(await decide('n1')); // pulls from n0 first: 3 + 2
    for (let i = 0; i < 3; i++) allowed.push(await decide('n2')); // pulls from n0, which names n1
    expect(allowed).toEqual([true, true, true, true, true, false, false, false]);
    const n2 = peers.get('n2')!;
    expect(n2.handoff.stats.routedToNamed).toBe(1);
    expect(n2.view.ownerOf('a', key)).toBe('n1');
    // n1 was never asked: it goes on deciding the key, on its own ring.
    expect(peers.get('n1')!.view.ownerOf('a', key)).toBe('n1');
    for (const peer of peers.values()) peer.handoff.close();
  });
});

describe('PullNamed on the wire', () => {
  it('carries the named node; a frame without a valid name is dropped (an older node drops the whole type and reads the PullReply after it)', () => {
    const named = encodeFrame({ type: FrameType.PullNamed, id: 3, handedTo: 'n1' });
    expect(decodeMsgpack(named)).toHaveLength(4);
    expect(decodeFrame(named)).toEqual({ type: FrameType.PullNamed, id: 3, handedTo: 'n1' });
    expect(decodeFrame(encodeMsgpack([1, FrameType.PullNamed, 3, '']))).toBeUndefined();
    expect(decodeFrame(encodeMsgpack([1, FrameType.PullNamed, 3, 7]))).toBeUndefined();
    expect(decodeFrame(encodeMsgpack([1, FrameType.PullNamed, 3, 'x'.repeat(100_000)]))).toBeUndefined();
    expect(decodeFrame(encodeMsgpack([1, FrameType.PullNamed, 3, 'n1', 'extra']))).toBeUndefined();
  });
});
