import type { Clock } from '../../common/clock.js';
import { STATE_STRIDE } from '../../limiter/algorithms/index.js';
import type { LimiterStore } from '../../limiter/store.js';
import { routingKey, type ClusterView } from '../routing/cluster-view.js';
import type { KeyPuller } from '../routing/owner-decision.js';
import { NO_ACK, type FrameIds } from '../wire/frame-ids.js';
import { toWireEntry } from '../wire/state-wire.js';
import type { PeerTransport, Reply } from '../transport/peer-transport.js';
import { encodeFrame } from '../wire/codec.js';
import { FrameType, type WireEntry } from '../wire/frames.js';

export interface KeyPullsInit {
  selfId: string;
  /** The longest a new owner pulls after a ring change (a backstop for lost announcements). */
  handoffWindowMs: number;
  pullTimeoutMs: number;
  /** Bound on keys being pulled and on keys remembered as settled since the ring changed. */
  maxTrackedKeys: number;
}

export interface PullStats {
  pulls: number;
  /** Pulled keys routed to the node an answer named as the one deciding them, not decided here (KeyPulls.handlePullNamed). */
  routedToNamed: number;
  pullsAnswered: number;
  pullTimeouts: number;
  /** Members that may still hold state this node needs for the current ring (it pulls from them), now. */
  peersPending: number;
}

export interface KeyPullsComponents {
  store: LimiterStore;
  view: ClusterView;
  transport: PeerTransport;
  clock: Clock;
  ids: FrameIds;
  /** Stores a state a member answered with (merged conservatively). */
  merge(entry: WireEntry, nowMs: number): void;
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
 * The handoff's pull on first access, both ends: after a ring change, the first request
 * for a key this node now owns waits (≤ pullTimeoutMs) while the members that may hold its
 * state — only those that have not announced their push for this ring — send it. The
 * answering node marks the key as handed away in its ClusterView, which routes later
 * requests for it here even before its own ring has caught up: no key is decided by two
 * nodes from two states.
 */
export class KeyPulls implements KeyPuller {
  private readonly pulls = new Map<number, InFlightPull>();
  private readonly holders: string[] = [];
  private readonly pullsByKey = new Map<string, InFlightPull>();
  /** Keys accessed since the last ring change: pulled (or found nothing to pull) already. */
  private readonly settled = new Set<string>();
  private settledSince = -Infinity;
  private readonly cells = new Float64Array(STATE_STRIDE);
  /** The ring change whose handoff window is known to have closed. */
  private windowClosedFor = Number.NaN;
  /** Some member that may hold state this node needs has not announced its push for the current ring. */
  private peersPending = true;

  constructor(
    private readonly components: KeyPullsComponents,
    private readonly init: KeyPullsInit,
    private readonly stats: PullStats,
  ) {}

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
    let pending = 0;
    for (const nodeId of view.handoffPeers()) if (!view.hasHandedOver(nodeId)) pending++;
    this.stats.peersPending = pending;
    this.peersPending = pending > 0;
  }

