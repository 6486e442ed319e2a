import type { Clock } from '../../common/clock.js';
import { STATE_STRIDE } from '../../limiter/algorithms/index.js';
import type { LimiterStore } from '../../limiter/store.js';
import type { AlgorithmId } from '../../limiter/types.js';
import { SenderVerdict, routingKey, type ClusterView } from '../routing/cluster-view.js';
import { EntryOutbox, walkStoreInTurns } from './entry-outbox.js';
import type { AckReceiver, FrameIds } from '../wire/frame-ids.js';
import type { KeyPuller } from '../routing/owner-decision.js';
import { fromWireEntry, toWireEntry } from '../wire/state-wire.js';
import type { PeerTransport, Reply } from '../transport/peer-transport.js';
import { encodeFrame } from '../wire/codec.js';
import { FrameType, type WireEntry } from '../wire/frames.js';

/** How long a push after a ring change waits for its acks before the node announces it anyway. */
const PUSH_ACK_TIMEOUT_MS = 5_000;

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

export interface HandoffInit {
  selfId: string;
  handoffWindowMs: number;
  pullTimeoutMs: number;
  /** Bound on keys being pulled and on keys remembered as settled since the ring changed. */
  maxTrackedKeys: number;
  /** Entries per Handoff frame. */
  maxBatchSize: number;
  /** Slots examined per event-loop turn when pushing moved keys after a ring change. */
  pushSlotsPerTurn: number;
}

export interface HandoffStats {
  pulls: number;
  pullsAnswered: number;
  pullTimeouts: number;
  pushedEntries: number;
  receivedEntries: number;
  /** Pushed entries dropped: their sender held no copy of the key by the ring, now or before the last change. */
  refusedEntries: number;
  /** Handoff frames of a drain that the new owner acked. */
  drainFramesAcked: number;
}

interface InFlightPull {
  promise: Promise<void>;
  resolve: () => void;
  timer: NodeJS.Timeout;
  action: string;
  key: string;
  /** Answers still expected (one per node asked). */
  awaiting: number;
  /** Addresses asked so far. */
  asked: string[];
  /** Some answer carried a state. */
  found: boolean;
  /** The previous owner's replicas were asked after every first answer came back empty. */
  askedReplicas: boolean;
}

/**
 * Moving key state when ownership changes — the handoff protocol, both ends.
 *
 * Pull on first access: for handoffWindowMs after the ring changes, the first request
 * for a key this node now owns waits (≤ pullTimeoutMs) while the previous owner sends
 * that key's state. The previous owner, having answered, marks the key as handed away in
 * its ClusterView, which routes later requests for it to the new owner even before its
 * own ring has caught up. So no key is decided by two nodes from two states.
 *
 * Push after every ring change: keys this node owned before and no longer owns go to
 * their new owner, whether or not it ever asks. Push on drain: a node that stops
 * gracefully sends every key it holds to the key's new owner. Receivers merge
 * conservatively.
 */
export class Handoff implements KeyPuller, AckReceiver {
  readonly stats: HandoffStats = { pulls: 0, pullsAnswered: 0, pullTimeouts: 0, pushedEntries: 0, receivedEntries: 0, refusedEntries: 0, drainFramesAcked: 0 };
  private readonly pulls = new Map<number, InFlightPull>();
  private readonly holders: string[] = [];
  private readonly pullsByKey = new Map<string, InFlightPull>();
  /** Keys accessed since the last ring change: pulled (or found nothing to pull) already. */
  private readonly settled = new Set<string>();
  private settledSince = -Infinity;
  private readonly cells = new Float64Array(STATE_STRIDE);
  private readonly outbox: EntryOutbox;
  private pushGeneration = 0;
  private nowMs = 0;
  /** The ring change whose handoff window is known to have closed. */
  private windowClosedFor = Number.NaN;
  /** Some member that may hold state this node needs has not announced its push for the current ring. */
  private peersPending = true;
  /** Frames of the last ring change's push not yet acked, and the announcement that follows the last ack. */
  private readonly movedFrames = new Set<number>();
  private announceWhenAcked: (() => void) | undefined;
  private movedTimer: NodeJS.Timeout | undefined;
  /** Drain frames not yet acked, and who waits for the last ack. */
  private readonly drainFrames = new Set<number>();
  private drainAcked: (() => void) | undefined;
  private closed = false;

