import type { Clock } from '../../common/clock.js';
import { STATE_STRIDE } from '../../limiter/algorithms/index.js';
import type { LimiterStore } from '../../limiter/store.js';
import type { AlgorithmId } from '../../limiter/types.js';
import { SenderVerdict, type ClusterView } from '../routing/cluster-view.js';
import { EntryOutbox, PacedWalk, requireRoutingHash } from './entry-outbox.js';
import { KeyPulls, type KeyPullsInit, type PullStats } from './pulls.js';
import { NO_ACK, type AckReceiver, type FrameIds } from '../wire/frame-ids.js';
import { fromWireEntry, toWireEntry } from '../wire/state-wire.js';
import type { PeerTransport, Reply } from '../transport/peer-transport.js';
import { encodeFrame } from '../wire/codec.js';
import { FrameType, type WireEntry } from '../wire/frames.js';

/** How long a push after a ring change waits for its last acks before it gives up announcing. */
const PUSH_ACK_TIMEOUT_MS = 5_000;
/**
 * A push after a ring change sends a chunk of slots, then waits for that chunk's acks (at most
 * this long) before the next: the new owner takes the state a frame at a time between the
 * requests forwarded to it, instead of a whole push ahead of them. Keys not sent yet are
 * decided here meanwhile (ClusterView.setStillHeld).
 */
const CHUNK_ACK_WAIT_MS = 500;

export interface HandoffComponents {
  store: LimiterStore;
  view: ClusterView;
  transport: PeerTransport;
  clock: Clock;
  ids: FrameIds;
  /** Told when a handed-over state was stored: it goes on to this node's replicas. */
  replication?: { changed(): void };
  /** Tells the other members that this node has pushed every state it held for ring `version` (META_HANDED). */
  announce?: (version: string) => void;
}

export interface HandoffInit extends KeyPullsInit {
  /** Entries per Handoff frame. */
  maxBatchSize: number;
}

export interface HandoffStats extends PullStats {
  pushedEntries: number;
  receivedEntries: number;
  /** Pushed entries dropped: their sender held no copy of the key by the ring, now or before the last change. */
  refusedEntries: number;
  /** Handoff frames of a drain that the new owner acked. */
  drainFramesAcked: number;
  /** Times this node announced that it pushed everything it held for a ring (after every ack). */
  announcements: number;
  /** Of pushedEntries, the states still waiting to be merged into a key, sent after its own (a key seldom has one). */
  pushedWaitingStates: number;
  /** Pushed entries for keys owned elsewhere, sent on to their owner (receive). */
  relayedEntries: number;
  /** Of receivedEntries, states new here whose sender keeps them as the key's only other holder: not replicated back. */
  keptBySender: number;
  /** Requests routed again after their pull: the ring changed meanwhile and their key moved on (OwnerDecision). */
  movedDuringPull: number;
}

/**
 * Moving key state when ownership changes — the handoff protocol, both ends.
 *
 * Pull on first access (KeyPulls): after a ring change, the first request for a key this
 * node now owns waits for its state from the members that may hold it and have not yet
 * announced their push.
 *
 * Push after every ring change: keys this node owned before and no longer owns go to
 * their new owner, whether or not it ever asks. Push on drain: a node that stops
 * gracefully sends every key it holds to the key's new owner. Receivers merge
 * conservatively.
 */
export class Handoff implements AckReceiver {
  readonly stats: HandoffStats = { pulls: 0, routedToNamed: 0, pullsAnswered: 0, pullTimeouts: 0, pushedEntries: 0, receivedEntries: 0, refusedEntries: 0, drainFramesAcked: 0, announcements: 0, pushedWaitingStates: 0, relayedEntries: 0, keptBySender: 0, movedDuringPull: 0, peersPending: 0 };
  private readonly cells = new Float64Array(STATE_STRIDE);
  private readonly outbox: EntryOutbox;
  private pushGeneration = 0;
  private nowMs = 0;
  /** Frames of the last ring change's push not yet acked, and the announcement that follows the last ack. */
  private readonly movedFrames = new Set<number>();
  private announceWhenAcked: (() => void) | undefined;
  private movedTimer: NodeJS.Timeout | undefined;
  /** The last ring change's walk has sent every frame (acks may be outstanding). */
  private movedWalkDone = false;
  /** A push after a ring change is walking or awaiting acks; who waits for it to end. */
  private movedPending = false;
  private readonly movedWaiters: ((acked: boolean) => void)[] = [];
  /** The push after the last ring change, and the frames of its last chunk (it goes on once they are acked). */
  private walk: PacedWalk | undefined;
  private readonly chunkFrames = new Set<number>();
  /** Slots below this one were walked (and their moved keys sent) by the current push. */
  private walkedTo = 0;
  private readonly notPushedYet = (action: string, key: string): boolean => this.components.store.slotOf(action, key) >= this.walkedTo;
  /** Drain frames not yet acked, and who waits for the last ack. */
  private readonly drainFrames = new Set<number>();
  private drainAcked: ((allAcked: boolean) => void) | undefined;
  private closed = false;