  pullIfNeeded(action: string, key: string): Promise<void> | undefined {
    const { view, transport, ids } = this.components;
    if (!this.mayPull()) return undefined;
    this.forgetOldRing();
    // A key this node owned before the change too has nowhere else to be: nothing to wait for
    // and nothing to remember (most keys after a join or a leave: checked before any set grows).
    if (view.ownedHereBefore(action, key)) return undefined;
    const id = routingKey(action, key);
    const inFlight = this.pullsByKey.get(id);
    if (inFlight !== undefined) return inFlight.promise;
    // State that merely arrived here (replication racing the ring change) does not count:
    // the previous owner must hear from us, so that it stops deciding the key.
    if (this.settled.has(id) || this.settled.size >= this.init.maxTrackedKeys) return undefined;
    this.settled.add(id);
    // Who may hold this key's state (ClusterView.pullSourcesInto): its owner on each ring since
    // the cluster last settled — or a gone owner's replicas: rebalancing may give a dead owner's
    // key to a node that was not its replica — and the node after us on the ring. (When they
    // hold nothing, the earlier replicas are asked next: handlePullReply.) Answers are merged
    // conservatively. A member that announced its push for this ring has nothing more for us.
    const addresses: string[] = [];
    const sources = view.pullSourcesInto(action, key, this.holders);
    for (let i = 0; i < sources; i++) {
      const nodeId = this.holders[i]!;
      const address = view.hasHandedOver(nodeId) ? undefined : view.addressOf(nodeId);
      if (address !== undefined && !addresses.includes(address)) addresses.push(address);
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
    // Given up after this turn's I/O (see Forwarder's deadline scan): an answer already waiting in a socket counts.
    const timer = setTimeout(() => setImmediate(this.timedOut, frameId), this.init.pullTimeoutMs);
    timer.unref();
    const pull: InFlightPull = { promise, resolve, timer, action, key, awaiting: sent, asked: addresses, found: false, askedReplicas: false };
    this.stats.pulls += sent;
    this.pulls.set(frameId, pull);
    this.pullsByKey.set(id, pull);
    return promise;
  }

  /** (action, key)'s state came from the node that owned it before the ring changed (its push): no pull for it on this ring. */
  settle(action: string, key: string): void {
    if (!this.mayPull()) return;
    this.forgetOldRing();
    if (this.settled.size < this.init.maxTrackedKeys) this.settled.add(routingKey(action, key));
  }

  /** A new ring: forget which keys were settled. */
  private forgetOldRing(): void {
    const changedAtMs = this.components.view.changedAtMs;
    if (this.settledSince === changedAtMs) return;
    this.settled.clear();
    this.settledSince = changedAtMs;
  }

  /** A previous owner's answer to our pull. */
  handlePullReply(frameId: number, entry: WireEntry | null): void {
    const pull = this.pulls.get(frameId);
    if (pull === undefined) return;
    if (entry !== null && entry.action === pull.action && entry.key === pull.key) {
      pull.found = true;
      this.components.merge(entry, this.components.clock.now());
    }
    if (--pull.awaiting > 0) return;
    if (!pull.found && !pull.askedReplicas && this.askReplicas(frameId, pull)) return;
    this.finishPull(frameId);
  }

  /**
   * The node answering our pull no longer decides the key: `named` does, in its view (it
   * handed the key there, or its ring says so). Views change at different moments while a
   * cluster forms, and `named` may be a member this node has not seen on a ring yet: the key
   * is routed there, not decided here from a second state. A `named` that is not a member here
   * is taken for gone (the answering node has not seen it fail yet): nothing changes, since
   * routing there, or through the answering node, would wait out a forward's timeout. A mark
   * that comes back is dropped (ForwardServer).
   */
  handlePullNamed(frameId: number, named: string): void {
    const pull = this.pulls.get(frameId);
    const { view, clock } = this.components;
    if (pull === undefined || named === this.init.selfId || view.addressOf(named) === undefined) return;
    view.markHandedAway(pull.action, pull.key, named, clock.now() + this.init.handoffWindowMs);
    this.stats.routedToNamed++;
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
    const holders = view.earlierHoldersInto(pull.action, pull.key, this.holders);
    const frame = encodeFrame({ type: FrameType.Pull, id: frameId, action: pull.action, key: pull.key });
    let sent = 0;
    for (let i = 0; i < holders; i++) {
      const nodeId = this.holders[i];
      if (nodeId === undefined || view.hasHandedOver(nodeId)) continue;
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
    // Hand the key over unless our view names a third node as its owner (a stray pull): the answer names that node.
    const ownerHere = view.ownerOf(action, key);
    const stray = ownerHere !== this.init.selfId && ownerHere !== fromNodeId;
    if (fromNodeId !== '' && !stray) view.markHandedAway(action, key, fromNodeId, nowMs + this.init.handoffWindowMs);
    // States merged into the key here but not decided with yet go first, in order on this stream: the puller merges each.
    const waiting: WireEntry[] = [];
    store.forEachPendingState(action, key, (a, k, algorithm, cells, base) => waiting.push(toWireEntry(a, k, algorithm, cells, base, nowMs)));
    if (waiting.length > 0) reply(encodeFrame({ type: FrameType.Handoff, id: NO_ACK, entries: waiting }));
    const algorithm = store.readEntry(action, key, this.cells);
    const entry = algorithm === -1 ? null : toWireEntry(action, key, algorithm, this.cells, 0, nowMs);
    if (stray) reply(encodeFrame({ type: FrameType.PullNamed, id: frameId, handedTo: ownerHere }));
    reply(encodeFrame({ type: FrameType.PullReply, id: frameId, entry }));
  }

  close(): void {
    for (const id of [...this.pulls.keys()]) this.finishPull(id);
  }

  private readonly timedOut = (frameId: number): void => {
    if (!this.pulls.has(frameId)) return;
    this.stats.pullTimeouts++;
    this.finishPull(frameId);
  };

  private finishPull(frameId: number): void {
    const pull = this.pulls.get(frameId);
    if (pull === undefined) return;
    clearTimeout(pull.timer);
    this.pulls.delete(frameId);
    this.pullsByKey.delete(routingKey(pull.action, pull.key));
    pull.resolve();
  }
}
