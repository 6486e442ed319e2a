import type { Clock } from '../common/clock.js';
import { RateLimitError, RingLimitError } from '../common/errors.js';
import type { RateLimitRequest, Reservation, ResolvedParams } from '../limiter/types.js';
import type { PeerTransport } from './transport/peer-transport.js';
import { encodeFrame } from './wire/codec.js';
import { FrameType, WIRE_ERROR_CODES, type ForwardItem, type ForwardResult } from './wire/frames.js';

/** A forward awaiting its answer. One object per forwarded request; no closure per call. */
export interface PendingForward {
  item: ForwardItem;
  request: RateLimitRequest;
  /** Candidate owners in ring order: owner first, then its replicas. */
  candidates: string[];
  attempt: number;
  address: string;
  deadlineMs: number;
  resolve: (r: Reservation) => void;
  reject: (e: Error) => void;
}

export interface ForwarderHooks {
  /** gRPC address of a node, or undefined if it is gone. */
  addressOf(nodeId: string): string | undefined;
  /** The next candidate is this node itself: decide here. */
  decideHere(pending: PendingForward): void;
  /** Every candidate failed: apply the onUnavailable policy. */
  exhausted(pending: PendingForward): void;
}

export interface ForwarderOptions {
  selfId: string;
  forwardTimeoutMs: number;
  batchWaitMs: number;
  maxBatchSize: number;
  maxPendingForwards: number;
}

export interface ForwarderStats {
  forwarded: number;
  frames: number;
  failovers: number;
  timeouts: number;
  exhausted: number;
}

/**
 * Sends requests to their owners, coalescing everything bound for one peer within one
 * event-loop turn (or batchWaitMs) into one frame of at most maxBatchSize items, and
 * matches answers by id. Every forward has a deadline; a failure moves it to the next
 * candidate, with hops raised so that candidate decides instead of forwarding again.
 */
export class Forwarder {
  private readonly pending = new Map<number, PendingForward>();
  private readonly queues = new Map<string, PendingForward[]>();
  private flushScheduled = false;
  private nextId = 1;
  private readonly deadlineTimer: NodeJS.Timeout;
  readonly stats: ForwarderStats = { forwarded: 0, frames: 0, failovers: 0, timeouts: 0, exhausted: 0 };
  private readonly flushAll = (): void => {
    this.flushScheduled = false;
    for (const address of this.queues.keys()) this.flush(address);
  };

  constructor(
    private readonly transport: PeerTransport,
    private readonly clock: Clock,
    private readonly options: ForwarderOptions,
    private readonly hooks: ForwarderHooks,
  ) {
    this.deadlineTimer = setInterval(() => this.expire(), Math.max(2, options.forwardTimeoutMs / 4));
    this.deadlineTimer.unref();
  }

  get inFlight(): number {
    return this.pending.size;
  }

  forward(request: RateLimitRequest, p: ResolvedParams, maxWaitMs: number, candidates: string[]): Promise<Reservation> {
    if (this.pending.size >= this.options.maxPendingForwards) {
      return Promise.reject(new RateLimitError('RESOURCE_EXHAUSTED', `more than ${this.options.maxPendingForwards} forwards in flight`));
    }
    return new Promise<Reservation>((resolve, reject) => {
      const item: ForwardItem = {
        id: this.nextId++,
        action: p.action,
        key: p.key,
        limit: request.limit,
        windowMs: request.windowMs,
        weight: request.weight ?? 1,
        cost: p.cost,
        algorithm: p.algorithm,
        burst: request.burst ?? 0,
        hops: 0,
        maxWaitMs,
      };
      const pending: PendingForward = { item, request, candidates, attempt: 0, address: '', deadlineMs: 0, resolve, reject };
      this.stats.forwarded++;
      this.dispatch(pending);
    });
  }

  /**
   * Re-sends a forward received from another node to this node's idea of the owner (one
   * extra hop at most). It gets an id of ours: ids are only unique per sending node.
   */
  relay(pending: PendingForward): void {
    pending.item.id = this.nextId++;
    this.dispatch(pending);
  }

