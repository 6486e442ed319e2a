import type { Clock } from '../common/clock.js';
import type { LimiterStore } from '../limiter/store.js';
import type { AlgorithmId } from '../limiter/types.js';
import type { ClusterView } from './cluster-view.js';
import { routingKey } from './cluster-view.js';
import { toWireEntry } from './state-wire.js';
import type { PeerTransport } from './transport/peer-transport.js';
import { encodeFrame, frameLimits } from './wire/codec.js';
import { FrameType, type WireEntry } from './wire/frames.js';

/** Slots examined per event-loop turn when re-sending everything after a ring change. */
const RESYNC_SLOTS_PER_TURN = 20_000;

export interface ReplicatorOptions {
  selfId: string;
  replicas: number;
  replicationDelayMs: number;
  /** Entries per frame. */
  maxBatchSize: number;
  /** Frames awaiting an ack (sync mode); older ones are given up after ackTimeoutMs. */
  ackTimeoutMs: number;
}

export interface ReplicatorStats {
  entriesSent: number;
  framesSent: number;
  acks: number;
}

interface AckWaiter {
  remaining: number;
  deadlineMs: number;
  done: () => void;
}

/**
 * Sends each changed key's state to the next `replicas` distinct nodes after its owner,
 * batched: a flush every replicationDelayMs drains the store's change list. In sync mode
 * the node calls flushNow() after a decision and answers once every replica acked.
 */
export class Replicator {
  readonly stats: ReplicatorStats = { entriesSent: 0, framesSent: 0, acks: 0 };
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly outbox = new Map<string, WireEntry[]>();
  private readonly owners: string[] = [];
  private nextFrameId = 1;
  private readonly waiters = new Map<number, AckWaiter>();
  private nowMs = 0;
  private readonly collect = (action: string, key: string, algorithm: AlgorithmId, cells: Float64Array, base: number): void => {
    const ring = this.view.ring;
    const count = ring.ownersInto(routingKey(action, key), this.options.replicas + 1, this.owners);
    let entry: WireEntry | undefined;
    for (let i = 0; i < count; i++) {
      const nodeId = this.owners[i]!;
      if (nodeId === this.options.selfId) continue;
      const address = this.view.addressOf(nodeId);
      if (address === undefined) continue;
      entry ??= toWireEntry(action, key, algorithm, cells, base, this.nowMs);
      let list = this.outbox.get(address);
      if (list === undefined) {
        list = [];
        this.outbox.set(address, list);
      }
      list.push(entry);
    }
  };

  constructor(
    private readonly store: LimiterStore,
    private readonly view: ClusterView,
    private readonly transport: PeerTransport,
    private readonly clock: Clock,
    private readonly options: ReplicatorOptions,
  ) {
    if (options.replicas > 0) {
      this.timer = setInterval(() => this.flushNow(), Math.max(1, options.replicationDelayMs));
      this.timer.unref();
    }
  }

  /**
   * After the ring changed, sends every key this node owns to its (possibly new) replicas,
   * and every key it owned before but no longer does to its new owner, in chunks of slots
   * so the event loop keeps turning. Replication otherwise sends only changes: a restarted
   * or new node would never get a key that has gone quiet (an exhausted key only sees
   * rejections), and would take it over empty when the node holding it dies next.
   */
  resyncAll(): void {
    const generation = ++this.resyncGeneration;
    const step = (from: number): void => {
      if (generation !== this.resyncGeneration || this.closed) return;
      const to = from + RESYNC_SLOTS_PER_TURN;
      this.nowMs = this.clock.now();
      this.store.forEachEntry(this.collectOwned, from, to);
      this.sendOutbox();
      this.sendHandoffs();
      if (to < this.store.slotCount) setImmediate(step, to);
    };
    step(0);
  }

  /** Keys this node owned before the change and no longer does: pushed to their new owner. */
  private readonly handoffs = new Map<string, WireEntry[]>();

  private sendHandoffs(): void {
    for (const [address, entries] of this.handoffs) {
      for (let start = 0; start < entries.length; start += Math.min(this.options.maxBatchSize, frameLimits.maxItems)) {
        const chunk = entries.slice(start, start + Math.min(this.options.maxBatchSize, frameLimits.maxItems));
        this.transport.send(address, encodeFrame({ type: FrameType.Handoff, id: this.nextFrameId++, entries: chunk }));
      }
    }
    this.handoffs.clear();
  }

  private resyncGeneration = 0;
  private closed = false;
  private readonly collectOwned = (action: string, key: string, algorithm: AlgorithmId, cells: Float64Array, base: number): void => {
    const id = routingKey(action, key);
    const owner = this.view.ring.owner(id);
    if (owner === this.options.selfId) {
      if (this.options.replicas > 0) this.collect(action, key, algorithm, cells, base);
      return;
    }
    // It was ours and moved: the new owner gets it now, whether or not it ever asks.
    if (owner === undefined || this.view.previous.owner(id) !== this.options.selfId) return;
    const address = this.view.addressOf(owner);
    if (address === undefined) return;
    let list = this.handoffs.get(address);
    if (list === undefined) this.handoffs.set(address, (list = []));
    list.push(toWireEntry(action, key, algorithm, cells, base, this.nowMs));
  };

  /** Sends every pending change now. The returned promise settles when all replicas acked (or gave up). */
  flushNow(): Promise<void> {
    if (this.options.replicas === 0) return Promise.resolve();
    this.nowMs = this.clock.now();
    this.store.drainChanges(this.collect);
    this.expireWaiters();
    const frameIds = this.sendOutbox();
    if (frameIds.length === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const waiter: AckWaiter = { remaining: frameIds.length, deadlineMs: this.nowMs + this.options.ackTimeoutMs, done: resolve };
      for (const id of frameIds) this.waiters.set(id, waiter);
    });
  }

  /** Sends what collect() gathered, in frames of at most maxBatchSize entries; returns their ids. */
  private sendOutbox(): number[] {
    const frameIds: number[] = [];
    if (this.outbox.size === 0) return frameIds;
    for (const [address, entries] of this.outbox) {
      for (let start = 0; start < entries.length; start += Math.min(this.options.maxBatchSize, frameLimits.maxItems)) {
        const chunk = entries.slice(start, start + Math.min(this.options.maxBatchSize, frameLimits.maxItems));
        const id = this.nextFrameId++;
        if (this.transport.send(address, encodeFrame({ type: FrameType.Replicate, id, entries: chunk }))) {
          frameIds.push(id);
          this.stats.framesSent++;
          this.stats.entriesSent += chunk.length;
        }
      }
    }
    this.outbox.clear();
    return frameIds;
  }

  handleAck(frameId: number): void {
    const waiter = this.waiters.get(frameId);
    if (waiter === undefined) return;
    this.stats.acks++;
    this.waiters.delete(frameId);
    if (--waiter.remaining === 0) waiter.done();
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    for (const waiter of this.waiters.values()) waiter.done();
    this.waiters.clear();
  }

  private expireWaiters(): void {
    for (const [id, waiter] of this.waiters) {
      if (waiter.deadlineMs > this.nowMs) break;
      this.waiters.delete(id);
      if (--waiter.remaining === 0) waiter.done();
    }
  }
}
