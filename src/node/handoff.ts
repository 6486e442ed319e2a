import type { Clock } from '../common/clock.js';
import { STATE_STRIDE } from '../limiter/algorithms/index.js';
import type { LimiterStore } from '../limiter/store.js';
import type { AlgorithmId } from '../limiter/types.js';
import { routingKey, type ClusterView } from './cluster-view.js';
import { fromWireEntry, toWireEntry } from './state-wire.js';
import type { PeerTransport } from './transport/peer-transport.js';
import { encodeFrame } from './wire/codec.js';
import { FrameType, type WireEntry } from './wire/frames.js';

export interface HandoffOptions {
  selfId: string;
  handoffWindowMs: number;
  pullTimeoutMs: number;
  /** Bound on keys being pulled and on keys remembered as given away. */
  maxTrackedKeys: number;
}

export interface HandoffStats {
  pulls: number;
  pullsAnswered: number;
  pullTimeouts: number;
  pushedEntries: number;
  receivedEntries: number;
}

interface InFlightPull {
  promise: Promise<void>;
  resolve: () => void;
  timer: NodeJS.Timeout;
  action: string;
  key: string;
  /** Answers still expected (one per node asked). */
  awaiting: number;
}

/**
 * Moving key state when ownership changes.
 *
 * Pull on first access: for handoffWindowMs after the ring changes, the first request
 * for a key this node now owns waits (≤ pullTimeoutMs) while the
 * previous owner sends that key's state. The previous owner, having answered, remembers
 * the key as given away and forwards later requests for it to the new owner, even if its
 * own view of the ring has not caught up. Only keys that are actually used move, and
 * no key is decided by two nodes from two states.
 *
 * Push on drain: a node that stops gracefully sends every key it holds to the key's new
 * owner, which merges it conservatively.
 */
export class Handoff {
  readonly stats: HandoffStats = { pulls: 0, pullsAnswered: 0, pullTimeouts: 0, pushedEntries: 0, receivedEntries: 0 };
  private readonly pulls = new Map<number, InFlightPull>();
  private readonly pullsByKey = new Map<string, InFlightPull>();
  /** Keys this node gave away on a pull: routing key → new owner's id. Expire with the window. */
  private readonly givenAway = new Map<string, { nodeId: string; untilMs: number }>();
  private nextId = 1;
  private readonly cells = new Float64Array(STATE_STRIDE);
  /** Keys accessed since the last ring change: pulled (or found nothing to pull) already. */
  private readonly settled = new Set<string>();
  private settledSince = -Infinity;

  constructor(
    private readonly store: LimiterStore,
    private readonly view: ClusterView,
    private readonly transport: PeerTransport,
    private readonly clock: Clock,
    private readonly options: HandoffOptions,
  ) {}

  /** Whether a first access may have to wait for a pull (the ring changed recently). */
  mayPull(): boolean {
    return this.clock.now() - this.view.changedAtMs <= this.options.handoffWindowMs;
  }