  /** Queues (action, key)'s state for its owner, unless that is this node. */
  private readonly collectForOwner = (action: string, key: string, algorithm: AlgorithmId, cells: Float64Array, base: number): void => {
    const { view } = this.components;
    const owner = view.ownerOf(action, key);
    const address = owner === this.init.selfId ? undefined : view.addressOf(owner);
    if (address !== undefined) this.collect(address, action, key, algorithm, cells, base);
  };

  /**
   * A key whose owner changed goes to its new owner from the node that held it for the
   * cluster — its previous owner (a successor that held it while the new owner was away
   * included), or a previous replica when that owner is gone — so that once a node announces
   * its push, nothing the new owner needs is left on it.
   */
  private readonly collectMoved = (action: string, key: string, algorithm: AlgorithmId, cells: Float64Array, base: number, hash: number): void => {
    const { view } = this.components;
    const owner = view.handOverTo(action, key, hash);
    if (owner === undefined) return;
    const address = view.addressOf(owner);
    if (address !== undefined) this.collect(address, action, key, algorithm, cells, base);
  };

  /** The key visited last: a visit of the same key again is a state still waiting to be merged into it (forEachEntry withPending). */
  private lastAction = '';
  private lastKey = '';

  private collect(address: string, action: string, key: string, algorithm: AlgorithmId, cells: Float64Array, base: number): void {
    if (key === this.lastKey && action === this.lastAction) this.stats.pushedWaitingStates++;
    this.lastAction = action;
    this.lastKey = key;
    this.outbox.add(address, toWireEntry(action, key, algorithm, cells, base, this.nowMs));
  }

  /** Pull on first access (see KeyPulls): the owner-side decision asks it. */
  readonly pulls: KeyPulls;

  constructor(
    private readonly components: HandoffComponents,
    private readonly init: HandoffInit,
  ) {
    requireRoutingHash(components.store);
    this.outbox = new EntryOutbox(components, init.maxBatchSize);
    this.pulls = new KeyPulls({ ...components, merge: (entry, nowMs) => this.merge(entry, nowMs, '') }, init, this.stats);
  }

  // ---- pushes -------------------------------------------------------------------------

