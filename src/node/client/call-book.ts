import { AdaptiveBatcher, type BatchQueue } from '../routing/adaptive-batcher.js';
import { InFlightTable } from '../routing/in-flight.js';
import type { ClientOptions } from './client-options.js';
import type { NodeLink, PendingCall } from './pending-call.js';

/**
 * The calls a client holds: queued for a node (in the adaptive batcher, one queue per
 * node) or sent and awaiting their answers (by id, in send order, so deadlines are in
 * order too). Once closed it holds none.
 */
export class CallBook {
  readonly batcher: AdaptiveBatcher<PendingCall>;
  private readonly awaiting: InFlightTable<PendingCall>;
  private queued = 0;
  closed = false;

  /** `send` sends one message of calls to the queue's node (see AdaptiveBatcher). */
  constructor(options: ClientOptions, send: (queue: BatchQueue<PendingCall>, batch: PendingCall[]) => boolean) {
    this.awaiting = new InFlightTable(options.maxPending);
    this.batcher = new AdaptiveBatcher(send, { ...options, batchWaitMs: 0 });
  }

  /** Requests queued or awaiting an answer. */
  get pending(): number {
    return this.queued + this.awaiting.size;
  }

  /** `call` goes out to `link` in its next message. */
  queue(link: NodeLink, call: PendingCall): void {
    call.node = link;
    this.queued++;
    this.batcher.add(link.batch, call);
  }

  /** A message's calls left their queue (sent, or failing over). */
  unqueued(batch: readonly PendingCall[]): void {
    this.queued -= batch.length;
  }

  /** A message's calls went out at `timestampMs` (the caller's clock) and are answered by `deadlineMs` (performance.now()). */
  sent(batch: readonly PendingCall[], deadlineMs: number, timestampMs: number): void {
    for (const call of batch) {
      call.deadlineMs = deadlineMs;
      call.timestampMs = timestampMs;
      this.awaiting.add(call);
    }
  }

  /** The call answered by `id`, no longer awaited; undefined when it moved on (timeout, broken stream). */
  settle(id: number): PendingCall | undefined {
    return this.awaiting.take(id);
  }

  /** The calls queued for `link`, taken off its queue. */
  takeQueue(link: NodeLink): PendingCall[] {
    const queue = this.batcher.take(link.batch);
    this.queued -= queue.length;
    return queue;
  }

  /** `link`'s stream broke: the calls awaiting answers on it, no longer awaited; its window starts empty. */
  takeLost(link: NodeLink): PendingCall[] {
    this.batcher.reset(link.batch);
    const lost: PendingCall[] = [];
    for (const pending of this.awaiting.values()) if (pending.node === link) lost.push(pending);
    for (const pending of lost) this.awaiting.take(pending.id);
    return lost;
  }

  /** The calls past their deadline, no longer awaited: the scan stops at the first live one. */
  takeExpired(nowMs: number): PendingCall[] {
    const expired: PendingCall[] = [];
    for (let call = this.awaiting.oldest(); call !== undefined && call.deadlineMs <= nowMs; call = this.awaiting.oldest()) {
      this.awaiting.take(call.id);
      expired.push(call);
    }
    return expired;
  }

  /** Closes the book: every call it held, awaited ones first, fails with `error`. */
  close(error: Error): void {
    this.closed = true;
    for (const call of this.awaiting.values()) call.reject(error);
    this.awaiting.clear();
    for (const call of this.batcher.takeAll()) call.reject(error);
    this.queued = 0;
  }
}