  /** Queues (action, key)'s state for its owner, unless that is this node. */
  private readonly collectForOwner = (action: string, key: string, algorithm: AlgorithmId, cells: Float64Array, base: number): void => {
    const { view } = this.components;
    const owner = view.ownerOf(action, key);
    const address = owner === this.init.selfId ? undefined : view.addressOf(owner);
    if (address !== undefined) this.outbox.add(address, toWireEntry(action, key, algorithm, cells, base, this.nowMs));
  };

  /**
   * A key whose owner changed goes to its new owner from the node that held it for the
   * cluster — its previous owner (a successor that held it while the new owner was away
   * included), or a previous replica when that owner is gone — so that once a node announces
   * its push, nothing the new owner needs is left on it.
   */
  private readonly collectMoved = (action: string, key: string, algorithm: AlgorithmId, cells: Float64Array, base: number): void => {
    const { view } = this.components;
    const owner = view.handOverTo(action, key);
    if (owner === undefined) return;
    const address = view.addressOf(owner);
    if (address !== undefined) this.outbox.add(address, toWireEntry(action, key, algorithm, cells, base, this.nowMs));
  };

  constructor(
    private readonly components: HandoffComponents,
    private readonly init: HandoffInit,
  ) {
    this.outbox = new EntryOutbox(components, init.maxBatchSize);
  }

  // ---- pull on first access -----------------------------------------------------------

  /**
   * Whether a first access may have to wait for a pull: only while some member that may hold
   * state this node now needs has not announced its push for the current ring — and at most
   * handoffWindowMs after the change (a backstop: a lost announcement only costs pulls). O(1).
   */
  mayPull(): boolean {
    if (!this.peersPending) return false;
    const changedAtMs = this.components.view.changedAtMs;
    // Once the window after a ring change has closed, it stays closed until the next change: no clock read per request.
    if (changedAtMs === this.windowClosedFor) return false;
    if (this.components.clock.now() - changedAtMs <= this.init.handoffWindowMs) return true;
    this.windowClosedFor = changedAtMs;
    return false;
  }

  /** Recomputes whether some member may still hold state this node needs (a ring change, or a member's announcement). */
  handoffNews(): void {
    const { view } = this.components;
    this.peersPending = view.handoffPeers().some((nodeId) => !view.hasHandedOver(nodeId));
  }