  /**
   * After a ring change: every key held here whose owner changed goes to its new owner
   * (collectMoved); once the new owners acked every frame (or PUSH_ACK_TIMEOUT_MS passed),
   * this node announces it for the ring, and the others stop pulling from it.
   */
  pushMoved(): void {
    const generation = ++this.pushGeneration;
    const version = this.components.view.ringVersion;
    this.pulls.handoffNews();
    this.endMovedWait(false, false);
    this.movedWalkDone = false;
    this.movedPending = true;
    // An unawaited frame (the ack table full) cannot be confirmed: then no announcement.
    let unconfirmed = false;
    const sentIds: number[] = [];
    this.announceWhenAcked = () => {
      if (generation === this.pushGeneration && !this.closed && !unconfirmed) this.announceHandedOver(version);
    };
    // Until the walk has sent a moved key, this node still decides it (see ClusterView.placement):
    // the new owner then gets its state before any forward for it, on the same stream.
    this.walkedTo = 0;
    this.components.view.setStillHeld(this.notPushedYet);
    this.walk?.stop();
    let collectedTo = 0;
    this.walk = new PacedWalk(
      this.components.store,
      {
        collect: (from, to) => {
          this.nowMs = this.components.clock.now();
          this.components.store.forEachEntry(this.collectMoved, from, to, true);
          collectedTo = to;
        },
        gathered: () => this.outbox.pending,
        send: () => {
          // Sent in the turn they were collected in: no decision here changed them meanwhile.
          this.stats.pushedEntries += this.outbox.send(FrameType.Handoff, sentIds);
          this.walkedTo = collectedTo;
          if (this.outbox.lastUnsent > 0) unconfirmed = true;
          // Awaited as soon as sent: an ack may come back before the walk's next turn.
          this.chunkFrames.clear();
          for (const id of sentIds) {
            if (this.components.ids.awaitAck(id, this)) {
              this.movedFrames.add(id);
              this.chunkFrames.add(id);
            } else {
              unconfirmed = true;
            }
          }
          sentIds.length = 0;
          return this.chunkFrames.size > 0;
        },
        cancelled: () => generation !== this.pushGeneration || this.closed,
        done: () => {
          this.components.view.setStillHeld(undefined);
          this.movedWalkDone = true;
          if (this.movedFrames.size === 0) this.endMovedWait(true);
          // Unacked frames may not have arrived: no announcement, so the new owners keep pulling from us (bounded by the window).
          else this.movedTimer = setTimeout(() => this.endMovedWait(false), PUSH_ACK_TIMEOUT_MS).unref();
        },
      },
      // Keys not pushed yet are decided here, so the push does not rest beyond its acks.
      { ackWaitMs: CHUNK_ACK_WAIT_MS, busyShare: 1, slotsPerTurn: Number.POSITIVE_INFINITY },
    );
    this.walk.start();
  }

  /**
   * Tells every member that may pull from this node that it holds nothing more they need for
   * ring `version`: directly (a HandoffDone frame, which arrives after the pushes it follows)
   * and in gossip meta (which reaches members the frame missed).
   */
  private announceHandedOver(version: string): void {
    const { view, transport } = this.components;
    this.stats.announcements++;
    // This node's own view counts its announcement at once (its meta update raises no event here).
    view.noteHandedOver(this.init.selfId, version);
    const frame = encodeFrame({ type: FrameType.HandoffDone, id: 0, version });
    for (const nodeId of view.handoffPeers()) {
      const address = view.addressOf(nodeId);
      if (address !== undefined) transport.send(address, frame);
    }
    this.components.announce?.(version);
  }

  /** A member says it pushed everything it held for ring `version` (its announceHandedOver). */
  peerHandedOver(fromNodeId: string, version: string): void {
    this.components.view.noteHandedOver(fromNodeId, version);
  }

  /** The push of a ring change is acked (or given up on: `announce` false for a newer change). */
  private endMovedWait(announce: boolean, settles = true): void {
    if (this.movedTimer !== undefined) clearTimeout(this.movedTimer);
    this.movedTimer = undefined;
    for (const id of this.movedFrames) this.components.ids.forget(id);
    this.movedFrames.clear();
    const then = this.announceWhenAcked;
    this.announceWhenAcked = undefined;
    if (announce) then?.();
    if (!settles) return;
    this.movedPending = false;
    for (const waiter of this.movedWaiters.splice(0)) waiter(announce);
  }

