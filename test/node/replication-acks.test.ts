import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/common/clock.js';
import { LimiterStore } from '../../src/limiter/store.js';
import { ClusterView, routingHash, type ViewMember } from '../../src/node/routing/cluster-view.js';
import { Handoff } from '../../src/node/state/handoff.js';
import { Replicator } from '../../src/node/state/replicator.js';
import { decodeFrame } from '../../src/node/wire/codec.js';
import { FrameIds, NO_ACK } from '../../src/node/wire/frame-ids.js';
import { FrameType, type WireEntry } from '../../src/node/wire/frames.js';
import { toWireEntry } from '../../src/node/wire/state-wire.js';

const WINDOW_MS = 86_400_000;

/** n0 (this node) and n1, both owning: every key n0 owns has n1 as its replica. */
function twoNodes() {
  const clock = new ManualClock(1_000_000);
  const members: ViewMember[] = ['n0', 'n1'].map((nodeId) => ({ nodeId, address: `${nodeId}:1`, owns: true }));
  const view = new ClusterView({ members: { current: () => members }, clock }, { selfId: 'n0', replicas: 1, maxHandedAwayKeys: 100, handoffWindowMs: 10_000 });
  const store = new LimiterStore(clock, { routingHash, trackChanges: true });
  const ids = new FrameIds(1_000);
  const sent: { type: FrameType; id: number; entries: number }[] = [];
  const transport = {
    send: (_address: string, bytes: Uint8Array) => {
      const frame = decodeFrame(bytes);
      if (frame?.type === FrameType.Replicate || frame?.type === FrameType.Handoff) sent.push({ type: frame.type, id: frame.id, entries: frame.entries.length });
      return true;
    },
    onFrame: () => undefined,
    onPeerDown: () => undefined,
    disconnect: () => undefined,
    close: () => Promise.resolve(),
  };
  const replicator = new Replicator({ store, view, transport, clock, ids }, { selfId: 'n0', replicas: 1, replicationDelayMs: 1, replicationMaxDelayMs: 40, replicationMinBatch: 8, maxBatchSize: 1_000, ackTimeoutMs: 1_000, resyncSlotsPerTurn: 1_000 });
  return { clock, view, store, ids, sent, transport, replicator };
}

const realMs = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('a quiet node replicates in fuller frames', () => {
  it('with fewer than replicationMinBatch decisions waiting, the flush waits until replicationMaxDelayMs after the first; with as many (even on few keys), it goes every replicationDelayMs', async () => {
    const { clock, store, sent, replicator, view } = twoNodes();
    const owned = Array.from({ length: 400 }, (_, i) => `q${i}`).filter((k) => view.ownerOf('a', k) === 'n0');
    // As OwnerDecision does: changed() after each decision.
    const decide = (keys: string[]) => {
      for (const key of keys) {
        store.allow({ key, action: 'a', limit: 5, windowMs: WINDOW_MS });
        replicator.changed();
      }
    };
    decide(owned.slice(0, 2));
    // The timer runs every 1 ms (real time); the node's clock stands still: 2 changes wait.
    await realMs(30);
    expect(sent).toEqual([]);
    clock.advance(40); // the first change is now replicationMaxDelayMs old
    for (let i = 0; i < 100 && sent.length === 0; i++) await realMs(2);
    expect(sent.map((f) => f.entries)).toEqual([2]);
    sent.length = 0;
    decide(owned.slice(2, 12)); // 10 ≥ replicationMinBatch: no waiting for the clock
    for (let i = 0; i < 100 && sent.length === 0; i++) await realMs(2);
    expect(sent.map((f) => f.entries)).toEqual([10]);
    sent.length = 0;
    // Two keys decided 5 times each: 10 decisions a crash would lose, not a quiet owner.
    decide([...owned.slice(12, 14), ...owned.slice(12, 14), ...owned.slice(12, 14), ...owned.slice(12, 14), ...owned.slice(12, 14)]);
    for (let i = 0; i < 100 && sent.length === 0; i++) await realMs(2);
    expect(sent.map((f) => f.entries)).toEqual([2]);
    replicator.close();
  });
});