  pullIfNeeded(action: string, key: string): Promise<void> | undefined {
    const { view, transport, ids } = this.components;
    if (!this.mayPull()) return undefined;
    if (this.settledSince !== view.changedAtMs) {
      // A new ring: forget which keys were settled.
      this.settled.clear();
      this.settledSince = view.changedAtMs;
    }
    const id = routingKey(action, key);
    const inFlight = this.pullsByKey.get(id);
    if (inFlight !== undefined) return inFlight.promise;
    // State that merely arrived here (replication racing the ring change) does not count:
    // the previous owner must hear from us, so that it stops deciding the key.
    if (this.settled.has(id) || this.settled.size >= this.init.maxTrackedKeys) return undefined;
    this.settled.add(id);
    // A key this node owned before the change too has nowhere else to be.
    const previousOwner = view.previousOwnerOf(action, key);
    if (previousOwner === this.init.selfId) return undefined;
    // Who may hold this key's state: the owner before the change, and the node after us on
    // the ring — it owned the key while we were absent (we are new, or restarted empty) and
    // is our replica now. When the previous owner is gone, its replicas: rebalancing may give
    // a dead owner's key to a node that was not its replica. (When it is alive but holds
    // nothing, its replicas are asked next: handlePullReply.) Answers are merged conservatively.
    const addresses: string[] = [];
    const add = (nodeId: string | undefined): void => {
      // A member that announced its push for this ring has nothing more for us.
      if (nodeId === undefined || nodeId === this.init.selfId || view.hasHandedOver(nodeId)) return;
      const address = view.addressOf(nodeId);
      if (address !== undefined && !addresses.includes(address)) addresses.push(address);
    };
    add(previousOwner);
    add(view.successorOf(action, key));
    if (previousOwner !== undefined && view.addressOf(previousOwner) === undefined) {
      const holders = view.previousHoldersInto(action, key, this.holders);
      for (let i = 1; i < holders; i++) add(this.holders[i]);
    }
    if (addresses.length === 0 || this.pulls.size >= this.init.maxTrackedKeys) return undefined;
    const frameId = ids.take();
    const frame = encodeFrame({ type: FrameType.Pull, id: frameId, action, key });
    let sent = 0;
    for (const address of addresses) if (transport.send(address, frame)) sent++;
    if (sent === 0) return undefined;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    const timer = setTimeout(() => {
      this.stats.pullTimeouts++;
      this.finishPull(frameId);
    }, this.init.pullTimeoutMs);
    timer.unref();
    const pull: InFlightPull = { promise, resolve, timer, action, key, awaiting: sent, asked: addresses, found: false, askedReplicas: false };
    this.stats.pulls += sent;
    this.pulls.set(frameId, pull);
    this.pullsByKey.set(id, pull);
    return promise;
  }

  /** A previous owner's answer to our pull. */
  handlePullReply(frameId: number, entry: WireEntry | null): void {
    const pull = this.pulls.get(frameId);
    if (pull === undefined) return;
    if (entry !== null && entry.action === pull.action && entry.key === pull.key) {
      pull.found = true;
      this.merge(entry, this.components.clock.now());
    }
    if (--pull.awaiting > 0) return;
    if (!pull.found && !pull.askedReplicas && this.askReplicas(frameId, pull)) return;
    this.finishPull(frameId);
  }

  /**
   * Nobody asked held the key: ask the previous owner's replicas (same frame id, same
   * deadline). When two nodes die at once and are seen a moment apart, the owner in between
   * may not have pulled the key yet while a replica from before holds it. Returns whether
   * anyone was asked.
   */
  private askReplicas(frameId: number, pull: InFlightPull): boolean {
    pull.askedReplicas = true;
    const { view, transport } = this.components;
    const holders = view.previousHoldersInto(pull.action, pull.key, this.holders);
    const frame = encodeFrame({ type: FrameType.Pull, id: frameId, action: pull.action, key: pull.key });
    let sent = 0;
    for (let i = 0; i < holders; i++) {
      const nodeId = this.holders[i];
      if (nodeId === undefined || nodeId === this.init.selfId || view.hasHandedOver(nodeId)) continue;
      const address = view.addressOf(nodeId);
      if (address === undefined || pull.asked.includes(address)) continue;
      pull.asked.push(address);
      if (transport.send(address, frame)) sent++;
    }
    pull.awaiting = sent;
    this.stats.pulls += sent;
    return sent > 0;
  }