  /**
   * Settles once the push of the last ring change is over: true when every frame was acked
   * (and announced), false when it gave up or `timeoutMs` passed first. A drain waits on it.
   */
  awaitMovedPush(timeoutMs: number): Promise<boolean> {
    if (!this.movedPending) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(false), timeoutMs);
      const finish = (acked: boolean): void => {
        clearTimeout(timer);
        const i = this.movedWaiters.indexOf(finish);
        if (i >= 0) this.movedWaiters.splice(i, 1);
        resolve(acked);
      };
      this.movedWaiters.push(finish);
    });
  }

  /**
   * Draining: sends every key held to its owner on the current ring (which no longer
   * includes us). Settles when every frame was acked, or after `timeoutMs`.
   */
  pushAll(timeoutMs: number): Promise<void> {
    // A push after a ring change stops here: this one sends everything.
    this.pushGeneration++;
    this.components.view.setStillHeld(undefined);
    const version = this.components.view.ringVersion;
    this.nowMs = this.components.clock.now();
    this.components.store.forEachEntry(this.collectForOwner, 0, Infinity, true);
    const sentIds: number[] = [];
    this.stats.pushedEntries += this.outbox.send(FrameType.Handoff, sentIds);
    for (const id of sentIds) if (this.components.ids.awaitAck(id, this)) this.drainFrames.add(id);
    if (this.drainFrames.size === 0) {
      this.announceHandedOver(version);
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.endDrainWait(false), timeoutMs);
      this.drainAcked = (allAcked) => {
        clearTimeout(timer);
        // Every frame acked: the members pull nothing more from us. (A timeout announces nothing.)
        if (allAcked && !this.closed) this.announceHandedOver(version);
        resolve();
      };
    });
  }

  onAck(frameId: number): void {
    if (this.movedFrames.delete(frameId)) {
      if (this.chunkFrames.delete(frameId) && this.chunkFrames.size === 0) this.walk?.resume();
      if (this.movedFrames.size === 0 && this.movedWalkDone) this.endMovedWait(true);
      return;
    }
    if (!this.drainFrames.delete(frameId)) return;
    this.stats.drainFramesAcked++;
    if (this.drainFrames.size === 0) this.endDrainWait(true);
  }

  private endDrainWait(allAcked: boolean): void {
    for (const id of this.drainFrames) this.components.ids.forget(id);
    this.drainFrames.clear();
    const done = this.drainAcked;
    this.drainAcked = undefined;
    done?.(allAcked);
  }

  /**
   * A Handoff frame from `from`: state pushed to us for keys we now own, from a node that held
   * them. A pushed state for a key this node does not own (the sender's view lags ours, and
   * our own push may be over and announced) goes on to its owner, once: only an acked push is
   * relayed, and a relay is never acked (NO_ACK), so it is never relayed again.
   */
  receive(frameId: number, entries: WireEntry[], from: string, reply: Reply): void {
    const nowMs = this.components.clock.now();
    const { view } = this.components;
    let relays: Map<string, WireEntry[]> | undefined;
    for (const entry of entries) {
      const verdict = view.judgeSender(from, entry.action, entry.key);
      if (verdict === SenderVerdict.Refused) {
        this.stats.refusedEntries++;
        continue;
      }
      // Only a key owned here can be kept by its sender as the replica's copy (merge): no second ring lookup for the others.
      this.merge(entry, nowMs, verdict === SenderVerdict.OwnedHere ? from : '');
      // The node that owned it on every earlier ring pushed it: it has stopped deciding it, so there is nothing to pull.
      if (from !== '' && view.onlyEarlierOwner(entry.action, entry.key, from)) this.pulls.settle(entry.action, entry.key);
      if (verdict !== SenderVerdict.OwnedElsewhere || frameId === NO_ACK) continue;
      const owner = view.ownerOf(entry.action, entry.key);
      const address = owner === from ? undefined : view.addressOf(owner);
      if (address === undefined) continue;
      relays ??= new Map();
      let list = relays.get(address);
      if (list === undefined) relays.set(address, (list = []));
      list.push(entry);
    }
    if (frameId !== NO_ACK) reply(encodeFrame({ type: FrameType.Ack, id: frameId }));
    if (relays === undefined) return;
    // At most the frame's own entries: one frame per owner.
    for (const [address, list] of relays) if (this.components.transport.send(address, encodeFrame({ type: FrameType.Handoff, id: NO_ACK, entries: list }))) this.stats.relayedEntries += list.length;
  }

  /**
   * A pushed state, merged; it goes on to the key's replicas — unless it is new here and its
   * sender is the key's only other holder: the sender keeps that very state as the replica's
   * copy (a join's new owner sent most of what it was pushed straight back before).
   */
  private merge(entry: WireEntry, nowMs: number, keptBy: string): void {
    const { store, view } = this.components;
    const handed = keptBy !== '' && !store.has(entry.action, entry.key) && view.ownedHereHeldBy(keptBy, entry.action, entry.key);
    store.importEntry(entry.action, entry.key, entry.algorithm as AlgorithmId, fromWireEntry(entry, nowMs, this.cells), 0, handed ? 'handed' : 'merge');
    this.stats.receivedEntries++;
    if (handed) this.stats.keptBySender++;
    else this.components.replication?.changed();
  }

  close(): void {
    this.closed = true;
    this.walk?.stop();
    this.components.view.setStillHeld(undefined);
    this.endMovedWait(false);
    this.pulls.close();
    this.endDrainWait(false);
  }


}