describe('a quiet owner sleeps until its flush is due', () => {
  it('one wake-up per flush, not one per replicationDelayMs while changes wait', async () => {
    const { clock, store, sent, replicator, view } = twoNodes();
    const owned = Array.from({ length: 400 }, (_, i) => `s${i}`).filter((k) => view.ownerOf('a', k) === 'n0');
    let ticks = 0;
    let proto: object | null = store;
    while (proto !== null && Object.getOwnPropertyDescriptor(proto, 'pendingChanges') === undefined) proto = Object.getPrototypeOf(proto) as object | null;
    const pending = Object.getOwnPropertyDescriptor(proto!, 'pendingChanges')!.get!;
    Object.defineProperty(store, 'pendingChanges', { get: () => (ticks++, pending.call(store)) });
    store.allow({ key: owned[0]!, action: 'a', limit: 5, windowMs: WINDOW_MS });
    replicator.changed();
    // 60 ms of real time while the node's clock stands still: the change is never due meanwhile.
    await realMs(60);
    expect(sent).toEqual([]);
    // A timer polling every replicationDelayMs (1 ms) looked dozens of times; a sleeping one once or twice.
    expect(ticks).toBeLessThanOrEqual(3);
    clock.advance(40);
    for (let i = 0; i < 100 && sent.length === 0; i++) await realMs(5);
    expect(sent.map((f) => f.entries)).toEqual([1]);
    replicator.close();
  });
});

describe('replication asks for an ack only where someone waits for it', () => {
  it('async flushes send NO_ACK frames but one lag probe per 100 ms; a flush that waits (sync replication, a drain) asks for every ack', async () => {
    const { clock, store, sent, replicator } = twoNodes();
    let key = 0;
    // 5 ms flushes for 1 s, each with a change: about 10 probes, the other ~190 frames unacked.
    for (let i = 0; i < 200; i++) {
      store.allow({ key: `k${key++}`, action: 'a', limit: 5, windowMs: WINDOW_MS });
      replicator.changed();
      replicator.flush();
      clock.advance(5);
    }
    const replicated = sent.filter((f) => f.type === FrameType.Replicate);
    const probes = replicated.filter((f) => f.id !== NO_ACK);
    expect(replicated.length).toBeGreaterThan(50); // n0 owns about half of the keys, and n1 holds the copy of each
    expect(probes.length).toBeGreaterThanOrEqual(5);
    expect(probes.length).toBeLessThanOrEqual(11);
    sent.length = 0;
    for (let i = 0; i < 40; i++) store.allow({ key: `w${i}`, action: 'a', limit: 5, windowMs: WINDOW_MS });
    const waited = replicator.flushAndWait();
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.every((f) => f.id !== NO_ACK)).toBe(true);
    for (const f of sent) replicator.onAck(f.id);
    await waited;
    replicator.close();
  });

  it('a replica acks a frame that asks (any id but NO_ACK), and sends nothing back for one that does not; both are applied', () => {
    const { store, replicator } = twoNodes();
    const replies: number[] = [];
    const reply = (bytes: Uint8Array) => {
      const frame = decodeFrame(bytes);
      if (frame?.type === FrameType.Ack) replies.push(frame.id);
    };
    // n1 owns some keys: find two, and send them as n1's replication to n0 (their replica).
    const { view } = twoNodes();
    const ofN1 = Array.from({ length: 200 }, (_, i) => `r${i}`).filter((k) => view.ownerOf('a', k) === 'n1');
    expect(ofN1.length).toBeGreaterThan(2);
    const entry = (key: string) => ({ action: 'a', key, algorithm: 0, cells: [-1_000, 1, 0, 0] as [number, number, number, number] });
    replicator.receive(NO_ACK, [entry(ofN1[0]!)], 'n1', reply);
    replicator.receive(42, [entry(ofN1[1]!)], 'n1', reply);
    expect(replies).toEqual([42]);
    expect(replicator.stats.entriesReceived).toBe(2);
    expect(store.stats().keys).toBe(2);
    replicator.close();
  });

  it('a handoff receiver acks pushes that ask, not those with NO_ACK', () => {
    const { clock, view, store, ids, transport } = twoNodes();
    const handoff = new Handoff({ store, view, transport, clock, ids }, { selfId: 'n0', handoffWindowMs: 30_000, pullTimeoutMs: 500, maxTrackedKeys: 1_000, maxBatchSize: 1_000 });
    const replies: number[] = [];
    const reply = (bytes: Uint8Array) => {
      const frame = decodeFrame(bytes);
      if (frame?.type === FrameType.Ack) replies.push(frame.id);
    };
    handoff.receive(NO_ACK, [], 'n1', reply);
    handoff.receive(9, [], 'n1', reply);
    expect(replies).toEqual([9]);
    handoff.close();
  });

  it('a pushed state new here whose sender is the key’s only other holder is not replicated back to it; any other goes on to the replicas', () => {
    const { clock, view, store, ids, transport } = twoNodes();
    const handoff = new Handoff({ store, view, transport, clock, ids }, { selfId: 'n0', handoffWindowMs: 30_000, pullTimeoutMs: 500, maxTrackedKeys: 1_000, maxBatchSize: 1_000 });
    // States decided by the pusher (once each, limit 5), for keys n0 owns with n1 as their replica.
    const pusher = new LimiterStore(clock, { routingHash, trackChanges: true });
    const owned = Array.from({ length: 200 }, (_, i) => `h${i}`).filter((k) => view.ownerOf('a', k) === 'n0');
    for (const key of owned) pusher.allow({ key, action: 'a', limit: 5, windowMs: WINDOW_MS });
    const entries: WireEntry[] = [];
    pusher.forEachEntry((action, key, algorithm, cells, base) => entries.push(toWireEntry(action, key, algorithm, cells, base, clock.now())));
    const half = entries.length >> 1;
    // From n1, the replica: it keeps the very state it sent.
    handoff.receive(NO_ACK, entries.slice(0, half), 'n1', () => undefined);
    expect(handoff.stats.keptBySender).toBe(half);
    expect(store.pendingChanges).toBe(0);
    // From a node that holds no copy now (it left, or its view lags): those go on to the replica.
    handoff.receive(NO_ACK, entries.slice(half), 'n9', () => undefined);
    expect(handoff.stats.keptBySender).toBe(half);
    expect(store.pendingChanges).toBe(entries.length - half);
    // Owned here either way: the next decision counts from the pushed state, and replicates.
    store.drainChanges(() => undefined);
    const first = entries[0]!;
    expect(store.allow({ key: first.key, action: 'a', limit: 5, windowMs: WINDOW_MS }).remaining).toBe(3);
    expect(store.pendingChanges).toBe(1);
    handoff.close();
  });
});

