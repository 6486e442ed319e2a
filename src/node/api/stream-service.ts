import type * as grpc from '@grpc/grpc-js';
import { RateLimitError, RingLimitError } from '../../common/errors.js';
import type { Reservation } from '../../limiter/types.js';
import { itemError, toServiceError, type PublicApiBackend } from './backend.js';
import type { IncomingRequest } from './allow-codec.js';
import { decodeStreamRequest, encodeStreamResponse, type OutgoingResult } from './stream-codec.js';
import type { CallerConnection, CallerLedger } from './caller-ledger.js';

/** Requests awaiting an answer on one stream (forwarded to their owners); past it, items are refused. */
export const MAX_AWAITING_PER_STREAM = 100_000;

/** AllowStream with its messages as bytes (see stream-codec.ts). */
export type AllowStreamCall = grpc.ServerDuplexStream<Buffer, Uint8Array>;

/**
 * The serving end of AllowStream for one call. What is decided at once (keys owned here)
 * goes back in one message per incoming message, which also counts that message as
 * processed (even when it carries no result); answers that come later (forwarded to
 * their owners) are gathered and sent once per event-loop turn.
 */
class StreamAnswers {
  private ready: OutgoingResult[] = [];
  /** Request messages served since the last response message. */
  private processed = 0;
  private awaiting = 0;
  private flushScheduled = false;
  /** Reading paused until the answers written so far drain. */
  private paused = false;
  private readonly resume = (): void => {
    this.paused = false;
    if (!this.gone) this.call.resume();
  };
  private halfClosed = false;
  private gone = false;
  private readonly flushLater = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  constructor(
    private readonly backend: PublicApiBackend,
    private readonly call: AllowStreamCall,
    private readonly ledger: CallerLedger,
    private readonly connection: CallerConnection,
  ) {}

  serve(bytes: Buffer): void {
    if (this.gone) return;
    // A stream's messages are callers' own calls, batched by their client: while they come, large batches get their smaller share.
    this.ledger.largeBatches.singleCall();
    let items: IncomingRequest[];
    try {
      items = decodeStreamRequest(bytes);
    } catch (error) {
      this.fail(error instanceof RingLimitError ? error : new RingLimitError('INVALID_ARGUMENT', 'malformed AllowStream message'));
      return;
    }
    for (const item of items) {
      const id = item.id;
      if (this.awaiting >= MAX_AWAITING_PER_STREAM) {
        this.ready.push({ id, decision: undefined, error: itemError(new RateLimitError('RESOURCE_EXHAUSTED', `more than ${MAX_AWAITING_PER_STREAM} requests awaiting an answer on this stream`)) });
        continue;
      }
      if (this.ledger.itemsFull(this.connection, 1)) {
        this.ready.push({ id, decision: undefined, error: itemError(new RateLimitError('RESOURCE_EXHAUSTED', `more than ${this.ledger.limits.maxItemsPerConnection} requests in flight on this connection`)) });
        continue;
      }
      if (item.timestampMs !== undefined && Number.isFinite(item.timestampMs)) this.backend.recordCallerTime(item.timestampMs);
      let answer: Reservation | Promise<Reservation>;
      try {
        answer = this.backend.decide(item.request, item.maxWaitMs);
      } catch (error) {
        this.ready.push({ id, decision: undefined, error: itemError(error) });
        continue;
      }
      if (answer instanceof Promise) {
        this.awaiting++;
        this.ledger.takeItems(this.connection, 1);
        answer.then(
          (r) => this.answerLater({ id, decision: r, error: undefined }),
          (error: unknown) => this.answerLater({ id, decision: undefined, error: itemError(error) }),
        );
      } else {
        this.ready.push({ id, decision: answer, error: undefined });
      }
    }
    this.processed++;
    this.flush();
  }

  /** The caller finished sending: end the stream once everything is answered. */
  end(): void {
    this.halfClosed = true;
    this.flush();
  }

  abandon(): void {
    this.gone = true;
    this.ready = [];
  }

  private answerLater(result: OutgoingResult): void {
    this.awaiting--;
    this.ledger.itemsDone(this.connection, 1);
    if (this.gone) return;
    this.ready.push(result);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushLater);
    }
  }

  private flush(): void {
    if (this.gone) return;
    if (this.ready.length > 0 || this.processed > 0) {
      const room = this.call.write(encodeStreamResponse(this.ready, this.processed));
      this.ready = [];
      this.processed = 0;
      // Back-pressure: a caller that does not read its answers gets no more of its requests read (HTTP/2 holds them in the caller).
      if (!room && !this.paused) {
        this.paused = true;
        this.call.pause();
        this.call.once('drain', this.resume);
      }
    }
    if (this.halfClosed && this.awaiting === 0) {
      this.gone = true;
      this.call.end();
    }
  }

  private fail(error: RingLimitError): void {
    this.gone = true;
    this.call.emit('error', toServiceError(error));
  }
}

/** Serves one AllowStream call until the caller ends it or goes away. */
export function serveAllowStream(backend: PublicApiBackend, call: AllowStreamCall, ledger: CallerLedger, connection: CallerConnection): void {
  const answers = new StreamAnswers(backend, call, ledger, connection);
  call.on('data', (bytes: Buffer) => answers.serve(bytes));
  call.on('end', () => answers.end());
  call.on('error', () => answers.abandon());
  call.on('cancelled', () => answers.abandon());
}