  /**
   * If the first access to (action, key) should wait for the previous owner's state,
   * returns a promise that settles when it has arrived (or the wait timed out).
   */
  pullIfNeeded(action: string, key: string): Promise<void> | undefined {
    const nowMs = this.clock.now();
    if (nowMs - this.view.changedAtMs > this.options.handoffWindowMs) return undefined;
    if (this.settledSince !== this.view.changedAtMs) {
      // A new ring: forget which keys were settled, and drop hand-over marks that expired.
      this.settled.clear();
      this.settledSince = this.view.changedAtMs;
      for (const [id, moved] of this.givenAway) if (moved.untilMs < nowMs) this.givenAway.delete(id);
    }
    const id = routingKey(action, key);
    const inFlight = this.pullsByKey.get(id);
    if (inFlight !== undefined) return inFlight.promise;
    // State that merely arrived here (replication racing the ring change) does not count:
    // the previous owner must hear from us, so that it stops deciding the key.
    if (this.settled.has(id) || this.settled.size >= this.options.maxTrackedKeys) return undefined;
    this.settled.add(id);
    // Who may hold this key's state: the owner before the change (the previous ring), and
    // the node after us on the ring — it owned the key while we were absent (we are new, or
    // restarted empty) and is our replica now. Both answers are merged conservatively.
    const previous = this.view.previous;
    const fromPrevious = previous.has(this.options.selfId) ? previous.owner(id) : undefined;
    const fromSuccessor = this.view.ring.owners(id, 2)[1];
    const addresses: string[] = [];
    for (const nodeId of [fromPrevious, fromSuccessor]) {
      if (nodeId === undefined || nodeId === this.options.selfId) continue;
      const address = this.view.addressOf(nodeId);
      if (address !== undefined && !addresses.includes(address)) addresses.push(address);
    }
    if (addresses.length === 0 || this.pulls.size >= this.options.maxTrackedKeys) return undefined;
    const frameId = this.nextId++;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    const timer = setTimeout(() => {
      this.stats.pullTimeouts++;
      this.finishPull(frameId);
    }, this.options.pullTimeoutMs);
    timer.unref();
    const frame = encodeFrame({ type: FrameType.Pull, id: frameId, action, key });
    let sent = 0;
    for (const address of addresses) if (this.transport.send(address, frame)) sent++;
    if (sent === 0) {
      clearTimeout(timer);
      return undefined;
    }
    const pull: InFlightPull = { promise, resolve, timer, action, key, awaiting: sent };
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
      this.store.importEntry(entry.action, entry.key, entry.algorithm as AlgorithmId, fromWireEntry(entry, this.clock.now(), this.cells), 0, 'merge');
      this.stats.receivedEntries++;
    }
    if (--pull.awaiting === 0) this.finishPull(frameId);
  }

  /** Another node pulls a key from us: answer with its state and remember it moved. */
  answerPull(action: string, key: string, fromNodeId: string): WireEntry | null {
    this.stats.pullsAnswered++;
    // Hand the key over unless our view names a third node as its owner (a stray pull).
    const ownerHere = this.view.ring.owner(routingKey(action, key));
    const stray = ownerHere !== undefined && ownerHere !== this.options.selfId && ownerHere !== fromNodeId;
    if (fromNodeId !== '' && !stray && this.givenAway.size < this.options.maxTrackedKeys) {
      this.givenAway.set(routingKey(action, key), { nodeId: fromNodeId, untilMs: this.clock.now() + this.options.handoffWindowMs });
    }
    const algorithm = this.store.readEntry(action, key, this.cells);
    if (algorithm === -1) return null;
    return toWireEntry(action, key, algorithm, this.cells, 0, this.clock.now());
  }

  /** The node a key was given away to, if it was and the window is still open. */
  newOwnerOf(action: string, key: string): string | undefined {
    if (this.givenAway.size === 0) return undefined;
    const id = routingKey(action, key);
    const moved = this.givenAway.get(id);
    if (moved === undefined) return undefined;
    if (moved.untilMs < this.clock.now() || !this.view.ring.has(moved.nodeId)) {
      this.givenAway.delete(id);
      return undefined;
    }
    return moved.nodeId;
  }

  /** State pushed to us by a draining node, or received for keys we now own. */
  receive(entries: WireEntry[]): void {
    const nowMs = this.clock.now();
    for (const entry of entries) {
      this.store.importEntry(entry.action, entry.key, entry.algorithm as AlgorithmId, fromWireEntry(entry, nowMs, this.cells), 0, 'merge');
      this.stats.receivedEntries++;
    }
  }

  /** Sends every key held to its owner on the current ring (which no longer includes us). */
  pushAll(maxBatchSize: number): number {
    const nowMs = this.clock.now();
    const outbox = new Map<string, WireEntry[]>();
    this.store.forEachEntry((action, key, algorithm, cells, base) => {
      const owner = this.view.ring.owner(routingKey(action, key));
      if (owner === undefined || owner === this.options.selfId) return;
      const address = this.view.addressOf(owner);
      if (address === undefined) return;
      let list = outbox.get(address);
      if (list === undefined) {
        list = [];
        outbox.set(address, list);
      }
      list.push(toWireEntry(action, key, algorithm, cells, base, nowMs));
    });
    let frames = 0;
    for (const [address, entries] of outbox) {
      for (let start = 0; start < entries.length; start += maxBatchSize) {
        const chunk = entries.slice(start, start + maxBatchSize);
        if (this.transport.send(address, encodeFrame({ type: FrameType.Handoff, id: this.nextId++, entries: chunk }))) {
          frames++;
          this.stats.pushedEntries += chunk.length;
        }
      }
    }
    return frames;
  }

  close(): void {
    for (const id of [...this.pulls.keys()]) this.finishPull(id);
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