describe('the resync after a ring change is paced by its acks', () => {
  it('sends a chunk of frames that ask for acks and waits for them (or RESYNC_ACK_WAIT_MS) before the next: a new holder takes the copies a chunk at a time', async () => {
    const { store, sent, replicator, ids, view } = twoNodes();
    const owned = Array.from({ length: 6_000 }, (_, i) => `r${i}`).filter((k) => view.ownerOf('a', k) === 'n0');
    for (const key of owned) store.allow({ key, action: 'a', limit: 5, windowMs: WINDOW_MS });
    store.drainChanges(() => undefined);
    replicator.resyncOwned(); // no resync done before: every key goes to n1
    const entriesOf = (frames: typeof sent) => frames.reduce((n, f) => n + f.entries, 0);
    for (let i = 0; i < 100 && sent.length === 0; i++) await realMs(2);
    const firstSeenAt = performance.now();
    const first = sent.slice();
    expect(first.every((f) => f.type === FrameType.Replicate && f.id !== NO_ACK)).toBe(true);
    // A chunk (≥ 512 entries gathered, at most one 1,024-slot step past it), not the whole store.
    expect(entriesOf(first)).toBeGreaterThanOrEqual(512);
    expect(entriesOf(first)).toBeLessThan(owned.length / 2);
    await realMs(40);
    expect(sent.length).toBe(first.length);
    // Acked: the next chunk goes — before RESYNC_ACK_WAIT_MS (250 ms) after the first was sent
    // would have let it go anyway.
    for (const f of first) ids.deliverAck(f.id);
    for (let i = 0; i < 100 && sent.length === first.length; i++) await realMs(2);
    expect(sent.length).toBeGreaterThan(first.length);
    expect(performance.now() - firstSeenAt).toBeLessThan(230);
    // Never acked: the walk goes on after its wait (an old node's lost ack costs a pause, not the resync).
    const second = sent.length;
    for (let i = 0; i < 200 && sent.length === second; i++) await realMs(5);
    expect(sent.length).toBeGreaterThan(second);
    // Acking everything from here on, the walk finishes: every owned key sent once.
    for (let i = 0; i < 400 && entriesOf(sent) < owned.length; i++) {
      for (const f of sent) ids.deliverAck(f.id);
      await realMs(2);
    }
    expect(entriesOf(sent)).toBe(owned.length);
    expect(replicator.stats.resyncEntriesSent).toBe(owned.length);
    replicator.close();
  });
});
