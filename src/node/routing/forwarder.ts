import type { Clock } from '../../common/clock.js';
import { RateLimitError, RingLimitError } from '../../common/errors.js';
import type { Reservation } from '../../limiter/types.js';
import { AdaptiveBatcher, type BatchQueue } from './adaptive-batcher.js';
import { InFlightTable } from './in-flight.js';
import type { ClusterView } from './cluster-view.js';
import { forwardItem, policyDecision } from './forward-codec.js';
import type { OwnerDecision, ResolvedRequest } from './owner-decision.js';
import type { PeerTransport } from '../transport/peer-transport.js';
import { encodeFrame } from '../wire/codec.js';
import { AdminOp, FrameType, WIRE_ERROR_CODES, type ForwardItem, type ForwardResult } from '../wire/frames.js';

/** When no candidate owner answers a forward: decide here from what this node holds, allow, or deny. */
export type UnavailablePolicy = 'local' | 'allow' | 'deny';

/** A forward awaiting its answer. One object per forwarded request; no closure per call. */
export interface PendingForward {
  /** Its id in the forwarder's table while a frame carries it (the item's wire id); 0 before. */
  id: number;
  item: ForwardItem;
  /** The request it carries, resolved once by whoever started it. */
  request: ResolvedRequest;
  /** Candidate owners in ring order: owner first, then its replicas. */
  candidates: string[];
  attempt: number;
  address: string;
  deadlineMs: number;
  resolve: (r: Reservation) => void;
  reject: (e: Error) => void;
}

export interface ForwarderComponents {
  transport: PeerTransport;
  clock: Clock;
  view: ClusterView;
  /** Where a forward lands when the next candidate is this node, or every candidate failed ('local'). */
  decision: OwnerDecision;
}

export interface ForwarderInit {
  selfId: string;
  forwardTimeoutMs: number;
  /** 0: adaptive batching (see Forwarder); otherwise a fixed wait before each frame. */
  batchWaitMs: number;
  maxBatchSize: number;
  /** Adaptive batching: Forward frames not yet processed, shared by the peers that have some in flight (see AdaptiveBatcher). */
  maxFramesInFlight: number;
  /** Adaptive batching: forwards that go out at once, mid-turn, while the peer has room for another frame. */
  eagerBatchSize: number;
  maxPendingForwards: number;
  /** When no candidate owner answers: decide here, allow, or deny. */
  onUnavailable: UnavailablePolicy;
}

export interface ForwarderStats {
  forwarded: number;
  frames: number;
  failovers: number;
  timeouts: number;
  /** Forwards no candidate answered: onUnavailable decided them. */
  exhausted: number;
}


/**
 * Sends requests to their owners in frames of at most maxBatchSize items (AdaptiveBatcher:
 * a peer answers each frame at once with what it decided there, which marks the frame
 * processed) and matches answers by id. Every forward has a deadline; a failure moves it
 * to the next candidate, with hops raised so that candidate decides instead of
 * forwarding again.
 */
export class Forwarder {
  /** Forwards a frame carries, by item id, until answered (ids are this table's own, in send order). */
  private readonly pending: InFlightTable<PendingForward>;
  /** Forwards waiting in the batcher for a frame. */
  private queued = 0;
  private readonly batcher: AdaptiveBatcher<PendingForward>;
  /** Frames sent and not yet processed: frame id → its peer's queue and deadline, in send order. */
  private readonly sentFrames = new Map<number, { queue: BatchQueue<PendingForward>; deadlineMs: number }>();
  private readonly deadlineTimer: NodeJS.Timeout;
  readonly stats: ForwarderStats = { forwarded: 0, frames: 0, failovers: 0, timeouts: 0, exhausted: 0 };

  private closed = false;

  constructor(
    private readonly components: ForwarderComponents,
    private readonly init: ForwarderInit,
  ) {
    this.pending = new InFlightTable(init.maxPendingForwards);
    this.batcher = new AdaptiveBatcher((queue, batch) => this.sendFrame(queue, batch), init);
    // The scan runs after this turn's I/O (setImmediate: the check phase follows the poll phase):
    // when the process stalled, an answer already waiting in a socket settles its forward first,
    // instead of a failover deciding it again from a replica's state.
    this.deadlineTimer = setInterval(() => setImmediate(this.expire), Math.max(2, init.forwardTimeoutMs / 4));
    this.deadlineTimer.unref();
  }

  /** Forwards queued for a frame or awaiting their answer. */
  get inFlight(): number {
    return this.pending.size + this.queued;
  }

  /** Sends a decision (or, with `op`, an operator's Inspect or Set) to the first candidate that answers. */
  forward(p: ResolvedRequest, maxWaitMs: number, candidates: string[], op: AdminOp = AdminOp.Decide, remaining = -1): Promise<Reservation> {
    if (this.inFlight >= this.init.maxPendingForwards) {
      return Promise.reject(new RateLimitError('RESOURCE_EXHAUSTED', `more than ${this.init.maxPendingForwards} forwards in flight`));
    }
    return new Promise<Reservation>((resolve, reject) => {
      const item = forwardItem(0, p, maxWaitMs, op, remaining);
      const pending: PendingForward = { id: 0, item, request: p, candidates, attempt: 0, address: '', deadlineMs: 0, resolve, reject };
      this.stats.forwarded++;
      this.dispatch(pending);
    });
  }

