import { RateLimitError, type ErrorCode } from '../../common/errors.js';
import type { BatchQueue } from '../routing/adaptive-batcher.js';
import { unwritable } from '../api/allow-codec.js';
import { decodeStreamResponse, encodeStreamRequest, type ResultVisitor } from '../api/stream-codec.js';
import type { CallBook } from './call-book.js';
import type { ClientMetrics } from './client-metrics.js';
import type { Failover } from './failover.js';
import type { LinkPool, StreamEvents } from './link-pool.js';
import type { OwnerRing } from './owner-ring.js';
import type { NodeLink, PendingCall, RawStream } from './pending-call.js';

/**
 * The AllowStream traffic: each message of calls the batcher lets go is written to its
 * node's stream, and each answer message read from a stream settles the calls it answers.
 * No closure or object per request beyond the call itself: the answers are read straight
 * into one visitor for the client's life.
 */
export class CallSender {
  constructor(
    private readonly timeoutMs: number,
    private readonly book: CallBook,
    private readonly pool: LinkPool,
    private readonly failover: Failover,
    private readonly metrics: ClientMetrics,
    private readonly ring: Pick<OwnerRing, 'seen'>,
  ) {}

  /** The link whose answer is being decoded: the ring digest it carries is that node's. */
  private answering: NodeLink | undefined;

  /** One AllowStream message to the queue's node; false (after failing the batch over) when there is no stream. */
  send(queue: BatchQueue<PendingCall>, batch: PendingCall[]): boolean {
    this.book.unqueued(batch);
    const link = this.pool.linkOf(queue.key);
    const stream = this.book.closed ? undefined : this.pool.streamOf(link, this.events);
    if (stream === undefined) {
      this.failover.failOver(batch, link);
      return false;
    }
    // The caller's clock as the message leaves (nodes use it to detect clock skew): one read per message.
    this.book.sent(batch, performance.now() + this.timeoutMs, Date.now());
    this.metrics.counters.messages++;
    this.metrics.counters.requests += batch.length;
    let message: Uint8Array;
    try {
      message = encodeStreamRequest(batch);
    } catch {
      message = encodeStreamRequest(this.writable(batch));
    }
    stream.write(message);
    return true;
  }

  /**
   * The calls of `batch` the codec can write; the others (a field of another type than
   * RateLimitRequest gives it, e.g. a number for a key) fail with INVALID_ARGUMENT instead
   * of taking the message, or the process, down with them.
   */
  private writable(batch: readonly PendingCall[]): PendingCall[] {
    return batch.filter((call) => {
      try {
        encodeStreamRequest([call]);
        return true;
      } catch {
        this.book.settle(call.id);
        call.reject(unwritable(call.request));
        return false;
      }
    });
  }

  private readonly events: StreamEvents = {
    answered: (link, call, bytes) => this.answered(link, call, bytes),
    broke: (link, call) => this.failover.streamBroke(link, call),
  };

  /** Settles the calls one response message answers; a malformed message drops the stream. */
  private answered(link: NodeLink, call: RawStream, bytes: Buffer): void {
    let processed: number;
    this.answering = link;
    try {
      processed = decodeStreamResponse(bytes, this.results);
    } catch {
      this.failover.streamBroke(link, call);
      return;
    } finally {
      this.answering = undefined;
    }
    // The node read these messages: what gathered meanwhile may go out.
    if (processed > 0) this.book.batcher.framesDone(link.batch, processed);
  }

  /** Where decoded answers go: one object for the client's life, no closure per answer. */
  private readonly results: ResultVisitor = {
    decision: (id, allowed, limit, remaining, resetAtMs, retryAfterMs, waitMs) => {
      const call = this.book.settle(id);
      if (call === undefined) return;
      if (call.startedMs >= 0) this.metrics.latency.record(performance.now() - call.startedMs);
      call.resolve({ allowed, limit, remaining, resetAtMs, retryAfterMs, waitMs });
    },
    error: (id, code, message, field) => {
      const call = this.book.settle(id);
      if (call === undefined) return;
      if (code === 'UNAVAILABLE') this.failover.retry(call);
      else call.reject(new RateLimitError((code || 'INTERNAL') as ErrorCode, message || 'the node returned no result for this request', field || undefined));
    },
    ring: (digest) => {
      if (this.answering !== undefined) this.ring.seen(digest, this.answering);
    },
  };
}