  handleReply(results: ForwardResult[], receivedAtMs: number): void {
    for (const r of results) {
      const pending = this.pending.get(r.id);
      if (pending === undefined) continue; // late answer after a failover: the caller has moved on
      this.pending.delete(r.id);
      if (r.status === 0) {
        pending.resolve({
          allowed: r.allowed,
          limit: r.limit,
          remaining: r.remaining,
          resetAtMs: receivedAtMs + r.resetInMs,
          retryAfterMs: r.retryAfterMs,
          waitMs: r.waitMs,
        });
      } else {
        const code = WIRE_ERROR_CODES[r.status - 1] ?? 'INTERNAL';
        if (code === 'UNAVAILABLE') this.failover(pending);
        else pending.reject(new RateLimitError(code, r.message, r.field === '' ? undefined : r.field));
      }
    }
  }

  /** The stream to `address` broke: everything waiting on it moves on now, not at its deadline. */
  peerDown(address: string): void {
    for (const pending of [...this.pending.values()]) {
      if (pending.address === address) {
        this.pending.delete(pending.item.id);
        this.failover(pending);
      }
    }
  }

  close(): void {
    clearInterval(this.deadlineTimer);
    const error = new RingLimitError('UNAVAILABLE', 'the node is shutting down');
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
    for (const queue of this.queues.values()) for (const pending of queue) pending.reject(error);
    this.queues.clear();
  }

  private dispatch(pending: PendingForward): void {
    for (;;) {
      const nodeId = pending.candidates[pending.attempt];
      if (nodeId === undefined) {
        this.stats.exhausted++;
        this.hooks.exhausted(pending);
        return;
      }
      if (nodeId === this.options.selfId) {
        this.hooks.decideHere(pending);
        return;
      }
      const address = this.hooks.addressOf(nodeId);
      if (address !== undefined) {
        pending.address = address;
        this.enqueue(address, pending);
        return;
      }
      this.advance(pending);
    }
  }

  private advance(pending: PendingForward): void {
    pending.attempt++;
    // A fallback candidate must decide, not forward to the owner that just failed.
    pending.item.hops = Math.max(pending.item.hops, 1);
    this.stats.failovers++;
  }

  private failover(pending: PendingForward): void {
    this.advance(pending);
    this.dispatch(pending);
  }

  private enqueue(address: string, pending: PendingForward): void {
    let queue = this.queues.get(address);
    if (queue === undefined) {
      queue = [];
      this.queues.set(address, queue);
    }
    queue.push(pending);
    if (queue.length >= this.options.maxBatchSize) {
      this.flush(address);
    } else if (!this.flushScheduled) {
      this.flushScheduled = true;
      if (this.options.batchWaitMs === 0) setImmediate(this.flushAll);
      else setTimeout(this.flushAll, this.options.batchWaitMs);
    }
  }

  private flush(address: string): void {
    const queue = this.queues.get(address);
    if (queue === undefined || queue.length === 0) return;
    this.queues.set(address, []);
    const deadlineMs = this.clock.now() + this.options.forwardTimeoutMs;
    const items: ForwardItem[] = new Array<ForwardItem>(queue.length);
    for (let i = 0; i < queue.length; i++) {
      const pending = queue[i]!;
      pending.deadlineMs = deadlineMs;
      items[i] = pending.item;
      this.pending.set(pending.item.id, pending);
    }
    this.stats.frames++;
    const sent = this.transport.send(address, encodeFrame({ type: FrameType.Forward, id: items[0]!.id, items }));
    if (!sent) {
      for (const pending of queue) {
        this.pending.delete(pending.item.id);
        this.failover(pending);
      }
    }
  }

  /** Deadlines are in insertion order (one timeout for all), so the scan stops at the first live one. */
  private expire(): void {
    const nowMs = this.clock.now();
    for (const pending of this.pending.values()) {
      if (pending.deadlineMs > nowMs) break;
      this.pending.delete(pending.item.id);
      this.stats.timeouts++;
      this.failover(pending);
    }
  }
}