  /**
   * Re-sends a forward received from another node to this node's idea of the owner (one
   * extra hop at most). It gets an id of ours: ids are only unique per sending node.
   */
  relay(pending: PendingForward): void {
    if (this.inFlight >= this.init.maxPendingForwards) {
      pending.reject(new RateLimitError('RESOURCE_EXHAUSTED', `more than ${this.init.maxPendingForwards} forwards in flight`));
      return;
    }
    this.dispatch(pending);
  }

  /**
   * Answers from an owner: each settles the forward it names, with times re-based onto
   * this clock. A reply carrying a frame's id is the owner's immediate answer to that
   * frame: the frame is processed, and what gathered for that peer may go out.
   */
  handleReply(frameId: number, results: ForwardResult[]): void {
    if (frameId !== 0) this.processed(frameId);
    const receivedAtMs = this.components.clock.now();
    for (const r of results) {
      const pending = this.pending.take(r.id);
      if (pending === undefined) continue; // late answer after a failover: the caller has moved on
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
    for (const [frameId, sent] of this.sentFrames) if (sent.queue.key === address) this.processed(frameId);
    for (const pending of this.pending.values()) {
      if (pending.address === address) {
        this.pending.take(pending.id);
        this.failover(pending);
      }
    }
  }

  close(): void {
    this.closed = true;
    clearInterval(this.deadlineTimer);
    const error = new RingLimitError('UNAVAILABLE', 'the node is shutting down');
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
    for (const pending of this.batcher.takeAll()) pending.reject(error);
    this.queued = 0;
    this.sentFrames.clear();
  }

  private dispatch(pending: PendingForward): void {
    if (this.closed) {
      // Closing: the peer streams are going, and onUnavailable 'local' would decide from
      // whatever this node holds (often nothing: a fresh state). The caller tries another node.
      pending.reject(new RingLimitError('UNAVAILABLE', 'the node is shutting down'));
      return;
    }
    for (;;) {
      const nodeId = pending.candidates[pending.attempt];
      if (nodeId === undefined) {
        this.stats.exhausted++;
        this.whenUnavailable(pending);
        return;
      }
      if (this.components.view.isSelf(nodeId)) {
        this.components.decision.carryOut(pending.request, pending.item).then(pending.resolve, pending.reject);
        return;
      }
      const address = this.components.view.addressOf(nodeId);
      if (address !== undefined) {
        pending.address = address;
        this.enqueue(address, pending);
        return;
      }
      this.advance(pending);
    }
  }

  /** No candidate answered: the onUnavailable policy answers, with the request's own limit. */
  private whenUnavailable(pending: PendingForward): void {
    const nowMs = this.components.clock.now();
    if (pending.item.op !== AdminOp.Decide) {
      // An operator's Inspect or Set means the owner's state: never made up elsewhere.
      pending.reject(new RingLimitError('UNAVAILABLE', `no holder of ${pending.request.action}/${pending.request.key} answered: the operation was not made`));
      return;
    }
    switch (this.init.onUnavailable) {
      case 'local':
        this.components.decision.decideUnreached(pending.request, pending.item.maxWaitMs).then(pending.resolve, pending.reject);
        return;
      case 'allow':
        pending.resolve(policyDecision(true, pending.request.limit, nowMs, 0));
        return;
      case 'deny':
        pending.resolve(policyDecision(false, pending.request.limit, nowMs, this.init.forwardTimeoutMs));
        return;
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
    this.queued++;
    this.batcher.add(this.batcher.queue(address), pending);
  }

  /** One Forward frame to the queue's peer; false (after failing the batch over) when it cannot be sent. */
  private sendFrame(queue: BatchQueue<PendingForward>, batch: PendingForward[]): boolean {
    this.queued -= batch.length;
    const deadlineMs = this.components.clock.now() + this.init.forwardTimeoutMs;
    const items: ForwardItem[] = new Array<ForwardItem>(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const pending = batch[i]!;
      pending.deadlineMs = deadlineMs;
      pending.item.id = this.pending.add(pending);
      items[i] = pending.item;
    }
    this.stats.frames++;
    const frameId = items[0]!.id;
    if (!this.components.transport.send(queue.key, encodeFrame({ type: FrameType.Forward, id: frameId, items }))) {
      for (const pending of batch) {
        this.pending.take(pending.id);
        this.failover(pending);
      }
      return false;
    }
    this.sentFrames.set(frameId, { queue, deadlineMs });
    return true;
  }

  /** The peer has read frame `frameId` (or it is past its deadline, or the stream broke): one frame fewer in flight. */
  private processed(frameId: number): void {
    const sent = this.sentFrames.get(frameId);
    if (sent === undefined) return;
    this.sentFrames.delete(frameId);
    this.batcher.framesDone(sent.queue, 1);
  }

  /** Deadlines are in insertion order (one timeout for all), so the scans stop at the first live one. */
  private readonly expire = (): void => {
    const nowMs = this.components.clock.now();
    for (const [frameId, sent] of this.sentFrames) {
      if (sent.deadlineMs > nowMs) break;
      this.processed(frameId);
    }
    for (let pending = this.pending.oldest(); pending !== undefined && pending.deadlineMs <= nowMs; pending = this.pending.oldest()) {
      this.pending.take(pending.id);
      this.stats.timeouts++;
      this.failover(pending);
    }
  };
}