  /** Another node pulls a key from us: answer with its state, and route the key to that node from now on. */
  answerPull(frameId: number, action: string, key: string, fromNodeId: string, reply: Reply): void {
    const { view, store, clock } = this.components;
    this.stats.pullsAnswered++;
    const nowMs = clock.now();
    // Hand the key over unless our view names a third node as its owner (a stray pull).
    const ownerHere = view.ownerOf(action, key);
    const stray = ownerHere !== this.init.selfId && ownerHere !== fromNodeId;
    if (fromNodeId !== '' && !stray) view.markHandedAway(action, key, fromNodeId, nowMs + this.init.handoffWindowMs);
    const algorithm = store.readEntry(action, key, this.cells);
    const entry = algorithm === -1 ? null : toWireEntry(action, key, algorithm, this.cells, 0, nowMs);
    reply(encodeFrame({ type: FrameType.PullReply, id: frameId, entry }));
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
    this.handoffNews();
    this.endMovedWait(false);
    const sentIds: number[] = [];
    walkStoreInTurns(
      this.components.store,
      this.init.pushSlotsPerTurn,
      (from, to) => {
        this.nowMs = this.components.clock.now();
        this.components.store.forEachEntry(this.collectMoved, from, to);
        this.stats.pushedEntries += this.outbox.send(FrameType.Handoff, sentIds);
      },
      () => generation !== this.pushGeneration || this.closed,
      () => {
        for (const id of sentIds) if (this.components.ids.awaitAck(id, this)) this.movedFrames.add(id);
        this.announceWhenAcked = () => {
          if (generation === this.pushGeneration && !this.closed) this.components.announce?.(version);
        };
        if (this.movedFrames.size === 0) this.endMovedWait(true);
        else this.movedTimer = setTimeout(() => this.endMovedWait(true), PUSH_ACK_TIMEOUT_MS).unref();
      },
    );
  }

  /** The push of a ring change is acked (or given up on: `announce` false for a newer change). */
  private endMovedWait(announce: boolean): void {
    if (this.movedTimer !== undefined) clearTimeout(this.movedTimer);
    this.movedTimer = undefined;
    for (const id of this.movedFrames) this.components.ids.forget(id);
    this.movedFrames.clear();
    const then = this.announceWhenAcked;
    this.announceWhenAcked = undefined;
    if (announce) then?.();
  }

  /**
   * Draining: sends every key held to its owner on the current ring (which no longer
   * includes us). Settles when every frame was acked, or after `timeoutMs`.
   */
  pushAll(timeoutMs: number): Promise<void> {
    this.nowMs = this.components.clock.now();
    this.components.store.forEachEntry(this.collectForOwner);
    const sentIds: number[] = [];
    this.stats.pushedEntries += this.outbox.send(FrameType.Handoff, sentIds);
    for (const id of sentIds) if (this.components.ids.awaitAck(id, this)) this.drainFrames.add(id);
    if (this.drainFrames.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.endDrainWait(), timeoutMs);
      this.drainAcked = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  onAck(frameId: number): void {
    if (this.movedFrames.delete(frameId)) {
      if (this.movedFrames.size === 0) this.endMovedWait(true);
      return;
    }
    if (!this.drainFrames.delete(frameId)) return;
    this.stats.drainFramesAcked++;
    if (this.drainFrames.size === 0) this.endDrainWait();
  }

  private endDrainWait(): void {
    for (const id of this.drainFrames) this.components.ids.forget(id);
    this.drainFrames.clear();
    const done = this.drainAcked;
    this.drainAcked = undefined;
    done?.();
  }

  /** A Handoff frame from `from`: state pushed to us for keys we now own, from a node that held them. */
  receive(frameId: number, entries: WireEntry[], from: string, reply: Reply): void {
    const nowMs = this.components.clock.now();
    for (const entry of entries) {
      if (this.components.view.judgeSender(from, entry.action, entry.key) === SenderVerdict.Refused) this.stats.refusedEntries++;
      else this.merge(entry, nowMs);
    }
    reply(encodeFrame({ type: FrameType.Ack, id: frameId }));
  }

  private merge(entry: WireEntry, nowMs: number): void {
    this.components.store.importEntry(entry.action, entry.key, entry.algorithm as AlgorithmId, fromWireEntry(entry, nowMs, this.cells), 0, 'merge');
    this.stats.receivedEntries++;
    this.components.replication?.changed();
  }

  close(): void {
    this.closed = true;
    this.endMovedWait(false);
    for (const id of [...this.pulls.keys()]) this.finishPull(id);
    this.endDrainWait();
  }

  private finishPull(frameId: number): void {
    const pull = this.pulls.get(frameId);
    if (pull === undefined) return;
    clearTimeout(pull.timer);
    this.pulls.delete(frameId);
    this.pullsByKey.delete(routingKey(pull.action, pull.key));
    pull.resolve();
  }
}
